using GlowQ.Engine;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Kernels;

namespace GlowQ.Runtime.Tests;

/// <summary>The register-blocked prefill product (eight token columns per pass over a row) and the decode/prefill split.</summary>
public sealed class W4PrefillTests
{
    private const double Tolerance = 1e-5;

    public static TheoryData<int, int, int> TokenCounts()
    {
        // tokens 1..9 cross the decode/prefill threshold and a partial token block; rows are no multiple of 8 or 16.
        var data = new TheoryData<int, int, int>();
        foreach ((int cols, int group) in new[] { (200, 32), (300, 96), (256, 128) })
        {
            for (int tokens = 1; tokens <= 9; tokens++)
            {
                data.Add(cols, group, tokens);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(TokenCounts))]
    public void CorrectedUnit_MatchesFloat64DenseQPlusAB_ForEveryTokenCount(int cols, int groupSize, int tokens)
    {
        var rng = new Random((cols * 31) + (groupSize * 7) + tokens);
        int[] rows = [37, 21, 21];
        Int4Unit unit = Int4TestData.Unit(rng, rows, cols, groupSize, 8, bias: true);
        float[] x = Int4TestData.Floats(rng, tokens * cols, 1);
        using var pool = new WorkerPool(2);
        var fused = new W4GemvWithCorrection(pool, cols, maxRank: 8, maxTokens: 9);
        foreach (Int4Path path in W4GemvTests.SupportedPaths())
        {
            fused.Path = path;
            float[][] outputs = [.. rows.Select(r => new float[tokens * r])];
            fused.Run(unit, true, x, tokens, outputs);
            for (int m = 0; m < rows.Length; m++)
            {
                (double[] expected, double[] magnitude) = Int4TestData.Reference(unit.Members[m], unit.A[m], unit.B, 8, x, tokens);
                Int4TestData.AssertClose(expected, magnitude, outputs[m], Tolerance, $"{path}, {tokens} tokens, member {m}");
            }
        }
    }

    [Theory]
    [InlineData(4)]
    [InlineData(9)]
    [InlineData(19)]
    public void SwiGluPrefill_IsSiluOfGateTimesUp_OfTheFloat64Products(int tokens)
    {
        var rng = new Random(200 + tokens);
        Int4Unit unit = Int4TestData.Unit(rng, [45, 45], 320, 64, 4);
        float[] x = Int4TestData.Floats(rng, tokens * 320, 1);
        (double[] gate, double[] gateMagnitude) = Int4TestData.Reference(unit.Members[0], unit.A[0], unit.B, 4, x, tokens);
        (double[] up, double[] upMagnitude) = Int4TestData.Reference(unit.Members[1], unit.A[1], unit.B, 4, x, tokens);
        using var pool = new WorkerPool(2);
        var fused = new W4GemvWithCorrection(pool, 320, 4, 16);
        foreach (Int4Path path in W4GemvTests.SupportedPaths())
        {
            fused.Path = path;
            var hidden = new float[tokens * 45];
            fused.RunSwiGlu(unit, true, x, hidden, tokens);
            for (int i = 0; i < hidden.Length; i++)
            {
                double silu = gate[i] / (1 + Math.Exp(-gate[i]));
                double expected = silu * up[i];

                // silu's slope is at most 1.1, so its error is bounded by gate's; the product adds up's.
                double allowed = Tolerance * ((1.1 * gateMagnitude[i] * Math.Abs(up[i])) + (Math.Abs(silu) * upMagnitude[i])) + 1e-30;
                Assert.True(Math.Abs(hidden[i] - expected) <= allowed, $"{path}, output {i}: {hidden[i]} vs {expected}");
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(9)]
    public void ThreadCount_DoesNotChangeAnyBit_InDecodeOrPrefill(int tokens)
    {
        var rng = new Random(40 + tokens);
        Int4Unit qkv = Int4TestData.Unit(rng, [300, 77, 77], 1024, 128, 32, bias: true);
        Int4Unit mlp = Int4TestData.Unit(rng, [333, 333], 1024, 128, 32);
        float[] x = Int4TestData.Floats(rng, tokens * 1024, 1);
        float[][] Run(int threads)
        {
            using var pool = new WorkerPool(threads);
            var fused = new W4GemvWithCorrection(pool, 1024, 32, 9);
            float[][] outputs = [new float[tokens * 300], new float[tokens * 77], new float[tokens * 77], new float[tokens * 333]];
            fused.Run(qkv, true, x, tokens, outputs[0], outputs[1], outputs[2]);
            fused.RunSwiGlu(mlp, true, x, outputs[3], tokens);
            return outputs;
        }

        float[][] one = Run(1), two = Run(2);
        for (int m = 0; m < one.Length; m++)
        {
            Assert.Equal(one[m], two[m]);
        }
    }

    [Theory]
    [InlineData(32, 1)]
    [InlineData(64, 8)]
    [InlineData(96, 5)]
    [InlineData(128, 3)]
    public void CodeDotTokenBlock_EqualsTheDequantizedRowTimesEachToken(int groupSize, int tokens)
    {
        var rng = new Random(groupSize + tokens);
        const int cols = 480; // 15 half-blocks: the Vector256 kernel finishes on a lone half
        Int4Matrix w = Int4TestData.Matrix(rng, 1, cols, groupSize);
        float[] x = Int4TestData.Floats(rng, tokens * cols, 1);
        var dense = new float[cols];
        Int4Encoding.DequantizeRow(w.Codes.Span, w.Scales.Span, w.Zeros.Span, groupSize, dense);

        int halves = w.PaddedCols / Int4Kernels.HalfBlock;
        float[] groupScales = [.. w.Scales.ToArray().Select(s => (float)s)];
        float[] groupZeroScales = [.. groupScales.Select((s, g) => s * Int4Encoding.GetNibble(w.Zeros.Span, g))];
        float[] halfScales = new float[halves], halfZeroScales = new float[halves];
        Int4Kernels.ExpandToHalves(groupScales, groupSize, halfScales);
        Int4Kernels.ExpandToHalves(groupZeroScales, groupSize, halfZeroScales);
        var xp = new float[Int4Kernels.NibbleOrderLength(w.PaddedCols) * Int4Kernels.TokenBlock];
        Int4Kernels.PreparePrefillInput(x, tokens, cols, xp);

        foreach (Int4Path path in W4GemvTests.SupportedPaths().Where(p => p != Int4Path.Scalar))
        {
            var sums = new float[Int4Kernels.TokenBlock];
            Int4Kernels.CodeDotTokenBlock(path, w.Codes.Span, halfScales, halfZeroScales, xp, sums);
            for (int t = 0; t < Int4Kernels.TokenBlock; t++)
            {
                double expected = 0, magnitude = 0;
                for (int i = 0; t < tokens && i < cols; i++)
                {
                    expected += (double)dense[i] * x[t * cols + i];
                    magnitude += Math.Abs((double)dense[i] * x[t * cols + i]);
                }

                // Token slots past the block's tokens read zero input and must sum to exactly zero.
                Assert.True(Math.Abs(sums[t] - expected) <= Tolerance * magnitude, $"{path}, token {t}: {sums[t]} vs {expected}");
            }
        }
    }
}
