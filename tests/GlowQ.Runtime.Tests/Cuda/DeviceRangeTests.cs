using GlowQ.Runtime.Cuda;

namespace GlowQ.Runtime.Tests.Cuda;

public sealed class DeviceRangeTests
{
    [Theory]
    [InlineData(10, 0, 10)]
    [InlineData(10, 3, 7)]
    [InlineData(10, 10, 0)]
    public void RangesInsideTheBuffer_AreAccepted(long length, long start, long count) => DeviceRange.Check(length, start, count);

    [Theory]
    [InlineData(10, 0, 11)]
    [InlineData(10, 4, 7)]
    [InlineData(10, -1, 1)]
    [InlineData(10, 11, 0)]
    [InlineData(10, 2, -1)]
    [InlineData(10, 1, long.MaxValue)]
    public void RangesPastEitherEnd_AreRefusedWithTheRangeInTheMessage(long length, long start, long count)
    {
        var exception = Assert.Throws<ArgumentOutOfRangeException>(() => DeviceRange.Check(length, start, count));
        Assert.Contains($"device buffer of {length} elements", exception.Message);
    }

    [Fact]
    public void DevicePointer_OffsetsByBytes()
    {
        Assert.Equal(0x1010UL, new DevicePointer(0x1000).AddBytes(16).Address);
        Assert.True(default(DevicePointer).IsNull);
    }
}
