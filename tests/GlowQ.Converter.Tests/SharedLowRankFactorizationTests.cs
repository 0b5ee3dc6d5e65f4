using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra.Double;

namespace GlowQ.Converter.Tests;

/// <summary>The identities of the method notes §4, each an independent check of the shared factorisation.</summary>
public sealed class SharedLowRankFactorizationTests
{
    private static float[] Random(int n, int seed, double scale = 1)
    {
        var r = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(_ => (float)((r.NextDouble() * 2 - 1) * scale))];
    }

    /// <summary>Members with a decaying spectrum (like quantisation errors after whitening), stacked rows.</summary>
    private static (float[][] E, int[] Rows) Members(int cols, int seed, params int[] rows)
    {
        var r = new Random(seed);
        int m = rows.Sum();
        Matrix<double> full = DenseMatrix.Create(m, cols, 0);
        for (int j = 0; j < Math.Min(m, cols); j++)
        {
            var u = DenseVector.Create(m, _ => r.NextDouble() - 0.5);
            var v = DenseVector.Create(cols, _ => r.NextDouble() - 0.5);
            full += u.OuterProduct(v) * Math.Pow(0.7, j);
        }

        var e = new float[rows.Length][];
        int at = 0;
        for (int i = 0; i < rows.Length; i++)
        {
            e[i] = new float[rows[i] * cols];
            for (int row = 0; row < rows[i]; row++)
            {
                for (int c = 0; c < cols; c++)
                {
                    e[i][row * cols + c] = (float)full[at + row, c];
                }
            }

            at += rows[i];
        }

        return (e, rows);
    }

    private static Matrix<double> Stack(float[][] e, int[] rows, int cols) =>
        DenseMatrix.Create(rows.Sum(), cols, (r, c) =>
        {
            int i = 0;
            while (r >= rows[i])
            {
                r -= rows[i++];
            }

            return e[i][r * cols + c];
        });

    private static Matrix<double> Product(UnitFactors f, int[] rows, int cols)
    {
        var a = DenseMatrix.Create(rows.Sum(), f.Rank, 0);
        int at = 0;
        for (int i = 0; i < rows.Length; i++)
        {
            for (int r = 0; r < rows[i]; r++)
            {
                for (int j = 0; j < f.Rank; j++)
                {
                    a[at + r, j] = f.A[i][r * f.Rank + j];
                }
            }

            at += rows[i];
        }

        var b = DenseMatrix.Create(f.Rank, cols, (j, c) => f.B[j * cols + c]);
        return a * b;
    }

    private static Matrix<double> RandomCovarianceFactor(int d, int seed)
    {
        var cov = new CovarianceWhitening(d);
        float[] x = Random(d * 4 * d, seed);
        // Heavy outlier channels, as LLM activations have.
        for (int t = 0; t < 4 * d; t++)
        {
            x[t * d] *= 8;
            x[t * d + 1] *= 3;
        }

        cov.Accumulate(x, 4 * d);
        return cov.Whitening(0.05);
    }

    [Fact]
    public void IdentityCovariance_GivesTheTruncatedSvdOfTheStackedError()
    {
        (float[][] e, int[] rows) = Members(24, 1, 10, 6, 6);
        UnitFactors f = SharedLowRankFactorization.Factorize(e, rows, 24, DenseMatrix.CreateIdentity(24), new(Rank: 5, Seed: 3));
        var svd = Stack(e, rows, 24).Svd();
        Matrix<double> best = svd.U.SubMatrix(0, 22, 0, 5) * DenseMatrix.OfDiagonalArray(svd.S.Take(5).ToArray()) * svd.VT.SubMatrix(0, 5, 0, 24);
        Assert.True((Product(f, rows, 24) - best).FrobeniusNorm() < 1e-5 * best.FrobeniusNorm(), "A·B differs from the rank-5 truncated SVD");
    }

    [Theory]
    [InlineData(24, 40, 5)] // sketch covers the smaller side: the exact path
    [InlineData(90, 120, 6)] // randomised sketch with power iterations
    public void SingleMemberUnit_IsThePerModuleQeraOptimum(int rows, int cols, int rank)
    {
        // With one member the shared B is the per-module B: A·B = U_r S_r V_rᵀ L⁻¹ from the SVD of E·L (QERA-exact).
        (float[][] e, int[] r) = Members(cols, 21, rows);
        Matrix<double> l = RandomCovarianceFactor(cols, 23);
        UnitFactors f = SharedLowRankFactorization.Factorize(e, r, cols, l, new(Rank: rank, Seed: 4));
        Matrix<double> whitened = Stack(e, r, cols) * l;
        var svd = whitened.Svd(computeVectors: true);
        Matrix<double> truncated = svd.U.SubMatrix(0, rows, 0, rank) * DenseMatrix.OfDiagonalArray(svd.S.SubVector(0, rank).ToArray())
            * svd.VT.SubMatrix(0, rank, 0, cols);
        Matrix<double> expected = truncated * l.Inverse();
        double relative = (Product(f, r, cols) - expected).FrobeniusNorm() / expected.FrobeniusNorm();
        Assert.True(relative < 1e-4, $"‖AB − QERA‖/‖QERA‖ = {relative:G3}");
    }

    [Fact]
    public void FullRank_ReconstructsTheErrorExactly()
    {
        (float[][] e, int[] rows) = Members(12, 2, 8, 8);
        Matrix<double> l = RandomCovarianceFactor(12, 5);
        UnitFactors f = SharedLowRankFactorization.Factorize(e, rows, 12, l, new(Rank: 12, Seed: 1));
        Matrix<double> stacked = Stack(e, rows, 12);
        Assert.True((Product(f, rows, 12) - stacked).FrobeniusNorm() < 1e-4 * stacked.FrobeniusNorm());
        Assert.True(f.ResidualEnergy < 1e-8 * f.WhitenedErrorEnergy);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(9)]
    public void FactorNormsAndResidual_SatisfyTheSvdIdentities(int rank)
    {
        (float[][] e, int[] rows) = Members(40, 7, 30, 10, 10);
        Matrix<double> l = RandomCovarianceFactor(40, 9);
        UnitFactors f = SharedLowRankFactorization.Factorize(e, rows, 40, l, new(Rank: rank, Seed: 11));

        // Σ_i ‖A_i‖_F² = Σ_{j≤r} s_j
        double aNorms = f.A.Sum(a => a.Sum(v => (double)v * v));
        Assert.Equal(f.SingularValueSum, aNorms, 1e-4 * f.SingularValueSum);

        // Whitened residual ‖(E − AB) L‖_F² = Σ_{j>r} σ_j² of the exact SVD of E L.
        Matrix<double> whitened = Stack(e, rows, 40) * l;
        double[] exact = whitened.Svd(computeVectors: false).S.ToArray();
        double tail = exact.Skip(rank).Sum(s => s * s);
        double residual = ((Stack(e, rows, 40) - Product(f, rows, 40)) * l).FrobeniusNorm();
        Assert.Equal(tail, residual * residual, 1e-3 * exact.Sum(s => s * s));
        Assert.Equal(tail, f.ResidualEnergy, 1e-3 * exact.Sum(s => s * s));
    }

    [Fact]
    public void SharedB_IsNoWorseThanAnyOtherRankRFactorInTheWhitenedNorm()
    {
        // Eckart–Young under whitening: the shared solution attains the minimum; compare with the plain
        // (unwhitened) truncated SVD, which is a valid rank-r shared factorisation but not optimal for Σ.
        (float[][] e, int[] rows) = Members(32, 13, 16, 16);
        Matrix<double> l = RandomCovarianceFactor(32, 17);
        UnitFactors whitenedFit = SharedLowRankFactorization.Factorize(e, rows, 32, l, new(Rank: 4, Seed: 2));
        UnitFactors plainFit = SharedLowRankFactorization.Factorize(e, rows, 32, DenseMatrix.CreateIdentity(32), new(Rank: 4, Seed: 2));
        Matrix<double> stacked = Stack(e, rows, 32);
        double Error(UnitFactors f) => ((stacked - Product(f, rows, 32)) * l).FrobeniusNorm();
        Assert.True(Error(whitenedFit) < Error(plainFit), $"whitened {Error(whitenedFit)} vs plain {Error(plainFit)}");
    }

    [Fact]
    public void RandomizedSvd_IsReproducibleForASeed_AndCloseToExact()
    {
        (float[][] e, int[] rows) = Members(60, 21, 50, 50);
        Matrix<double> l = DenseMatrix.CreateIdentity(60);
        UnitFactors a = SharedLowRankFactorization.Factorize(e, rows, 60, l, new(Rank: 6, Seed: 42));
        UnitFactors b = SharedLowRankFactorization.Factorize(e, rows, 60, l, new(Rank: 6, Seed: 42));
        Assert.Equal(a.B, b.B);
        double[] exact = Stack(e, rows, 60).Svd(computeVectors: false).S.ToArray();
        for (int j = 0; j < 6; j++)
        {
            Assert.Equal(exact[j], a.SingularValues[j], 1e-6 * exact[0]);
        }
    }

    [Fact]
    public void Covariance_ShrinksTowardTheScaledIdentity()
    {
        var cov = new CovarianceWhitening(3);
        cov.Accumulate([1, 0, 0, 0, 2, 0], 2); // x1 = e1, x2 = 2 e2
        Matrix<double> sigma = cov.Covariance(0.05);
        // Σ = diag(0.5, 2, 0); tr/d = 2.5/3.
        double mean = 2.5 / 3;
        Assert.Equal(0.95 * 0.5 + 0.05 * mean, sigma[0, 0], 12);
        Assert.Equal(0.95 * 2 + 0.05 * mean, sigma[1, 1], 12);
        Assert.Equal(0.05 * mean, sigma[2, 2], 12);
        Assert.Equal(0, sigma[0, 1], 12);
        Assert.Equal(2, cov.Samples);
        Matrix<double> l = cov.Whitening(0.05);
        Assert.True((l * l.Transpose() - sigma).FrobeniusNorm() < 1e-12);
    }
}
