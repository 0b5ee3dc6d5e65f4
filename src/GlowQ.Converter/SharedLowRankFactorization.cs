using System.Buffers;
using System.Numerics.Tensors;
using GlowQ.Converter.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra.Double;
using MathNet.Numerics.LinearAlgebra.Factorization;

namespace GlowQ.Converter;

/// <summary>The factors of one GlowQ unit and what they capture.</summary>
public sealed record UnitFactors(
    IReadOnlyList<float[]> A,
    float[] B,
    int Rank,
    double[] SingularValues,
    double WhitenedErrorEnergy,
    double CapturedEnergy)
{
    /// <summary>Σ_{j≤r} s_j — the reference code's "gsvd" score (equals Σ_i ‖A_i‖_F²).</summary>
    public double SingularValueSum => SingularValues.Take(Rank).Sum();

    /// <summary>Σ_{j≤r} σ_j² / ‖E Σ^{1/2}‖_F² — the paper's captured-energy score.</summary>
    public double CapturedEnergyFraction => WhitenedErrorEnergy > 0 ? CapturedEnergy / WhitenedErrorEnergy : 0;

    /// <summary>‖(E − A B) Σ^{1/2}‖_F²: the energy the factors leave uncorrected.</summary>
    public double ResidualEnergy => Math.Max(0, WhitenedErrorEnergy - CapturedEnergy);
}

/// <summary>
/// GlowQ's shared factorisation (method notes §4): for a unit whose members i read one input with second moment Σ,
/// minimise Σ_i E‖(E_i − A_i B)x‖² = ‖(E_cat − A_cat B) L‖_F² with Σ = L Lᵀ. The optimum is the rank-r truncated SVD
/// of the whitened stack Ẽ = E_cat L = U S Vᵀ: A_i = U_i √S (member i's rows of U), B = √S Vᵀ L⁻¹, shared by all
/// members. The SVD is randomised (Halko et al.): Gaussian test matrix with oversampling, power iterations
/// re-orthonormalised between steps, QR, a small exact SVD, lifted back. It is exact when r + oversampling covers
/// the smaller dimension.
/// </summary>
/// <remarks>
/// The products with Ẽ and L (all but O((m + n)·k²) of the work) run on <see cref="DenseKernels"/>; the thin QRs and
/// the k × k SVD, k = r + oversampling, stay in MathNet.
/// </remarks>
public static class SharedLowRankFactorization
{
    public sealed record Options(int Rank, ulong Seed, int Oversampling = 10, int PowerIterations = 2);

    /// <param name="members">Each member's error matrix E_i = W_i − Q(W_i), row-major [rows_i × cols].</param>
    /// <param name="rows">Rows of each member.</param>
    /// <param name="cols">Input size shared by all members.</param>
    /// <param name="whitening">Lower-triangular L with Σ = L Lᵀ (see <see cref="CovarianceWhitening"/>).</param>
    public static UnitFactors Factorize(IReadOnlyList<float[]> members, IReadOnlyList<int> rows, int cols, Matrix<double> whitening, Options options)
    {
        ArgumentNullException.ThrowIfNull(whitening);
        if (whitening.RowCount != cols || whitening.ColumnCount != cols)
        {
            throw new ArgumentException($"whitening is {whitening.RowCount}×{whitening.ColumnCount}, expected {cols}×{cols}");
        }

        return Factorize(members, rows, cols, whitening.ToRowMajorArray(), options);
    }

