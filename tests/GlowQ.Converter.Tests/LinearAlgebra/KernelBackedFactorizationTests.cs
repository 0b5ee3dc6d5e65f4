using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra.Double;

namespace GlowQ.Converter.Tests.LinearAlgebra;

/// <summary>
/// The array-based calibration statistic and factorisation entry points (the ones on the dense kernels) against
/// fp64 loops, MathNet, and the Matrix-based overloads.
/// </summary>
public sealed class KernelBackedFactorizationTests
{
    private static float[] Activations(int tokens, int d, int seed)
    {
        var r = new Random(seed);
        var x = new float[tokens * d];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = (float)(r.NextDouble() * 2 - 1);
        }

        for (int t = 0; t < tokens; t++)
        {
            x[t * d] *= 8; // an outlier channel, as LLM activations have
        }

        return x;
    }

    private static Matrix<double> RowMajor(int rows, int cols, double[] values) => new DenseMatrix(cols, rows, (double[])values.Clone()).Transpose();

    /// <summary>Stacked members with a geometrically decaying spectrum (as whitened quantisation errors have).</summary>
    private static (float[][] E, int[] Rows) Members(int cols, int seed, params int[] rows)
    {
        var r = new Random(seed);
        int m = rows.Sum();
        var full = new double[m * cols];
        for (int j = 0; j < 24; j++)
        {
            double[] u = [.. Enumerable.Range(0, m).Select(_ => r.NextDouble() - 0.5)];
            double[] v = [.. Enumerable.Range(0, cols).Select(_ => r.NextDouble() - 0.5)];
            double weight = Math.Pow(0.6, j);
            for (int i = 0; i < m; i++)
            {
                for (int c = 0; c < cols; c++)
                {
                    full[i * cols + c] += weight * u[i] * v[c];
                }
            }
        }

        var e = new float[rows.Length][];
        for (int i = 0, at = 0; i < rows.Length; at += rows[i], i++)
        {
            e[i] = [.. full.AsSpan(at * cols, rows[i] * cols).ToArray().Select(x => (float)x)];
        }

        return (e, rows);
    }

    [Fact]
    public void CovarianceArray_IsTheShrunkSecondMomentOfAFloat64Loop()
    {
        const int tokens = 300, d = 37;
        float[] x = Activations(tokens, d, 1);
        var cov = new CovarianceWhitening(d);
        cov.Accumulate(x.AsSpan(0, 100 * d), 100);
        cov.Accumulate(x.AsSpan(100 * d), tokens - 100);

        var sigma = new double[d * d];
        for (int i = 0; i < d; i++)
        {
            for (int j = 0; j < d; j++)
            {
                double s = 0;
                for (int t = 0; t < tokens; t++)
                {
                    s += (double)x[t * d + i] * x[t * d + j];
                }

                sigma[i * d + j] = s / tokens;
            }
        }

        double mean = Enumerable.Range(0, d).Sum(i => sigma[i * d + i]) / d;
        double[] actual = cov.CovarianceArray(0.05);
        Assert.Equal(tokens, cov.Samples);
        for (int i = 0; i < d; i++)
        {
            for (int j = 0; j < d; j++)
            {
                double expected = 0.95 * sigma[i * d + j] + (i == j ? 0.05 * mean : 0);
                Assert.Equal(expected, actual[i * d + j], 1e-6 * Math.Sqrt(sigma[i * d + i] * sigma[j * d + j]));
                Assert.Equal(actual[j * d + i], actual[i * d + j]); // both triangles, exactly symmetric
            }
        }

        Assert.Equal(actual, cov.Covariance(0.05).ToRowMajorArray());
    }

    [Fact]
    public void WhiteningArray_IsTheCholeskyFactorOfCovarianceArray_AndMatchesWhitening()
    {
        const int d = 300; // more than one 256-wide Cholesky block
        var cov = new CovarianceWhitening(d);
        cov.Accumulate(Activations(2 * d, d, 2), 2 * d);
        double[] sigma = cov.CovarianceArray(0.05);
        double[] l = cov.WhiteningArray(0.05);

        Matrix<double> factor = RowMajor(d, d, l);
        Assert.Equal(0, factor.StrictlyUpperTriangle().FrobeniusNorm());
        Matrix<double> a = RowMajor(d, d, sigma);
        Assert.True((factor * factor.Transpose() - a).FrobeniusNorm() <= 1e-12 * a.FrobeniusNorm());
        Assert.Equal(l, cov.Whitening(0.05).ToRowMajorArray());
    }

    [Fact]
    public void Factorize_WithARowMajorFactor_GivesExactlyWhatTheMatrixOverloadGives()
    {
        (float[][] e, int[] rows) = Members(40, 3, 30, 10);
        var cov = new CovarianceWhitening(40);
        cov.Accumulate(Activations(160, 40, 4), 160);
        var options = new SharedLowRankFactorization.Options(Rank: 5, Seed: 9);
        UnitFactors fromArray = SharedLowRankFactorization.Factorize(e, rows, 40, cov.WhiteningArray(0.05), options);
        UnitFactors fromMatrix = SharedLowRankFactorization.Factorize(e, rows, 40, cov.Whitening(0.05), options);
        Assert.Equal(fromMatrix.B, fromArray.B);
        Assert.Equal(fromMatrix.A[0], fromArray.A[0]);
        Assert.Equal(fromMatrix.A[1], fromArray.A[1]);
        Assert.Equal(fromMatrix.SingularValues, fromArray.SingularValues);
    }

    [Fact]
    public void Factorize_AtABlockedShape_MatchesTheExactWhitenedSvd()
    {
        // 300 + 40 rows × 270 columns: the whitening product, the sketch GEMMs and the solve for B all cross their
        // 256-wide blocks; rank 6 + 10 oversampling is far from the exact-SVD shortcut.
        const int cols = 270, rank = 6;
        (float[][] e, int[] rows) = Members(cols, 5, 300, 40);
        var cov = new CovarianceWhitening(cols);
        cov.Accumulate(Activations(2 * cols, cols, 6), 2 * cols);
        double[] l = cov.WhiteningArray(0.05);
        UnitFactors f = SharedLowRankFactorization.Factorize(e, rows, cols, l, new(Rank: rank, Seed: 7));

        var stacked = DenseMatrix.Create(340, cols, (r, c) => r < 300 ? e[0][r * cols + c] : e[1][(r - 300) * cols + c]);
        Matrix<double> factor = RowMajor(cols, cols, l);
        double[] exact = (stacked * factor).Svd(computeVectors: false).S.ToArray();
        for (int j = 0; j < rank; j++)
        {
            Assert.Equal(exact[j], f.SingularValues[j], 1e-6 * exact[0]);
        }

        var a = DenseMatrix.Create(340, rank, (r, j) => r < 300 ? f.A[0][r * rank + j] : f.A[1][(r - 300) * rank + j]);
        var b = DenseMatrix.Create(rank, cols, (j, c) => f.B[j * cols + c]);
        double residual = ((stacked - a * b) * factor).FrobeniusNorm();
        double tail = exact.Skip(rank).Sum(s => s * s);
        Assert.Equal(tail, residual * residual, 1e-3 * exact.Sum(s => s * s));
        Assert.Equal(exact.Sum(s => s * s), f.WhitenedErrorEnergy, 1e-9 * f.WhitenedErrorEnergy);
    }
}
