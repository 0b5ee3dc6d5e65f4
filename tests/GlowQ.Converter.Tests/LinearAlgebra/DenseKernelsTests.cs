using GlowQ.Converter.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra.Double;

namespace GlowQ.Converter.Tests.LinearAlgebra;

/// <summary>
/// The dense kernels against MathNet.Numerics or plain fp64 loops, on shapes chosen to hit every ragged edge of the
/// 6 × 8 register tile, the 144 × 256 × 512 packing blocks and the 256-wide triangular blocks.
/// </summary>
public sealed class DenseKernelsTests
{
    private static double[] RandomArray(int length, int seed)
    {
        var r = new Random(seed);
        var values = new double[length];
        for (int i = 0; i < length; i++)
        {
            values[i] = r.NextDouble() * 2 - 1;
        }

        return values;
    }

    /// <summary>C = alpha·op(A)·op(B) + beta·C by the definition, with strides and offsets.</summary>
    private static double[] ReferenceGemm(MatrixOp opA, MatrixOp opB, int m, int n, int k, double alpha,
        double[] a, int aOffset, int lda, double[] b, int bOffset, int ldb, double beta, double[] c, int cOffset, int ldc)
    {
        var expected = (double[])c.Clone();
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++)
                {
                    double x = opA == MatrixOp.None ? a[aOffset + i * lda + p] : a[aOffset + p * lda + i];
                    double y = opB == MatrixOp.None ? b[bOffset + p * ldb + j] : b[bOffset + j * ldb + p];
                    sum += x * y;
                }

