using System.Runtime.InteropServices;
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