    /// <param name="members">Each member's error matrix E_i = W_i − Q(W_i), row-major [rows_i × cols].</param>
    /// <param name="rows">Rows of each member.</param>
    /// <param name="cols">Input size shared by all members.</param>
    /// <param name="whitening">
    /// Lower-triangular L with Σ = L Lᵀ, row-major [cols × cols] (see <see cref="CovarianceWhitening.WhiteningArray"/>);
    /// its strict upper triangle is not read.
    /// </param>
    /// <param name="options">Rank, seed and sketch settings.</param>
    public static UnitFactors Factorize(IReadOnlyList<float[]> members, IReadOnlyList<int> rows, int cols, double[] whitening, Options options)
    {
        ArgumentNullException.ThrowIfNull(members);
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(whitening);
        ArgumentNullException.ThrowIfNull(options);
        if (whitening.Length != (long)cols * cols)
        {
            throw new ArgumentException($"whitening has {whitening.Length} elements, expected {cols}×{cols}");
        }

        if (members.Count != rows.Count)
        {
            throw new ArgumentException($"{members.Count} members but {rows.Count} row counts");
        }

        int m = rows.Sum();
        int rank = Math.Clamp(options.Rank, 1, Math.Min(m, cols));

        // E_cat and Ẽ are the two large temporaries (128 MiB each for a 2048 × 8192 unit). Pooled, their pages stay
        // mapped from one unit to the next instead of being faulted in afresh each time.
        int size = checked(m * cols);
        double[] stacked = ArrayPool<double>.Shared.Rent(size);
        double[] whitened = ArrayPool<double>.Shared.Rent(size);
        try
        {
            int at = 0;
            for (int i = 0; i < members.Count; i++)
            {
                if (members[i].Length != rows[i] * cols)
                {
                    throw new ArgumentException($"member {i} has {members[i].Length} elements, expected {rows[i]}×{cols}");
                }

                TensorPrimitives.ConvertChecked<float, double>(members[i], stacked.AsSpan(at * cols, rows[i] * cols));
                at += rows[i];
            }

            DenseKernels.MultiplyLower(stacked, m, cols, whitening, whitened);
            double total = TensorPrimitives.SumOfSquares<double>(whitened.AsSpan(0, size));
            TruncatedSvd svd = RandomizedSvd(whitened, m, cols, rank, options);
            return Assemble(svd, members, rows, cols, rank, whitening, total);
        }
        finally
        {
            ArrayPool<double>.Shared.Return(stacked);
            ArrayPool<double>.Shared.Return(whitened);
        }
    }

    /// <summary>A_i = U_i √S and B = √S V_rᵀ L⁻¹ from the SVD of the whitened stack.</summary>
    private static UnitFactors Assemble(TruncatedSvd svd, IReadOnlyList<float[]> members, IReadOnlyList<int> rows, int cols, int rank, double[] whitening, double total)
    {
        var sqrt = svd.S.Take(rank).Select(Math.Sqrt).ToArray();
        var a = new List<float[]>(members.Count);
        int at = 0;
        for (int i = 0; i < members.Count; i++)
        {
            var ai = new float[rows[i] * rank];
            for (int r = 0; r < rows[i]; r++)
            {
                for (int j = 0; j < rank; j++)
                {
                    ai[r * rank + j] = (float)(svd.U[(at + r) * svd.UColumns + j] * sqrt[j]);
                }
            }

            a.Add(ai);
            at += rows[i];
        }

        // B·L = √S V_rᵀ: one blocked triangular solve for all r rows.
        var scaledVt = new double[rank * cols];
        for (int j = 0; j < rank; j++)
        {
            TensorPrimitives.Multiply(svd.Vt.AsSpan(j * cols, cols), sqrt[j], scaledVt.AsSpan(j * cols, cols));
        }

        DenseKernels.SolveLowerRight(whitening, cols, MatrixOp.None, scaledVt, rank);
        var b = new float[rank * cols];
        TensorPrimitives.ConvertTruncating<double, float>(scaledVt, b);

        double captured = svd.S.Take(rank).Sum(x => x * x);
        return new UnitFactors(a, b, rank, svd.S, total, Math.Min(captured, total));
    }

    /// <summary>
    /// Top singular triplets of the row-major x[m × n] (its first m·n elements): U (row-major, m × UColumns), singular
    /// values, Vᵀ (row-major, n columns); UColumns and the rows of Vᵀ are at least the rank asked for.
    /// </summary>
    internal readonly record struct TruncatedSvd(double[] U, int UColumns, double[] S, double[] Vt);

