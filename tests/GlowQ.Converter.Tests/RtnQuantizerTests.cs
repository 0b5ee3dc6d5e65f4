using GlowQ.Format;
using GlowQ.Format.Glq;
using GlowQ.TestSupport;

namespace GlowQ.Converter.Tests;

public sealed class RtnQuantizerTests
{
    private static float[] Random(int n, int seed, float scale = 1)
    {
        var r = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1) * scale)];
    }

    [Theory]
    [InlineData(4, 128, 128)]
    [InlineData(3, 172, 128)] // stories260K down_proj: 172 columns, the last group padded
    [InlineData(5, 64, 32)]
    public void Dequantized_IsWithinHalfAStepOfEveryWeight(int rows, int cols, int groupSize)
    {
        float[] w = Random(rows * cols, rows + cols);
        QuantizedMatrix q = RtnQuantizer.Quantize(w, rows, cols, groupSize);
        var back = new float[w.Length];
        q.Dequantize(back);
        for (int r = 0; r < rows; r++)
        {
            for (int i = 0; i < cols; i++)
            {
                float s = (float)q.ScaleRow(r)[i / groupSize];
                float error = Math.Abs(back[r * cols + i] - w[r * cols + i]);
                Assert.True(error <= s / 2 * (1 + 1e-5f), $"({r},{i}): |Q(w) − w| = {error} > s/2 = {s / 2}");
            }
        }
    }

    [Fact]
    public void GroupMinimumAndMaximum_AreRepresentedToWithinHalfAStep_AndZeroExactly()
    {
        float[] w = [-0.7f, -0.2f, 0f, 0.1f, 0.3f, 0.9f, 0.05f, -0.01f];
        QuantizedMatrix q = RtnQuantizer.Quantize(w, 1, 8, 8);
        var back = new float[8];
        q.Dequantize(back);
        Assert.Equal(0f, back[2]); // zero lies in the range, on a code
        Assert.Equal((Half)((0.9f - -0.7f) / 15), q.Scales[0]); // (max − min)/15, stored as fp16
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(0.37f)]
    [InlineData(-2.5f)]
    [InlineData(1e-6f)]
    public void ConstantGroup_DequantizesWithoutNaN_AndCloseToItsValue(float value)
    {
        float[] w = [.. Enumerable.Repeat(value, 16)];
        QuantizedMatrix q = RtnQuantizer.Quantize(w, 1, 16, 16);
        var back = new float[16];
        q.Dequantize(back);
        float step = (float)q.Scales[0];
        Assert.All(back, b => Assert.True(float.IsFinite(b) && Math.Abs(b - value) <= step / 2, $"{b} vs {value} (step {step})"));
        if (value != 0 && Math.Abs(value) > 1e-3)
        {
            Assert.All(back, b => Assert.Equal(value, b, 2));
        }
    }

    [Fact]
    public void PaddingColumns_HoldTheZeroPoint_SoTheyDequantizeToZero()
    {
        float[] w = Random(2 * 10, 3);
        QuantizedMatrix q = RtnQuantizer.Quantize(w, 2, 10, 8);
        Assert.Equal(16, q.PaddedCols);
        for (int r = 0; r < 2; r++)
        {
            int zero = Int4Encoding.GetNibble(q.ZeroRow(r), 1);
            for (int i = 10; i < 16; i++)
            {
                Assert.Equal(zero, Int4Encoding.GetNibble(q.CodeRow(r), i));
            }
        }
    }

    [Fact]
    public void Codes_AreChosenAgainstTheStoredFp16Scale()
    {
        // Re-deriving each code from the stored (fp16) scale and zero reproduces it: no fp32-scale rounding mismatch.
        float[] w = Random(3 * 64, 9, 0.02f);
        QuantizedMatrix q = RtnQuantizer.Quantize(w, 3, 64, 32);
        for (int r = 0; r < 3; r++)
        {
            for (int i = 0; i < 64; i++)
            {
                float s = (float)q.ScaleRow(r)[i / 32];
                int z = Int4Encoding.GetNibble(q.ZeroRow(r), i / 32);
                int expected = Math.Clamp((int)MathF.Round(w[r * 64 + i] / s + z, MidpointRounding.ToEven), 0, 15);
                Assert.Equal(expected, Int4Encoding.GetNibble(q.CodeRow(r), i));
            }
        }
    }

    [Fact]
    public void Stories260K_RtnError_IsSmallRelativeToTheWeights()
    {
        // Relative Frobenius error of 4-bit g128 RTN on real trained weights: a sanity band, not a tuned figure.
        using ICheckpoint c = CheckpointExtensions.Open(SharedData.Stories260KBin);
        TensorView t = c.FindTensor(LlamaTensorNames.Gate(0))!;
        var w = new float[t.ElementCount];
        t.CopyTo(w);
        QuantizedMatrix q = RtnQuantizer.Quantize(w, 172, 64, 128);
        var back = new float[w.Length];
        q.Dequantize(back);
        double error = Math.Sqrt(w.Zip(back, (a, b) => (double)(a - b) * (a - b)).Sum());
        double norm = Math.Sqrt(w.Sum(a => (double)a * a));
        Assert.InRange(error / norm, 0.01, 0.15);
    }

    [Fact]
    public void AllPositiveGroup_HasZeroPointZero_AndAllNegativeGroup_HasZeroPointFifteen()
    {
        float[] w = [0.1f, 0.5f, 0.9f, 1.3f, -0.2f, -0.6f, -1.0f, -1.4f];
        QuantizedMatrix q = RtnQuantizer.Quantize(w, 1, 8, 4);
        Assert.Equal(0, Int4Encoding.GetNibble(q.ZeroRow(0), 0)); // range [0, 1.3]: 0 is the lowest code
        Assert.Equal(15, Int4Encoding.GetNibble(q.ZeroRow(0), 1)); // range [-1.4, 0]: 0 is the highest code
        var back = new float[8];
        q.Dequantize(back);
        for (int i = 0; i < 8; i++)
        {
            float s = (float)q.Scales[i / 4];
            Assert.True(Math.Abs(back[i] - w[i]) <= s / 2 * (1 + 1e-5f), $"{i}: {back[i]} vs {w[i]}");
            Assert.True(i < 4 ? back[i] >= 0 : back[i] <= 0, "dequantised values keep the group's sign");
        }
    }

    [Fact]
    public void ExactHalfSteps_RoundHalfToEven()
    {
        // Range [0, 15] gives scale 1 (exact in fp16) and zero point 0, so w/s + z is w itself.
        float[] w = [0f, 15f, 0.5f, 1.5f, 2.5f, 3.5f, 12.5f, 13.5f];
        QuantizedMatrix q = RtnQuantizer.Quantize(w, 1, 8, 8);
        Assert.Equal(Half.One, q.Scales[0]);
        int[] codes = [.. Enumerable.Range(0, 8).Select(i => (int)Int4Encoding.GetNibble(q.CodeRow(0), i))];
        Assert.Equal([0, 15, 0, 2, 2, 4, 12, 14], codes);
    }

    [Fact]
    public void Codes_StayInZeroToFifteen_EvenForExtremeGroups()
    {
        float[] w = [1e-30f, -1e30f, 1e30f, 0f, 65504f, -65504f, 1e-8f, -1e-8f]; // range/15 overflows fp16
        QuantizedMatrix q = RtnQuantizer.Quantize(w, 1, 8, 8);
        var back = new float[8];
        q.Dequantize(back);
        Assert.All(Enumerable.Range(0, 8), i => Assert.InRange(Int4Encoding.GetNibble(q.CodeRow(0), i), 0, 15));
        Assert.All(back, v => Assert.True(float.IsFinite(v)));
        Assert.True(Half.IsFinite(q.Scales[0]));
    }
}
