using GlowQ.Converter.LinearAlgebra;
using System.Numerics.Tensors;
using GlowQ.Converter;
using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra.Double;

namespace GlowQ.Benchmarks.LinearAlgebra;

/// <summary>
/// The converter's code before the dense kernels (commit ed6b7b6), kept here as the baseline: MathNet products,
/// full QRs, the wide SVD, a scalar back substitution for B, and Σ accumulated one token at a time.
/// </summary>
internal static class MathNetReference
{
    public static void AccumulatePerToken(ReadOnlySpan<float> inputs, int tokens, int d, double[] sum)
    {
        Span<double> x = new double[d];
        for (int t = 0; t < tokens; t++)
        {
            TensorPrimitives.ConvertChecked<float, double>(inputs.Slice(t * d, d), x);
            for (int i = 0; i < d; i++)
            {
                Span<double> row = sum.AsSpan(i * d, i + 1);
                TensorPrimitives.MultiplyAdd(x[..(i + 1)], x[i], row, row);
            }
        }
    }

    public static Matrix<double> Whitening(Matrix<double> covariance) => covariance.Cholesky().Factor;

    public static UnitFactors Factorize(IReadOnlyList<float[]> members, IReadOnlyList<int> rows, int cols, Matrix<double> whitening, SharedLowRankFactorization.Options options)
    {
        int m = rows.Sum();
        var stacked = DenseMatrix.Create(m, cols, 0);
        int at = 0;
        for (int i = 0; i < members.Count; i++)
        {
            for (int r = 0; r < rows[i]; r++)
            {
                for (int c = 0; c < cols; c++)
                {
                    stacked[at + r, c] = members[i][r * cols + c];
                }
            }

            at += rows[i];
        }

        Matrix<double> whitened = stacked * whitening;
        double total = whitened.FrobeniusNorm();
        total *= total;
        int rank = Math.Clamp(options.Rank, 1, Math.Min(m, cols));
        (Matrix<double> u, double[] s, Matrix<double> vt) = RandomizedSvd(whitened, rank, options);
        var sqrt = s.Take(rank).Select(Math.Sqrt).ToArray();
        var a = new List<float[]>(members.Count);
        at = 0;
        for (int i = 0; i < members.Count; i++)
        {
            var ai = new float[rows[i] * rank];
            for (int r = 0; r < rows[i]; r++)
            {
                for (int j = 0; j < rank; j++)
                {
                    ai[r * rank + j] = (float)(u[at + r, j] * sqrt[j]);
                }
            }

            a.Add(ai);
            at += rows[i];
        }

        var b = new float[rank * cols];
        var column = new double[cols];
        for (int j = 0; j < rank; j++)
        {
            for (int c = 0; c < cols; c++)
            {
                column[c] = vt[j, c] * sqrt[j];
            }

            for (int i = cols - 1; i >= 0; i--)
            {
                double sum = column[i];
                for (int k = i + 1; k < cols; k++)
                {
                    sum -= whitening[k, i] * column[k];
                }

                column[i] = sum / whitening[i, i];
            }

            for (int c = 0; c < cols; c++)
            {
                b[j * cols + c] = (float)column[c];
            }
        }

        double captured = s.Take(rank).Sum(x => x * x);
        return new UnitFactors(a, b, rank, s, total, Math.Min(captured, total));
    }

    private static (Matrix<double> U, double[] S, Matrix<double> Vt) RandomizedSvd(Matrix<double> x, int rank, SharedLowRankFactorization.Options options)
    {
        int m = x.RowCount, n = x.ColumnCount;
        int k = Math.Min(rank + options.Oversampling, Math.Min(m, n));
        var rng = new SeededGaussian(options.Seed);
        var omega = DenseMatrix.Create(n, k, (_, _) => rng.Next());
        Matrix<double> q = x.Multiply(omega).QR().Q.SubMatrix(0, m, 0, k);
        for (int i = 0; i < options.PowerIterations; i++)
        {
            Matrix<double> z = x.TransposeThisAndMultiply(q).QR().Q.SubMatrix(0, n, 0, k);
            q = x.Multiply(z).QR().Q.SubMatrix(0, m, 0, k);
        }

        Matrix<double> small = q.TransposeThisAndMultiply(x);
        var svd = small.Svd(computeVectors: true);
        return (q * svd.U, svd.S.ToArray(), svd.VT);
    }
}
