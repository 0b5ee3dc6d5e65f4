namespace GlowQ.Engine.Tests;

public sealed class MatMulTests
{
    private static float[] Random(int n, int seed)
    {
        var r = new Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++)
        {
            a[i] = (float)(r.NextDouble() * 2 - 1);
        }

        return a;
    }

    private static double[] Reference(float[] w, float[]? bias, float[] x, int rows, int cols, int tokens)
    {
        var y = new double[tokens * rows];
        for (int t = 0; t < tokens; t++)
        {
            for (int o = 0; o < rows; o++)
            {
                double s = bias?[o] ?? 0;
                for (int i = 0; i < cols; i++)
                {
                    s += (double)w[o * cols + i] * x[t * cols + i];
                }

                y[t * rows + o] = s;
            }
        }

        return y;
    }

    [Theory]
    [InlineData(1, 1, 1, 1)]
    [InlineData(7, 13, 1, 2)]   // ragged row block and a scalar tail
    [InlineData(64, 172, 1, 2)]
    [InlineData(172, 64, 5, 3)]
    [InlineData(257, 300, 9, 4)]
    [InlineData(512, 512, 3, 2)] // large enough to go parallel
    public void Product_EqualsFloat64Reference(int rows, int cols, int tokens, int threads)
    {
        float[] w = Random(rows * cols, 1), x = Random(tokens * cols, 2), bias = Random(rows, 3);
        double[] expected = Reference(w, bias, x, rows, cols, tokens);
        using var pool = new WorkerPool(threads);
        var mm = new MatMul(pool, cols);
        var y = new float[tokens * rows];
        mm.Run(WeightMatrix.FromSingle(rows, cols, w, bias), x, y, tokens);
        for (int i = 0; i < y.Length; i++)
        {
            Assert.True(Math.Abs(y[i] - expected[i]) <= 1e-5 * (1 + cols), $"y[{i}] = {y[i]}, expected {expected[i]}");
        }
    }

    [Theory]
    [InlineData(33, 70, 1)]
    [InlineData(128, 256, 4)]
    public void HalfWeights_EqualTheProductOfTheirFp32Values(int rows, int cols, int tokens)
    {
        float[] w = Random(rows * cols, 4), x = Random(tokens * cols, 5);
        var half = new Half[w.Length];
        var widened = new float[w.Length];
        for (int i = 0; i < w.Length; i++)
        {
            half[i] = (Half)w[i];
            widened[i] = (float)half[i];
        }

        double[] expected = Reference(widened, null, x, rows, cols, tokens);
        using var pool = new WorkerPool(2);
        var y = new float[tokens * rows];
        new MatMul(pool, cols).Run(WeightMatrix.FromHalf(rows, cols, half), x, y, tokens);
        for (int i = 0; i < y.Length; i++)
        {
            Assert.True(Math.Abs(y[i] - expected[i]) <= 1e-5 * (1 + cols), $"y[{i}] = {y[i]}, expected {expected[i]}");
        }
    }

    [Fact]
    public void Run_WithTooSmallOutput_Throws()
    {
        using var pool = new WorkerPool(1);
        var w = WeightMatrix.FromSingle(4, 4, new float[16]);
        Assert.Throws<ArgumentException>(() => new MatMul(pool, 4).Run(w, new float[8], new float[7], 2));
    }
}

public sealed class HalfConversionTests
{
    [Fact]
    public void HalfBitsToSingle_IsExactForEveryHalfValue()
    {
        // All 65,536 bit patterns: zeros, subnormals, normals, infinities and NaNs.
        int width = System.Numerics.Vector<uint>.Count;
        var bits = new uint[width];
        for (int start = 0; start < 65536; start += width)
        {
            for (int k = 0; k < width; k++)
            {
                bits[k] = (uint)(start + k);
            }

            var converted = MatMul.HalfBitsToSingle(new System.Numerics.Vector<uint>(bits));
            for (int k = 0; k < width; k++)
            {
                float expected = (float)BitConverter.UInt16BitsToHalf((ushort)bits[k]);
                float actual = converted[k];
                Assert.True(
                    float.IsNaN(expected) ? float.IsNaN(actual) : BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(actual),
                    $"half 0x{bits[k]:X4}: expected {expected}, got {actual}");
            }
        }
    }
}

public sealed class AttentionKernelTests
{
    [Theory]
    [InlineData(8, 1)]
    [InlineData(8, 37)]
    [InlineData(13, 5)]   // head dim with a scalar tail
    [InlineData(64, 300)]
    [InlineData(128, 9)]
    public void ScoresAndWeightedSum_EqualFloat64Loops(int headDim, int positions)
    {
        var r = new Random(headDim * 1000 + positions);
        float[] q = [.. Enumerable.Range(0, headDim).Select(_ => (float)(r.NextDouble() - 0.5))];
        float[] keys = [.. Enumerable.Range(0, headDim * positions).Select(_ => (float)(r.NextDouble() - 0.5))];
        float[] values = [.. Enumerable.Range(0, headDim * positions).Select(_ => (float)(r.NextDouble() - 0.5))];
        var scores = new float[positions];
        Attention.Scores(q, keys, 0.5f, scores);
        var output = new float[headDim];
        Attention.WeightedSum(scores, values, output);
        for (int s = 0; s < positions; s++)
        {
            double expected = 0;
            for (int i = 0; i < headDim; i++)
            {
                expected += (double)q[i] * keys[s * headDim + i];
            }

            Assert.True(Math.Abs(expected * 0.5 - scores[s]) < 1e-5, $"score {s}: {scores[s]} vs {expected * 0.5}");
        }

        for (int i = 0; i < headDim; i++)
        {
            double expected = 0;
            for (int s = 0; s < positions; s++)
            {
                expected += (double)scores[s] * values[s * headDim + i];
            }

            Assert.True(Math.Abs(expected - output[i]) < 1e-4, $"output {i}: {output[i]} vs {expected}");
        }
    }
}
