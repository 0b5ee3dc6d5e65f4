using GlowQ.Converter.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra.Double;

namespace GlowQ.Benchmarks.LinearAlgebra;

/// <summary>Seeded inputs shaped like the converter's.</summary>
internal static class Data
{
    public static double[] Uniform(long length, int seed)
    {
        var r = new Random(seed);
        var values = new double[length];
        for (long i = 0; i < length; i++)
        {
            values[i] = r.NextDouble() * 2 - 1;
        }

        return values;
    }

    /// <summary>Activations with a few heavy channels, as LLM inputs have.</summary>
    public static float[] Activations(int tokens, int d, int seed)
    {
        var r = new Random(seed);
        var x = new float[(long)tokens * d];
        for (long i = 0; i < x.Length; i++)
        {
            x[i] = (float)(r.NextDouble() * 2 - 1);
        }

        for (int t = 0; t < tokens; t++)
        {
            x[(long)t * d] *= 20;
            x[(long)t * d + 7] *= 5;
        }

        return x;
    }

    /// <summary>Uniform in ±half a 4-bit step of a typical weight group (≈ 0.003): what W − Q(W) looks like.</summary>
    public static float[] QuantizationError(int length, int seed)
    {
        var r = new Random(seed);
        var e = new float[length];
        for (int i = 0; i < length; i++)
        {
            e[i] = (float)((r.NextDouble() - 0.5) * 0.003);
        }

        return e;
    }

    /// <summary>A covariance-like SPD matrix, full (both triangles): XᵀX/N of 2n activations, plus 0.05·I.</summary>
    public static double[] Spd(int n, int seed)
    {
        int tokens = Math.Min(2 * n, 4096);
        var sum = new double[(long)n * n];
        DenseKernels.AccumulateGram(Activations(tokens, n, seed), tokens, n, sum);
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j <= i; j++)
            {
                double v = sum[(long)i * n + j] / tokens + (i == j ? 0.05 : 0);
                sum[(long)i * n + j] = v;
                sum[(long)j * n + i] = v;
            }
        }

        return sum;
    }

    /// <summary>A MathNet matrix holding row-major <paramref name="values"/> (its storage is column-major).</summary>
    public static Matrix<double> Matrix(int rows, int cols, double[] values) => new DenseMatrix(cols, rows, values).Transpose();
}
