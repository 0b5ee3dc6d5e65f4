using GlowQ.Engine;
using GlowQ.Runtime.Kernels;

namespace GlowQ.Runtime.Tests;

public sealed class W4GemvTests
{
    private const double Tolerance = 1e-5;

    public static TheoryData<int, int, int, int> Shapes => new()
    {
        // rows, cols, group size, tokens: odd rows, columns that do not fill the last group, every group size.
        { 1, 32, 32, 1 },
        { 7, 100, 32, 1 },
        { 33, 96, 32, 3 },
        { 17, 200, 64, 1 },
        { 64, 1000, 128, 3 },
        { 5, 130, 128, 17 },
        { 129, 256, 64, 17 },
        { 3, 50, 16, 3 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void PlainProduct_MatchesFloat64Dequantized_OnEveryPath(int rows, int cols, int groupSize, int tokens)
    {
        var rng = new Random(rows * 1000 + cols + groupSize + tokens);
        Int4Matrix w = Int4TestData.Matrix(rng, rows, cols, groupSize, bias: true);
        float[] x = Int4TestData.Floats(rng, tokens * cols, 1);
        (double[] expected, double[] magnitude) = Int4TestData.Reference(w, default, default, 0, x, tokens);
        using var pool = new WorkerPool(2);
        var gemv = new W4Gemv(pool, cols, maxTokens: 17);
        foreach (Int4Path path in SupportedPaths())
        {
            gemv.Path = path;
            var y = new float[tokens * rows];
            gemv.Run(w, x, y, tokens);
            Int4TestData.AssertClose(expected, magnitude, y, Tolerance, $"{path}");
        }
    }

    [Theory]
    [InlineData(new[] { 64, 16, 16 }, 96, 32, 1, 1)]
    [InlineData(new[] { 64, 16, 16 }, 96, 32, 8, 3)]
    [InlineData(new[] { 33, 9, 9 }, 200, 64, 13, 17)]
    [InlineData(new[] { 40 }, 300, 128, 64, 1)]
    [InlineData(new[] { 70, 70 }, 256, 32, 64, 3)]
    [InlineData(new[] { 21, 5, 5 }, 70, 16, 4, 1)]
    public void CorrectedUnit_MatchesFloat64DenseQPlusAB_ForEveryMember(int[] rows, int cols, int groupSize, int rank, int tokens)
    {
        var rng = new Random(cols + rank * 7 + tokens);
        Int4Unit unit = Int4TestData.Unit(rng, rows, cols, groupSize, rank, bias: true);
        float[] x = Int4TestData.Floats(rng, tokens * cols, 1);
        using var pool = new WorkerPool(2);
        var fused = new W4GemvWithCorrection(pool, cols, maxRank: 64, maxTokens: 17);
        foreach (Int4Path path in SupportedPaths())
        {
            fused.Path = path;
            float[][] outputs = [.. rows.Select(r => new float[tokens * r])];
            fused.Run(unit, true, x, tokens, outputs);
            for (int m = 0; m < rows.Length; m++)
            {
                (double[] expected, double[] magnitude) = Int4TestData.Reference(unit.Members[m], unit.A[m], unit.B, rank, x, tokens);
                Int4TestData.AssertClose(expected, magnitude, outputs[m], Tolerance, $"{path}, member {m}");
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(17)]
    public void MaskBitZero_IsExactlyThePlainProduct(int tokens)
    {
        var rng = new Random(tokens);
        Int4Unit unit = Int4TestData.Unit(rng, [48, 16, 16], 160, 32, 8);
        float[] x = Int4TestData.Floats(rng, tokens * 160, 1);
        using var pool = new WorkerPool(1);
        var fused = new W4GemvWithCorrection(pool, 160, 8, 17);
        var plain = new W4Gemv(pool, 160, 17);
        float[][] outputs = [new float[tokens * 48], new float[tokens * 16], new float[tokens * 16]];
        fused.Run(unit, false, x, tokens, outputs);
        for (int m = 0; m < 3; m++)
        {
            var y = new float[outputs[m].Length];
            plain.Run(unit.Members[m], x, y, tokens);
            Assert.Equal(y, outputs[m]);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(17)]
    public void SwiGlu_IsSiluOfGateTimesUp_OfTheSeparateProducts(int tokens)
    {
        var rng = new Random(100 + tokens);
        Int4Unit unit = Int4TestData.Unit(rng, [75, 75], 192, 64, 16);
        float[] x = Int4TestData.Floats(rng, tokens * 192, 1);
        using var pool = new WorkerPool(2);
        var fused = new W4GemvWithCorrection(pool, 192, 16, 17);
        foreach (bool restore in (bool[])[true, false])
        {
            float[] gate = new float[tokens * 75], up = new float[tokens * 75], hidden = new float[tokens * 75];
            fused.Run(unit, restore, x, tokens, gate, up);
            fused.RunSwiGlu(unit, restore, x, hidden, tokens);
            for (int i = 0; i < hidden.Length; i++)
            {
                float expected = gate[i] / (1f + MathF.Exp(-gate[i])) * up[i];
                Assert.Equal(expected, hidden[i], 1e-6f * Math.Max(1f, Math.Abs(expected)));
            }
        }
    }

    [Fact]
    public void VectorAndScalarPaths_AgreeToRounding_OnAWideUnit()
    {
        var rng = new Random(9);
        Int4Unit unit = Int4TestData.Unit(rng, [128, 32, 32], 2080, 32, 64);
        float[] x = Int4TestData.Floats(rng, 2080, 1);
        using var pool = new WorkerPool(1);
        var fused = new W4GemvWithCorrection(pool, 2080, 64);
        var results = new Dictionary<Int4Path, float[]>();
        foreach (Int4Path path in SupportedPaths())
        {
            fused.Path = path;
            float[] q = new float[128], k = new float[32], v = new float[32];
            fused.Run(unit, true, x, 1, q, k, v);
            results[path] = [.. q, .. k, .. v];
        }

        float[] scalar = results[Int4Path.Scalar];
        double scale = scalar.Max(Math.Abs);
        foreach ((Int4Path path, float[] y) in results)
        {
            for (int i = 0; i < y.Length; i++)
            {
                Assert.True(Math.Abs(y[i] - scalar[i]) <= 1e-5 * scale, $"{path} output {i}: {y[i]} vs scalar {scalar[i]}");
            }
        }
    }

    [Fact]
    public void ThreadCount_DoesNotChangeAnyBit()
    {
        var rng = new Random(4);
        Int4Unit unit = Int4TestData.Unit(rng, [300, 77, 77], 1024, 128, 32);
        float[] x = Int4TestData.Floats(rng, 3 * 1024, 1);
        float[][] Run(int threads)
        {
            using var pool = new WorkerPool(threads);
            var fused = new W4GemvWithCorrection(pool, 1024, 32, 3);
            float[][] outputs = [new float[3 * 300], new float[3 * 77], new float[3 * 77]];
            fused.Run(unit, true, x, 3, outputs);
            return outputs;
        }

        float[][] one = Run(1), two = Run(2);
        for (int m = 0; m < 3; m++)
        {
            Assert.Equal(one[m], two[m]);
        }
    }

    [Fact]
    public void PromptsLongerThanMaxTokens_RunInChunks_WithTheSameResults()
    {
        var rng = new Random(5);
        Int4Unit unit = Int4TestData.Unit(rng, [40, 40], 128, 32, 4);
        float[] x = Int4TestData.Floats(rng, 11 * 128, 1);
        using var pool = new WorkerPool(1);
        float[] chunked = new float[11 * 40], whole = new float[11 * 40];
        new W4GemvWithCorrection(pool, 128, 4, 4).RunSwiGlu(unit, true, x, chunked, 11);
        new W4GemvWithCorrection(pool, 128, 4, 11).RunSwiGlu(unit, true, x, whole, 11);
        for (int i = 0; i < whole.Length; i++)
        {
            Assert.Equal(whole[i], chunked[i], 1e-5f * Math.Max(1f, Math.Abs(whole[i])));
        }
    }

    [Fact]
    public void MisshapenBuffers_AreRejected()
    {
        var rng = new Random(6);
        Int4Unit unit = Int4TestData.Unit(rng, [8, 8], 64, 32, 2);
        using var pool = new WorkerPool(1);
        var fused = new W4GemvWithCorrection(pool, 64, 2);
        Assert.Throws<ArgumentException>(() => fused.Run(unit, true, new float[63], 1, new float[8], new float[8]));
        Assert.Throws<ArgumentException>(() => fused.Run(unit, true, new float[64], 1, new float[8]));
        Assert.Throws<ArgumentException>(() => fused.Run(unit, true, new float[64], 1, new float[8], new float[7]));
        Assert.Throws<ArgumentException>(() => new W4GemvWithCorrection(pool, 64, 1).Run(unit, true, new float[64], 1, new float[8], new float[8]));
        Int4Matrix wide = Int4TestData.Matrix(rng, 2, 600, 32);
        Assert.Throws<ArgumentException>(() => new W4Gemv(pool, 32).Run(wide, new float[600], new float[2]));
    }

    internal static IEnumerable<Int4Path> SupportedPaths()
    {
        yield return Int4Path.Scalar;
        if (System.Runtime.Intrinsics.Vector128.IsHardwareAccelerated)
        {
            yield return Int4Path.Vector128;
        }

        if (System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated)
        {
            yield return Int4Path.Vector256;
        }
    }
}