    internal static TruncatedSvd RandomizedSvd(double[] x, int m, int n, int rank, Options options)
    {
        int k = Math.Min(rank + options.Oversampling, Math.Min(m, n));
        if (k == Math.Min(m, n))
        {
            // The sketch would span everything: the exact SVD is as cheap and has no sampling error.
            var full = FromRowMajor(m, n, x).Svd(computeVectors: true);
            return new TruncatedSvd(full.U.ToRowMajorArray(), full.U.ColumnCount, full.S.ToArray(), full.VT.ToRowMajorArray());
        }

        // Filled column by column, the order MathNet's DenseMatrix.Create used, so a seed gives the sketch it always gave.
        var rng = new SeededGaussian(options.Seed);
        var omega = new double[n * k];
        for (int j = 0; j < k; j++)
        {
            for (int i = 0; i < n; i++)
            {
                omega[i * k + j] = rng.Next();
            }
        }

        var y = new double[m * k];
        var z = new double[n * k];
        DenseKernels.Gemm(MatrixOp.None, MatrixOp.None, m, k, n, 1, x, 0, n, omega, 0, k, 0, y, 0, k);
        double[] q = OrthonormalBasis(y, m, k);
        for (int i = 0; i < options.PowerIterations; i++)
        {
            // Re-orthonormalise after each product: without it small singular directions drown in round-off.
            DenseKernels.Gemm(MatrixOp.Transpose, MatrixOp.None, n, k, m, 1, x, 0, n, q, 0, k, 0, z, 0, k);
            double[] basis = OrthonormalBasis(z, n, k);
            DenseKernels.Gemm(MatrixOp.None, MatrixOp.None, m, k, n, 1, x, 0, n, basis, 0, k, 0, y, 0, k);
            q = OrthonormalBasis(y, m, k);
        }

        // small = Qᵀ Ẽ is k × n and wide. Its SVD goes through a thin QR of its transpose, smallᵀ = Q₂R₂, and the SVD of
        // the k × k R₂ᵀ = U' S V'ᵀ: then small = U' S (Q₂V')ᵀ. (MathNet's SVD of the wide matrix would build an n × n Vᵀ.)
        var small = new double[k * n];
        DenseKernels.Gemm(MatrixOp.Transpose, MatrixOp.None, k, n, m, 1, q, 0, k, x, 0, n, 0, small, 0, n);

        // The row-major k × n array is the column-major storage of the n × k transpose.
        var qr = new DenseMatrix(n, k, small).QR(QRMethod.Thin);
        var core = qr.R.Transpose().Svd(computeVectors: true);

        var u = new double[m * k];
        DenseKernels.Gemm(MatrixOp.None, MatrixOp.None, m, k, k, 1, q, 0, k, core.U.ToRowMajorArray(), 0, k, 0, u, 0, k);

        // Vᵀ = V'ᵀ Q₂ᵀ; Q₂'s column-major storage is Q₂ᵀ row-major.
        var vt = new double[k * n];
        DenseKernels.Gemm(MatrixOp.None, MatrixOp.None, k, n, k, 1, core.VT.ToRowMajorArray(), 0, k, qr.Q.ToColumnMajorArray(), 0, n, 0, vt, 0, n);
        return new TruncatedSvd(u, k, core.S.ToArray(), vt);
    }

    /// <summary>Q of a thin QR of the row-major y[rows × k], row-major.</summary>
    private static double[] OrthonormalBasis(double[] y, int rows, int k) =>
        FromRowMajor(rows, k, y).QR(QRMethod.Thin).Q.ToRowMajorArray();

    /// <summary>A MathNet matrix holding the first rows·cols elements of a row-major array (MathNet stores column-major).</summary>
    internal static Matrix<double> FromRowMajor(int rows, int cols, double[] values) =>
        new DenseMatrix(cols, rows, values.Length == rows * cols ? values : values[..(rows * cols)]).Transpose();
}

/// <summary>
/// The calibration statistic of one unit's input: Σ = (1/N) Σ_t x_t x_tᵀ accumulated in fp64 without storing tokens,
/// shrunk toward a scaled identity, and factored as Σ = L Lᵀ (Cholesky; E L has the same singular values and left
/// vectors as E Σ^{1/2}, at a third of the cost of an eigendecomposition).
/// </summary>
public sealed class CovarianceWhitening
{
    /// <summary>Tokens handed to the Gram kernel at once are capped at this many floats (32 MiB of copy buffer).</summary>
    private const int MaxChunkElements = 1 << 23;

    private readonly double[] _sum;
    private long _count;

