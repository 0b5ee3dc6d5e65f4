using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Kernels;

namespace GlowQ.Runtime.Tests;

public sealed class Int4KernelTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(15)]
    [InlineData(64)]
    [InlineData(2051)]
    public void HalfDot_WidensEveryHalfExactly_OnEveryPath(int length)
    {
        var rng = new Random(length);
        Half[] a = Int4TestData.Halves(rng, length, 2);
        a[0] = BitConverter.UInt16BitsToHalf(0x0001); // smallest subnormal
        if (length > 2)
        {
            a[1] = Half.MaxValue;
            a[2] = BitConverter.UInt16BitsToHalf(0x83FF); // largest negative subnormal
        }

        float[] t = Int4TestData.Floats(rng, length, 1);
        double expected = 0, magnitude = 0;
        for (int j = 0; j < length; j++)
        {
            expected += (double)a[j] * t[j];
            magnitude += Math.Abs((double)a[j] * t[j]);
        }

        foreach (Int4Path path in W4GemvTests.SupportedPaths())
        {
            float actual = Int4Kernels.HalfDot(path, a, t);
            Assert.True(Math.Abs(actual - expected) <= 1e-5 * magnitude, $"{path}: {actual} vs {expected} (Σ|a·t| {magnitude})");
        }
    }

    [Fact]
    public void HalfDot_OfAOneHotVector_ReturnsTheWidenedHalfExactly()
    {
        // Finite values only: an infinity times a zero of the one-hot vector would be NaN on every path.
        ushort[] bits = [0x0001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0x8001, 0x83FF, 0xFBFF, 0x0200, 0x8400, 0x0000, 0x8000, 0x3555, 0xC000, 0x1234, 0x5678];
        Half[] a = [.. bits.Select(BitConverter.UInt16BitsToHalf)];
        foreach (Int4Path path in W4GemvTests.SupportedPaths())
        {
            for (int j = 0; j < a.Length; j++)
            {
                var t = new float[a.Length];
                t[j] = 1;
                Assert.Equal((float)a[j], Int4Kernels.HalfDot(path, a, t));
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(15)]
    [InlineData(16)]
    [InlineData(41)]
    public void WidenHalves_ConvertsEveryHalfExactly_OnEveryPath(int length)
    {
        var rng = new Random(50 + length);
        Half[] a = Int4TestData.Halves(rng, length, 4);
        ushort[] special = [0x0001, 0x83FF, 0x7BFF, 0x8000, 0x7C00, 0xFC00, 0x0400];
        for (int j = 0; j < Math.Min(length, special.Length); j++)
        {
            a[length - 1 - j] = BitConverter.UInt16BitsToHalf(special[j]);
        }

        foreach (Int4Path path in W4GemvTests.SupportedPaths())
        {
            var widened = new float[length + 1];
            widened[length] = 42;
            Int4Kernels.WidenHalves(path, a, widened);
            for (int j = 0; j < length; j++)
            {
                Assert.Equal((float)a[j], widened[j]);
            }

            Assert.Equal(42, widened[length]);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(8)]
    [InlineData(13)]
    [InlineData(64)]
    public void Dot_MatchesFloat64_ForShortAndOddLengths(int length)
    {
        var rng = new Random(70 + length);
        float[] a = Int4TestData.Floats(rng, length, 1), b = Int4TestData.Floats(rng, length + 3, 1);
        double expected = 0, magnitude = 0;
        for (int j = 0; j < length; j++)
        {
            expected += (double)a[j] * b[j];
            magnitude += Math.Abs((double)a[j] * b[j]);
        }

        foreach (Int4Path path in W4GemvTests.SupportedPaths())
        {
            float actual = Int4Kernels.Dot(path, a, b);
            Assert.True(Math.Abs(actual - expected) <= 1e-6 * magnitude, $"{path}: {actual} vs {expected}");
        }
    }

    [Theory]
    [InlineData(64, 32)] // two halves: one whole block
    [InlineData(96, 32)] // three halves: a half-block tail
    [InlineData(172, 32)] // stories260K's hidden width, padded to 192
    [InlineData(200, 64)]
    [InlineData(288, 96)] // three halves per group: a block's halves straddle groups
    [InlineData(300, 128)]
    public void CodeDot4_GivesEachOfFourRowsItsCodeDot_OnEveryVectorPath(int cols, int groupSize)
    {
        // Σ_g s_g·Σ_{i∈g} q_i·x_i per row, zero points excluded, against float64 over the real columns (padding
        // columns meet zero input). Tolerance: fp32 accumulation, relative to Σ|s·q·x|.
        var rng = new Random(cols + groupSize);
        Int4Matrix w = Int4TestData.Matrix(rng, 6, cols, groupSize);
        float[] x = Int4TestData.Floats(rng, cols, 1);
        var xr = new float[Int4Kernels.NibbleOrderLength(w.PaddedCols)];
        Int4Kernels.PrepareDecodeInput(x, groupSize, xr, new float[w.Groups]);
        float[] scales = [.. w.Scales.ToArray().Select(h => (float)h)];
        ReadOnlySpan<byte> codes = w.Codes.Span;
        foreach (Int4Path path in W4GemvTests.SupportedPaths().Where(p => p != Int4Path.Scalar))
        {
            // Rows 2–5 as well as 0–3: the kernel must honour the row stride, not assume the first row.
            foreach (int first in new[] { 0, 2 })
            {
                Vector128<float> actual = Int4Kernels.CodeDot4(
                    path, codes[(first * w.RowBytes)..], w.RowBytes, scales.AsSpan(first * w.Groups), w.Groups, groupSize, xr);
                for (int r = 0; r < 4; r++)
                {
                    int row = first + r;
                    double expected = 0, magnitude = 0;
                    for (int c = 0; c < cols; c++)
                    {
                        double term = (double)scales[(row * w.Groups) + (c / groupSize)] * Int4Encoding.GetNibble(codes[(row * w.RowBytes)..], c) * x[c];
                        expected += term;
                        magnitude += Math.Abs(term);
                    }

                    Assert.True(Math.Abs(actual.GetElement(r) - expected) <= 1e-5 * magnitude, $"{path}, row {row}: {actual.GetElement(r)} vs {expected}");
                }
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    [InlineData(13)]
    [InlineData(64)]
    public void Dot4_GivesEachOfFourStridedRowsItsDot_MatchingFloat64_OnEveryPath(int length)
    {
        var rng = new Random(90 + length);
        int stride = length + 3;
        float[] a = Int4TestData.Floats(rng, (3 * stride) + length, 1), b = Int4TestData.Floats(rng, length + 5, 1);
        foreach (Int4Path path in W4GemvTests.SupportedPaths())
        {
            Vector128<float> actual = Int4Kernels.Dot4(path, a, stride, b, length);
            for (int r = 0; r < 4; r++)
            {
                double expected = 0, magnitude = 0;
                for (int j = 0; j < length; j++)
                {
                    expected += (double)a[(r * stride) + j] * b[j];
                    magnitude += Math.Abs((double)a[(r * stride) + j] * b[j]);
                }

                Assert.True(Math.Abs(actual.GetElement(r) - expected) <= 1e-6 * magnitude, $"{path}, row {r}: {actual.GetElement(r)} vs {expected}");
            }
        }
    }

    [Fact]
    public void Sum4_PutsEachVectorsLaneSumInItsOwnLane()
    {
        var a = Vector128.Create(1f, 2f, 4f, 8f);
        var b = Vector128.Create(16f, 32f, 64f, 128f);
        var c = Vector128.Create(-1f, -2f, -4f, -8f);
        var d = Vector128.Create(0.5f, 0.25f, 0f, 1024f);
        Assert.Equal(Vector128.Create(15f, 240f, -15f, 1024.75f), Int4Kernels.Sum4(a, b, c, d));
    }

    [Fact]
    public void DecodeInput_IsPrescaledSoMaskedCodesNeedNoShift()
    {
        // Column 8i + k of block 0 lands at step k, lane i, times 2^-4k (step 7 is shifted, so unscaled).
        float[] x = [.. Enumerable.Range(0, 70).Select(c => (float)(c + 1))];
        var xr = new float[128];
        var sums = new float[3];
        Int4Kernels.PrepareDecodeInput(x, 32, xr, sums);
        for (int c = 0; c < 70; c++)
        {
            int block = c / 64, within = c % 64, k = within % 8;
            float scale = k == 7 ? 1 : MathF.Pow(16, -k);
            Assert.Equal(x[c] * scale, xr[(block * 64) + (k * 8) + (within / 8)]);
        }

        Assert.Equal(6, xr.Skip(64).Count(v => v != 0)); // block 1 holds six real columns; the rest is zero padding
        Assert.Equal([528f, 1552f, 405f], sums);
    }

    [Fact]
    public void MappedMemory_ViewsUnmanagedBytesInPlace_AndRejectsMisfits()
    {
        nint block = Marshal.AllocHGlobal(64);
        try
        {
            ReadOnlySpan<byte> bytes = Span(block, 0, 64);
            ReadOnlyMemory<Half> halves = MappedMemory<Half>.Over(bytes);
            Assert.Equal(32, halves.Length);
            Marshal.WriteInt16(block, 10, 0x3C00); // 1.0 as fp16, written after the view was made
            Assert.Equal((Half)1, halves.Span[5]);
            Assert.Equal((Half)1, halves.Slice(4).Span[1]);
            Assert.Throws<ArgumentException>(() => MappedMemory<float>.Over(Span(block, 0, 6)));
            Assert.Throws<ArgumentException>(() => MappedMemory<float>.Over(Span(block, 1, 4)));
            Assert.True(MappedMemory<float>.Over(bytes[..0]).IsEmpty);
        }
        finally
        {
            Marshal.FreeHGlobal(block);
        }
    }

    private static unsafe ReadOnlySpan<byte> Span(nint start, int offset, int length) => new((byte*)start + offset, length);

    [Fact]
    public void Int4Matrix_RejectsTablesThatDoNotMatchTheLayout()
    {
        Assert.Throws<ArgumentException>(() => Int4Matrix.FromQuantized(2, 40, 32, new byte[63], new Half[4], new byte[2]));
        Assert.Throws<ArgumentException>(() => Int4Matrix.FromQuantized(2, 40, 32, new byte[64], new Half[3], new byte[2]));
        Assert.Throws<ArgumentException>(() => Int4Matrix.FromQuantized(2, 40, 32, new byte[64], new Half[4], new byte[2], new float[3]));
        Int4Matrix w = Int4Matrix.FromQuantized(2, 40, 32, new byte[64], new Half[4], new byte[2]);
        Assert.Equal((2, 64, 32), (w.Groups, w.PaddedCols, w.RowBytes));
    }
}
