using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra.Double;

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
public static class SharedLowRankFactorization
{
    public sealed record Options(int Rank, ulong Seed, int Oversampling = 10, int PowerIterations = 2);

    /// <param name="members">Each member's error matrix E_i = W_i − Q(W_i), row-major [rows_i × cols].</param>
    /// <param name="rows">Rows of each member.</param>
    /// <param name="cols">Input size shared by all members.</param>
    /// <param name="whitening">Lower-triangular L with Σ = L Lᵀ (see <see cref="CovarianceWhitening"/>).</param>
    public static UnitFactors Factorize(IReadOnlyList<float[]> members, IReadOnlyList<int> rows, int cols, Matrix<double> whitening, Options options)
    {
        int m = rows.Sum();
        if (whitening.RowCount != cols || whitening.ColumnCount != cols)
        {
            throw new ArgumentException($"whitening is {whitening.RowCount}×{whitening.ColumnCount}, expected {cols}×{cols}");
        }

        var stacked = DenseMatrix.Create(m, cols, 0);
        int at = 0;
        for (int i = 0; i < members.Count; i++)
        {
            if (members[i].Length != rows[i] * cols)
            {
                throw new ArgumentException($"member {i} has {members[i].Length} elements, expected {rows[i]}×{cols}");
            }

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

        // A_cat = U_r √S ; B = √S V_rᵀ L⁻¹, i.e. Bᵀ = L⁻ᵀ (V_r √S): one triangular solve per factor column.
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

            SolveUpperTransposed(whitening, column);
            for (int c = 0; c < cols; c++)
            {
                b[j * cols + c] = (float)column[c];
            }
        }

        double captured = s.Take(rank).Sum(x => x * x);
        return new UnitFactors(a, b, rank, s, total, Math.Min(captured, total));
    }

    /// <summary>Top singular triplets of <paramref name="x"/>: U (m × k), singular values (k), Vᵀ (k × n), k ≥ rank.</summary>
    internal static (Matrix<double> U, double[] S, Matrix<double> Vt) RandomizedSvd(Matrix<double> x, int rank, Options options)
    {
        int m = x.RowCount, n = x.ColumnCount;
        int k = Math.Min(rank + options.Oversampling, Math.Min(m, n));
        if (k == Math.Min(m, n))
        {
            // The sketch would span everything: the exact SVD is as cheap and has no sampling error.
            var full = x.Svd(computeVectors: true);
            return (full.U, full.S.ToArray(), full.VT);
        }

        var rng = new GaussianSource(options.Seed);
        var omega = DenseMatrix.Create(n, k, (_, _) => rng.Next());
        Matrix<double> q = x.Multiply(omega).QR().Q.SubMatrix(0, m, 0, k);
        for (int i = 0; i < options.PowerIterations; i++)
        {
            // Re-orthonormalise after each product: without it small singular directions drown in round-off.
            Matrix<double> z = x.TransposeThisAndMultiply(q).QR().Q.SubMatrix(0, n, 0, k);
            q = x.Multiply(z).QR().Q.SubMatrix(0, m, 0, k);
        }

        Matrix<double> small = q.TransposeThisAndMultiply(x);
        var svd = small.Svd(computeVectors: true);
        return (q * svd.U, svd.S.ToArray(), svd.VT);
    }

    /// <summary>Solves Lᵀ y = v in place for lower-triangular L (back substitution).</summary>
    private static void SolveUpperTransposed(Matrix<double> lower, double[] v)
    {
        int n = v.Length;
        for (int i = n - 1; i >= 0; i--)
        {
            double sum = v[i];
            for (int j = i + 1; j < n; j++)
            {
                sum -= lower[j, i] * v[j];
            }

            v[i] = sum / lower[i, i];
        }
    }

    /// <summary>Seeded standard normals (xorshift64* + Box–Muller): reproducible on every platform and runtime.</summary>
    private sealed class GaussianSource(ulong seed)
    {
        private ulong _state = seed == 0 ? 0x9E3779B97F4A7C15UL : seed;
        private double? _spare;

        public double Next()
        {
            if (_spare is double spare)
            {
                _spare = null;
                return spare;
            }

            double u1 = Uniform(), u2 = Uniform();
            double radius = Math.Sqrt(-2 * Math.Log(u1));
            _spare = radius * Math.Sin(2 * Math.PI * u2);
            return radius * Math.Cos(2 * Math.PI * u2);
        }

        private double Uniform()
        {
            _state ^= _state >> 12;
            _state ^= _state << 25;
            _state ^= _state >> 27;
            return (((_state * 0x2545F4914F6CDD1DUL) >> 11) + 0.5) / 9007199254740992.0;
        }
    }
}

/// <summary>
/// The calibration statistic of one unit's input: Σ = (1/N) Σ_t x_t x_tᵀ accumulated in fp64 without storing tokens,
/// shrunk toward a scaled identity, and factored as Σ = L Lᵀ (Cholesky; E L has the same singular values and left
/// vectors as E Σ^{1/2}, at a third of the cost of an eigendecomposition).
/// </summary>
public sealed class CovarianceWhitening
{
    private readonly double[] _sum;
    private long _count;

    public CovarianceWhitening(int dim)
    {
        Dim = dim;
        _sum = new double[(long)dim * dim];
    }

    public int Dim { get; }

    public long Samples => _count;

    /// <summary>Adds T input vectors (row-major [T × Dim]); only the lower triangle is accumulated.</summary>
    public void Accumulate(ReadOnlySpan<float> inputs, int tokens)
    {
        int d = Dim;
        Span<double> x = d <= 4096 ? stackalloc double[d] : new double[d];
        for (int t = 0; t < tokens; t++)
        {
            System.Numerics.Tensors.TensorPrimitives.ConvertChecked<float, double>(inputs.Slice(t * d, d), x);
            for (int i = 0; i < d; i++)
            {
                Span<double> row = _sum.AsSpan(i * d, i + 1);
                System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(x[..(i + 1)], x[i], row, row);
            }
        }

        _count += tokens;
    }

    /// <summary>Σ (symmetric, fp64) after shrinkage Σ ← (1−α)Σ + α·(tr Σ/d)·I (or Σ + 1e-6·I when tr Σ = 0).</summary>
    public Matrix<double> Covariance(double shrinkage)
    {
        int d = Dim;
        double n = Math.Max(1, _count);
        var sigma = DenseMatrix.Create(d, d, 0);
        for (int i = 0; i < d; i++)
        {
            for (int j = 0; j <= i; j++)
            {
                double v = _sum[(long)i * d + j] / n;
                sigma[i, j] = v;
                sigma[j, i] = v;
            }
        }

        double trace = sigma.Trace();
        if (trace > 0)
        {
            sigma = (sigma * (1 - shrinkage)) + DenseMatrix.CreateIdentity(d) * (shrinkage * trace / d);
        }
        else
        {
            sigma += DenseMatrix.CreateIdentity(d) * 1e-6;
        }

        return sigma;
    }

    /// <summary>Lower-triangular L with L Lᵀ = the shrunk Σ.</summary>
    public Matrix<double> Whitening(double shrinkage) => Covariance(shrinkage).Cholesky().Factor;
}