    public CovarianceWhitening(int dim)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(dim);
        Dim = dim;
        _sum = new double[(long)dim * dim];
    }

    public int Dim { get; }

    public long Samples => _count;

    /// <summary>Adds T input vectors (row-major [T × Dim]); only the lower triangle is accumulated.</summary>
    /// <remarks>Products are fp32 summed over blocks of at most 256 tokens; the running sum is fp64.</remarks>
    public void Accumulate(ReadOnlySpan<float> inputs, int tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        int d = Dim;
        if ((long)tokens * d > inputs.Length)
        {
            throw new ArgumentException($"inputs has {inputs.Length} elements, expected {tokens}×{d}", nameof(inputs));
        }

        if (tokens > 0 && d > 0)
        {
            // The kernel takes arrays (so it can split the work across threads): copy through a pooled buffer.
            int chunk = Math.Clamp(MaxChunkElements / d, 1, tokens);
            float[] buffer = ArrayPool<float>.Shared.Rent(chunk * d);
            try
            {
                for (int t0 = 0; t0 < tokens; t0 += chunk)
                {
                    int count = Math.Min(chunk, tokens - t0);
                    inputs.Slice(t0 * d, count * d).CopyTo(buffer);
                    DenseKernels.AccumulateGram(buffer, count, d, _sum);
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(buffer);
            }
        }

        _count += tokens;
    }

    /// <summary>
    /// Σ (symmetric, fp64, row-major [Dim × Dim], both triangles filled) after shrinkage Σ ← (1−α)Σ + α·(tr Σ/d)·I,
    /// or Σ + 1e-6·I when tr Σ = 0.
    /// </summary>
    public double[] CovarianceArray(double shrinkage)
    {
        double[] sigma = ShrunkLowerTriangle(shrinkage);
        DenseKernels.MirrorLowerToUpper(sigma, Dim);
        return sigma;
    }

    /// <summary>Lower-triangular L with L Lᵀ = the shrunk Σ, row-major [Dim × Dim] with a zero strict upper triangle.</summary>
    /// <exception cref="ArithmeticException">The shrunk Σ is not positive definite (possible only with no shrinkage).</exception>
    public double[] WhiteningArray(double shrinkage)
    {
        double[] l = ShrunkLowerTriangle(shrinkage);
        DenseKernels.CholeskyLower(l, Dim);
        return l;
    }

    /// <summary>The shrunk Σ on and below the diagonal of a new row-major array; the strict upper triangle is zero.</summary>
    private double[] ShrunkLowerTriangle(double shrinkage)
    {
        int d = Dim;
        double n = Math.Max(1, _count);
        double trace = 0;
        for (int i = 0; i < d; i++)
        {
            trace += _sum[(long)i * d + i] / n;
        }

        double keep = trace > 0 ? 1 - shrinkage : 1;
        double ridge = trace > 0 ? shrinkage * trace / d : 1e-6;
        var sigma = new double[(long)d * d];

        // Row by row and over the threads: a fresh d² array is mostly first-touch page faults, which then run in parallel.
        const int band = 64;
        DenseKernels.RunTiles(DenseKernels.CeilDiv(d, band), (long)d * d, (block, _) =>
        {
            for (int i = block * band, last = Math.Min(d, i + band); i < last; i++)
            {
                Span<double> row = sigma.AsSpan(i * d, i + 1);
                TensorPrimitives.Divide(_sum.AsSpan(i * d, i + 1), n, row);
                TensorPrimitives.Multiply(row, keep, row);
                row[i] += ridge;
            }
        });
        return sigma;
    }

    /// <summary>Σ (symmetric, fp64) after shrinkage Σ ← (1−α)Σ + α·(tr Σ/d)·I (or Σ + 1e-6·I when tr Σ = 0).</summary>
    /// <remarks>Σ is symmetric, so its row-major array is also its column-major storage: no copy.</remarks>
    public Matrix<double> Covariance(double shrinkage) => new DenseMatrix(Dim, Dim, CovarianceArray(shrinkage));

    /// <summary>Lower-triangular L with L Lᵀ = the shrunk Σ.</summary>
    public Matrix<double> Whitening(double shrinkage) => SharedLowRankFactorization.FromRowMajor(Dim, Dim, WhiteningArray(shrinkage));
}
