using GlowQ.Format.Glq;
using GlowQ.Runtime.Kernels;

namespace GlowQ.Runtime.Tests;

/// <summary>Random int4 matrices and units in the §6 layout, and the float64 reference products they must match.</summary>
internal static class Int4TestData
{
    public static Int4Matrix Matrix(Random rng, int rows, int cols, int groupSize, bool bias = false)
    {
        int groups = (cols + groupSize - 1) / groupSize;
        var codes = new byte[rows * Int4Encoding.PackedRowBytes(groups * groupSize)];
        var zeros = new byte[rows * Int4Encoding.PackedRowBytes(groups)];
        var scales = new Half[rows * groups];

        // Padding codes stay random, not the zero point: the kernels must ignore them whatever they hold.
        rng.NextBytes(codes);
        rng.NextBytes(zeros);
        for (int i = 0; i < scales.Length; i++)
        {
            scales[i] = (Half)((rng.NextDouble() * 0.1 + 0.001) * (rng.Next(2) * 2 - 1));
        }

        return Int4Matrix.FromQuantized(rows, cols, groupSize, codes, scales, zeros, bias ? Floats(rng, rows, 1) : null);
    }

    public static Int4Unit Unit(Random rng, int[] rows, int cols, int groupSize, int rank, bool bias = false)
    {
        Int4Matrix[] members = [.. rows.Select(r => Matrix(rng, r, cols, groupSize, bias))];
        return rank == 0 ? new Int4Unit(members) : new Int4Unit(members, rank, Halves(rng, rank * cols, 0.1), [.. rows.Select(r => (ReadOnlyMemory<Half>)Halves(rng, r * rank, 0.1))]);
    }

    public static float[] Floats(Random rng, int count, double scale) =>
        [.. Enumerable.Range(0, count).Select(_ => (float)((rng.NextDouble() * 2 - 1) * scale))];

    public static Half[] Halves(Random rng, int count, double scale) =>
        [.. Enumerable.Range(0, count).Select(_ => (Half)((rng.NextDouble() * 2 - 1) * scale))];

    /// <summary>
    /// (Q(W) + A·B)·x_t + bias in float64 for every token, from Int4Encoding.DequantizeMatrix, and alongside it the
    /// magnitude Σ|terms| each output's fp32 rounding error scales with.
    /// </summary>
    public static (double[] Y, double[] Magnitude) Reference(Int4Matrix w, ReadOnlyMemory<Half> a, ReadOnlyMemory<Half> b, int rank, float[] x, int tokens)
    {
        float[] q = w.Dequantize();
        var y = new double[tokens * w.Rows];
        var magnitude = new double[tokens * w.Rows];
        for (int t = 0; t < tokens; t++)
        {
            ReadOnlySpan<float> xt = x.AsSpan(t * w.Cols, w.Cols);
            var bx = new double[rank];
            var bxMagnitude = new double[rank];
            for (int j = 0; j < rank; j++)
            {
                for (int i = 0; i < w.Cols; i++)
                {
                    bx[j] += (double)b.Span[j * w.Cols + i] * xt[i];
                    bxMagnitude[j] += Math.Abs((double)b.Span[j * w.Cols + i] * xt[i]);
                }
            }

            for (int o = 0; o < w.Rows; o++)
            {
                double sum = w.Bias.IsEmpty ? 0 : w.Bias.Span[o], size = Math.Abs(sum);
                for (int i = 0; i < w.Cols; i++)
                {
                    double dense = q[o * w.Cols + i];
                    for (int j = 0; j < rank; j++)
                    {
                        dense += (double)a.Span[o * rank + j] * (double)b.Span[j * w.Cols + i];
                    }

                    sum += dense * xt[i];
                    size += Math.Abs((double)q[o * w.Cols + i] * xt[i]);
                }

                for (int j = 0; j < rank; j++)
                {
                    size += Math.Abs((double)a.Span[o * rank + j]) * bxMagnitude[j];
                }

                y[t * w.Rows + o] = sum;
                magnitude[t * w.Rows + o] = size;
            }
        }

        return (y, magnitude);
    }

    public static void AssertClose(double[] expected, double[] magnitude, float[] actual, double relative, string what)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            double error = Math.Abs(actual[i] - expected[i]);
            Assert.True(error <= relative * magnitude[i] + 1e-30,
                $"{what}: output {i} is {actual[i]}, expected {expected[i]} (error {error:E2}, allowed {relative * magnitude[i]:E2})");
        }
    }
}