                ref double cij = ref expected[cOffset + i * ldc + j];
                cij = beta == 0 ? alpha * sum : alpha * sum + beta * cij;
            }
        }

        return expected;
    }

    // A row-major array is the column-major storage of the transpose.
    private static Matrix<double> RowMajor(int rows, int cols, double[] values) => new DenseMatrix(cols, rows, (double[])values.Clone()).Transpose();

    private static double MaxAbsDifference(double[] x, double[] y) => x.Zip(y, (p, q) => Math.Abs(p - q)).DefaultIfEmpty(0).Max();

    /// <summary>Random lower-triangular L with a dominant diagonal (well conditioned) and garbage in the strict upper triangle.</summary>
    private static double[] RandomLower(int n, int seed, double upperGarbage = double.NaN)
    {
        double[] l = RandomArray(n * n, seed);
        for (int i = 0; i < n; i++)
        {
            for (int j = i + 1; j < n; j++)
            {
                l[i * n + j] = upperGarbage;
            }

            for (int j = 0; j < i; j++)
            {
                l[i * n + j] /= Math.Sqrt(n);
            }

            l[i * n + i] = 1.5 + Math.Abs(l[i * n + i]);
        }

        return l;
    }

    private static double[] LowerPart(double[] l, int n)
    {
        var clean = new double[n * n];
        for (int i = 0; i < n; i++)
        {
            Array.Copy(l, i * n, clean, i * n, i + 1);
        }

        return clean;
    }

    private static double[] RandomSpd(int n, int seed)
    {
        // G Gᵀ / n + I: eigenvalues in about [1, 5].
        Matrix<double> g = RowMajor(n, n, RandomArray(n * n, seed));
        return (g * g.Transpose() / n + DenseMatrix.CreateIdentity(n)).ToRowMajorArray();
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(7, 63, 65)]
    [InlineData(65, 7, 257)]
    [InlineData(145, 65, 7)]
    [InlineData(63, 520, 1)]
    [InlineData(13, 9, 300)]
    public void Gemm_WithTransposedOperands_MatchesMathNet(int m, int n, int k)
    {
        foreach (MatrixOp opA in new[] { MatrixOp.None, MatrixOp.Transpose })
        {
            foreach (MatrixOp opB in new[] { MatrixOp.None, MatrixOp.Transpose })
            {
                double[] a = RandomArray(m * k, m + 3 * k), b = RandomArray(k * n, n + 5 * k);
                int lda = opA == MatrixOp.None ? k : m, ldb = opB == MatrixOp.None ? n : k;
                var c = new double[m * n];
                DenseKernels.Gemm(opA, opB, m, n, k, 1, a, 0, lda, b, 0, ldb, 0, c, 0, n);

                Matrix<double> left = opA == MatrixOp.None ? RowMajor(m, k, a) : RowMajor(k, m, a).Transpose();
                Matrix<double> right = opB == MatrixOp.None ? RowMajor(k, n, b) : RowMajor(n, k, b).Transpose();
                double[] expected = (left * right).ToRowMajorArray();
                Assert.True(MaxAbsDifference(expected, c) <= 1e-13 * Math.Max(1, k), $"{opA}/{opB} {m}×{n}×{k}: {MaxAbsDifference(expected, c)}");
            }
        }
    }

    [Theory]
    [InlineData(MatrixOp.None, MatrixOp.None)]
    [InlineData(MatrixOp.Transpose, MatrixOp.None)]
    [InlineData(MatrixOp.None, MatrixOp.Transpose)]
    [InlineData(MatrixOp.Transpose, MatrixOp.Transpose)]
    public void Gemm_WithOffsetsStridesAlphaAndBeta_UpdatesOnlyTheOutputWindow(MatrixOp opA, MatrixOp opB)
    {
        const int m = 29, n = 19, k = 37, aOffset = 5, bOffset = 11, cOffset = 3;
        int lda = (opA == MatrixOp.None ? k : m) + 4, ldb = (opB == MatrixOp.None ? n : k) + 2, ldc = n + 7;
        double[] a = RandomArray(aOffset + (opA == MatrixOp.None ? m : k) * lda, 1);
        double[] b = RandomArray(bOffset + (opB == MatrixOp.None ? k : n) * ldb, 2);
        double[] c = RandomArray(cOffset + m * ldc + 9, 3);
        double[] expected = ReferenceGemm(opA, opB, m, n, k, -0.75, a, aOffset, lda, b, bOffset, ldb, 1.25, c, cOffset, ldc);

        DenseKernels.Gemm(opA, opB, m, n, k, -0.75, a, aOffset, lda, b, bOffset, ldb, 1.25, c, cOffset, ldc);

        // Elements between the rows of the window and after it are compared too: they must be exactly as before.
        Assert.True(MaxAbsDifference(expected, c) <= 1e-13, $"max difference {MaxAbsDifference(expected, c)}");
        Assert.Equal(expected[..cOffset], c[..cOffset]);
        for (int i = 0; i < m; i++)
        {
            int gap = cOffset + i * ldc + n;
            Assert.Equal(expected.AsSpan(gap, ldc - n).ToArray(), c.AsSpan(gap, ldc - n).ToArray());
        }
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(7, 65, 63)]
    [InlineData(300, 257, 33)]
    public void Gemm_WithBetaZero_IgnoresNaNInC(int m, int n, int k)
    {
        double[] a = RandomArray(m * k, 4), b = RandomArray(k * n, 5);
        double[] c = Enumerable.Repeat(double.NaN, m * n).ToArray();
        DenseKernels.Gemm(MatrixOp.None, MatrixOp.None, m, n, k, 2, a, 0, k, b, 0, n, 0, c, 0, n);
        double[] expected = ReferenceGemm(MatrixOp.None, MatrixOp.None, m, n, k, 2, a, 0, k, b, 0, n, 0, new double[m * n], 0, n);
        Assert.All(c, v => Assert.False(double.IsNaN(v)));
        Assert.True(MaxAbsDifference(expected, c) <= 1e-12);
    }

    [Fact]
    public void Gemm_WithZeroDepth_ScalesCByBeta()
    {
        double[] c = [1, 2, double.NaN, 4];
        DenseKernels.Gemm(MatrixOp.None, MatrixOp.None, 2, 2, 0, 1, [], 0, 1, [], 0, 2, 3, c, 0, 2);
        Assert.Equal(new[] { 3.0, 6, double.NaN, 12 }, c);
        DenseKernels.Gemm(MatrixOp.None, MatrixOp.None, 2, 2, 0, 1, [], 0, 1, [], 0, 2, 0, c, 0, 2);
        Assert.Equal(new double[4], c);
    }

    [Fact]
    public void Gemm_LargeEnoughToSplitAcrossThreads_MatchesTheDefinition()
    {
        // 301 × 523 × 141 ≈ 22M multiply-adds: above the parallel threshold, with ragged tiles on every side and two
        // depth blocks.
        const int m = 301, n = 523, k = 341;
        double[] a = RandomArray(k * m, 6), b = RandomArray(k * n, 7), c = RandomArray(m * n, 8);
        double[] expected = ReferenceGemm(MatrixOp.Transpose, MatrixOp.None, m, n, k, 0.5, a, 0, m, b, 0, n, -1, c, 0, n);
        DenseKernels.Gemm(MatrixOp.Transpose, MatrixOp.None, m, n, k, 0.5, a, 0, m, b, 0, n, -1, c, 0, n);
        Assert.True(MaxAbsDifference(expected, c) <= 1e-12, $"max difference {MaxAbsDifference(expected, c)}");
    }

    [Theory]
    [InlineData("Portable")]
    [InlineData("Scalar")]
    public void Gemm_PortableAndScalarKernels_MatchTheDefaultKernel(string kernel)
    {
        const int m = 67, n = 45, k = 300;
        double[] a = RandomArray(m * k, 9), b = RandomArray(n * k, 10), c = RandomArray(m * n, 11);
        double[] expected = (double[])c.Clone();
        DenseKernels.Gemm(MatrixOp.None, MatrixOp.Transpose, m, n, k, 1.5, a, 0, k, b, 0, k, 0.5, expected, 0, n);
        DenseKernels.Gemm(Enum.Parse<KernelPath>(kernel), MatrixOp.None, MatrixOp.Transpose, m, n, k, 1.5, a, 0, k, b, 0, k, 0.5, c, 0, n);
        Assert.True(MaxAbsDifference(expected, c) <= 1e-12, $"max difference {MaxAbsDifference(expected, c)}");
    }

    [Fact]
    public void Multiply_MatchesMathNet()
    {
        double[] a = RandomArray(70 * 33, 12), b = RandomArray(33 * 9, 13);
        double[] c = DenseKernels.Multiply(a, b, 70, 33, 9);
        Assert.True(MaxAbsDifference((RowMajor(70, 33, a) * RowMajor(33, 9, b)).ToRowMajorArray(), c) <= 1e-13);
    }

    [Fact]
    public void Gemm_WithOperandsTooShort_Throws()
    {
        Assert.Throws<ArgumentException>(() => DenseKernels.Gemm(MatrixOp.None, MatrixOp.None, 2, 2, 2, 1, new double[3], 0, 2, new double[4], 0, 2, 0, new double[4], 0, 2));
        Assert.Throws<ArgumentException>(() => DenseKernels.Gemm(MatrixOp.None, MatrixOp.None, 2, 2, 2, 1, new double[4], 0, 2, new double[4], 0, 2, 0, new double[4], 0, 1));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(65)]
    [InlineData(257)]
    [InlineData(600)]
    public void CholeskyLower_OfRandomSpd_ReconstructsTheMatrix(int n)
    {
        double[] spd = RandomSpd(n, n);
        double[] l = (double[])spd.Clone();
        for (int i = 0; i < n; i++)
        {
            for (int j = i + 1; j < n; j++)
            {
                l[i * n + j] = double.NaN; // only the lower triangle may be read
            }
        }

        DenseKernels.CholeskyLower(l, n);

        for (int i = 0; i < n; i++)
        {
            for (int j = i + 1; j < n; j++)
            {
                Assert.Equal(0, l[i * n + j]);
            }
        }

        Matrix<double> factor = RowMajor(n, n, l);
        Matrix<double> a = RowMajor(n, n, spd);
        double error = (factor * factor.Transpose() - a).FrobeniusNorm() / a.FrobeniusNorm();
        Assert.True(error <= 1e-10, $"relative reconstruction error {error}");
    }

    [Fact]
    public void CholeskyLower_OfMatrixNotPositiveDefinite_ThrowsNamingThePivot()
    {
        double[] a = RandomSpd(300, 14);
        a[270 * 300 + 270] = -5; // leaves the leading 270×270 block positive definite
        var e = Assert.Throws<ArithmeticException>(() => DenseKernels.CholeskyLower(a, 300));
        Assert.Contains("pivot 270 is -", e.Message, StringComparison.Ordinal);

        double[] withNaN = RandomSpd(5, 15);
        withNaN[3 * 5 + 1] = double.NaN;
        e = Assert.Throws<ArithmeticException>(() => DenseKernels.CholeskyLower(withNaN, 5));
        Assert.Contains("pivot 3 is NaN", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 13)]
    [InlineData(65, 1)]
    [InlineData(200, 300)]
    public void SolveLower_MatchesMathNet(int n, int nrhs)
    {
        foreach (MatrixOp op in new[] { MatrixOp.None, MatrixOp.Transpose })
        {
            double[] l = RandomLower(n, n + nrhs);
            double[] b = RandomArray(n * nrhs, n * nrhs);
            Matrix<double> lower = RowMajor(n, n, LowerPart(l, n));
            Matrix<double> expected = (op == MatrixOp.None ? lower : lower.Transpose()).Solve(RowMajor(n, nrhs, b));

            DenseKernels.SolveLower(l, n, op, b, nrhs);

            Assert.True(MaxAbsDifference(expected.ToRowMajorArray(), b) <= 1e-10, $"{op}: {MaxAbsDifference(expected.ToRowMajorArray(), b)}");
        }
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 13)]
    [InlineData(65, 1)]
    [InlineData(300, 200)]
    public void SolveLowerRight_MatchesMathNet(int n, int m)
    {
        foreach (MatrixOp op in new[] { MatrixOp.None, MatrixOp.Transpose })
        {
            double[] l = RandomLower(n, 2 * n + m);
            double[] b = RandomArray(m * n, m + n);
            Matrix<double> lower = RowMajor(n, n, LowerPart(l, n));
            Matrix<double> opL = op == MatrixOp.None ? lower : lower.Transpose();

            // X·op(L) = B ⇔ op(L)ᵀ·Xᵀ = Bᵀ.
            Matrix<double> expected = opL.Transpose().Solve(RowMajor(m, n, b).Transpose()).Transpose();

            DenseKernels.SolveLowerRight(l, n, op, b, m);

            Assert.True(MaxAbsDifference(expected.ToRowMajorArray(), b) <= 1e-10, $"{op}: {MaxAbsDifference(expected.ToRowMajorArray(), b)}");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(65)]
    [InlineData(530)]
    public void InvertLower_TimesL_IsTheIdentity(int n)
    {
        double[] l = RandomLower(n, 3 * n, upperGarbage: 7);
        double[] inverse = (double[])l.Clone();
        DenseKernels.InvertLower(inverse, n);

        for (int i = 0; i < n; i++)
        {
            for (int j = i + 1; j < n; j++)
            {
                Assert.Equal(0, inverse[i * n + j]);
            }
        }

        Matrix<double> product = RowMajor(n, n, inverse) * RowMajor(n, n, LowerPart(l, n));
        double error = (product - DenseMatrix.CreateIdentity(n)).Enumerate().Max(Math.Abs);
        Assert.True(error <= 1e-12, $"max |L⁻¹·L − I| = {error}");
    }

    [Fact]
    public void InvertLower_WithAZeroOnTheDiagonal_Throws()
    {
        double[] l = [1, 0, 0, 2, 0, 0, 3, 4, 5];
        var e = Assert.Throws<ArithmeticException>(() => DenseKernels.InvertLower(l, 3));
        Assert.Contains("diagonal element 1", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 65)]
    [InlineData(63, 257)]
    [InlineData(300, 530)]
    public void MultiplyLower_MatchesTheDenseProductWithTheLowerTriangle(int m, int n)
    {
        double[] l = RandomLower(n, m + n, upperGarbage: 1e30);
        double[] b = RandomArray(m * n, m * n);
        double[] result = DenseKernels.MultiplyLower(b, m, n, l);
        double[] expected = (RowMajor(m, n, b) * RowMajor(n, n, LowerPart(l, n))).ToRowMajorArray();
        Assert.True(MaxAbsDifference(expected, result) <= 1e-12 * Math.Sqrt(n), $"max difference {MaxAbsDifference(expected, result)}");
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(255, 7)]
    [InlineData(257, 65)]
    [InlineData(600, 200)]
    [InlineData(70, 401)]
    public void AccumulateGram_MatchesAFloat64Loop(int tokens, int d)
    {
        var r = new Random(tokens + d);
        float[] x = [.. Enumerable.Range(0, tokens * d).Select(_ => (float)(r.NextDouble() * 2 - 1))];
        double[] sum = RandomArray(d * d, 16);
        double[] expected = (double[])sum.Clone();
        for (int i = 0; i < d; i++)
        {
            for (int j = 0; j <= i; j++)
            {
                double s = 0;
                for (int t = 0; t < tokens; t++)
                {
                    s += (double)x[t * d + i] * x[t * d + j];
                }

                expected[i * d + j] += s;
            }
        }

        double[] before = (double[])sum.Clone();
        DenseKernels.AccumulateGram(x, tokens, d, sum);

        // fp32 products summed in fp32 over ≤ 256 tokens: each element is within 1e-6 of the size of its terms
        // (Σ_t |x_ti·x_tj| ≤ √(G_ii·G_jj)), far above the ~2⁻²⁴·√256 typical error and within the 256·2⁻²⁴ worst case.
        for (int i = 0; i < d; i++)
        {
            double gii = expected[i * d + i] - before[i * d + i];
            for (int j = 0; j < d; j++)
            {
                if (j > i)
                {
                    Assert.Equal(before[i * d + j], sum[i * d + j]); // upper triangle untouched
                    continue;
                }

                double gjj = expected[j * d + j] - before[j * d + j];
                double scale = Math.Sqrt(gii * gjj);
                Assert.True(Math.Abs(sum[i * d + j] - expected[i * d + j]) <= 1e-6 * scale + 1e-15,
                    $"({i},{j}): {sum[i * d + j]} vs {expected[i * d + j]}");
            }
        }
    }

    [Theory]
    [InlineData("Portable")]
    [InlineData("Scalar")]
    public void AccumulateGram_PortableAndScalarKernels_MatchTheDefaultKernel(string kernel)
    {
        const int tokens = 300, d = 53;
        var r = new Random(17);
        float[] x = [.. Enumerable.Range(0, tokens * d).Select(_ => (float)(r.NextDouble() * 2 - 1))];
        var expected = new double[d * d];
        var sum = new double[d * d];
        DenseKernels.AccumulateGram(x, tokens, d, expected);
        DenseKernels.AccumulateGram(Enum.Parse<KernelPath>(kernel), x, tokens, d, sum);
        for (int i = 0; i < d * d; i++)
        {
            Assert.Equal(expected[i], sum[i], 1e-6 * tokens);
        }
    }
}
