using System.Buffers.Binary;
using GlowQ.Runtime.Cuda;

namespace GlowQ.Runtime.Tests.Cuda;

public sealed class KernelArgumentsTests
{
    private static readonly DevicePointer Input = new(0x7F00_0000_1000);
    private static readonly DevicePointer Output = new(0x7F00_0000_9000);

    [Fact]
    public void MixedParameters_AreLaidOutAtTheirAlignedOffsets()
    {
        var arguments = new KernelArguments()
            .AddExtent(100)          // 0..4
            .AddView(Input, 10)      // padded to 8, 8..24
            .AddHalf((Half)1.5f)     // 24..26
            .AddFloat(0.25f)         // padded to 28, 28..32
            .AddView(Output, 7)      // 32..48
            .AddInt32(-3)            // 48..52
            .AddBool(true)           // 52..56
            .AddHalf((Half)2)        // 56..58
            .AddUInt32(9);           // padded to 60, 60..64

        Assert.Equal(
            new[] { 0, 8, 24, 28, 32, 48, 52, 56, 60 },
            arguments.Arguments.Select(a => a.Offset));
        Assert.Equal(
            new[] { 4, 16, 2, 4, 16, 4, 4, 2, 4 },
            arguments.Arguments.Select(a => a.Size));
        Assert.Equal(64, arguments.SizeInBytes);
    }

    [Fact]
    public void PackedBytes_HoldEachValueLittleEndianWithZeroPadding()
    {
        var arguments = new KernelArguments().AddExtent(100).AddView(Input, 10).AddHalf((Half)1.5f).AddFloat(0.25f).AddBool(true);
        var bytes = arguments.Bytes;

        Assert.Equal(100, BinaryPrimitives.ReadInt32LittleEndian(bytes));
        Assert.True(bytes[4..8].SequenceEqual(new byte[4]), "padding before the view is not zero");
        Assert.Equal(Input.Address, BinaryPrimitives.ReadUInt64LittleEndian(bytes[8..]));
        Assert.Equal(10L, BinaryPrimitives.ReadInt64LittleEndian(bytes[16..]));
        Assert.Equal((Half)1.5f, BinaryPrimitives.ReadHalfLittleEndian(bytes[24..]));
        Assert.True(bytes[26..28].SequenceEqual(new byte[2]), "padding after the Half is not zero");
        Assert.Equal(0.25f, BinaryPrimitives.ReadSingleLittleEndian(bytes[28..]));
        Assert.Equal(1, BinaryPrimitives.ReadInt32LittleEndian(bytes[32..]));
        Assert.Equal(36, bytes.Length);
    }

    [Fact]
    public void Halves_PackTwoBytesApart_AndAViewAfterThemRealignsTo8()
    {
        var arguments = new KernelArguments().AddHalf(Half.One).AddHalf(Half.One).AddHalf(Half.One).AddView(Input, 1);

        Assert.Equal(new[] { 0, 2, 4, 8 }, arguments.Arguments.Select(a => a.Offset));
        Assert.Equal(24, arguments.SizeInBytes);
    }

    [Fact]
    public void ParameterPointers_PointAtEachArgumentInsideThePackedBuffer()
    {
        var arguments = new KernelArguments().AddExtent(1).AddView(Input, 1).AddHalf(Half.One).AddFloat(1);
        var pointers = new nint[4];

        arguments.WriteParameterPointers(0x1000, pointers);

        Assert.Equal(new nint[] { 0x1000, 0x1008, 0x1018, 0x101C }, pointers);
        Assert.Throws<ArgumentException>(() => arguments.WriteParameterPointers(0x1000, new nint[3]));
    }

    [Fact]
    public void Clear_ThenRepacking_GivesIdenticalBytes()
    {
        var arguments = new KernelArguments().AddExtent(5).AddView(Input, 5).AddFloat(3);
        var first = arguments.Bytes.ToArray();

        arguments.Clear().AddHalf(Half.MaxValue).AddView(Output, 99).AddInt32(-1);
        arguments.Clear().AddExtent(5).AddView(Input, 5).AddFloat(3);

        Assert.Equal(first, arguments.Bytes.ToArray());
        Assert.Equal(3, arguments.Count);
    }

    [Fact]
    public void Buffer_GrowsPastItsInitialSize()
    {
        var arguments = new KernelArguments();
        for (var i = 0; i < 10; i++)
        {
            arguments.AddView(Input.AddBytes(i * 4), i);
        }

        Assert.Equal(160, arguments.SizeInBytes);
        Assert.Equal(Input.AddBytes(36).Address, BinaryPrimitives.ReadUInt64LittleEndian(arguments.Bytes[144..]));
        Assert.Equal(9L, BinaryPrimitives.ReadInt64LittleEndian(arguments.Bytes[152..]));
    }

    private static readonly KernelParameter[] RmsNormManifest =
    [
        new(".b8", 4, 4),   // Index1D extent
        new(".b8", 16, 8),  // ArrayView<Half> input
        new(".b8", 16, 8),  // ArrayView<Half> output
        new(".f32", 4, 4),  // float epsilon
        new(".b16", 2, 2),  // Half scale
        new(".b32", 4, 4),  // bool flag
    ];

    private static KernelArguments RmsNormArguments() => new KernelArguments()
        .AddExtent(64).AddView(Input, 64).AddView(Output, 64).AddFloat(1e-5f).AddHalf(Half.One).AddBool(false);

    [Fact]
    public void Matches_AcceptsTheManifestsParameterList()
    {
        Assert.True(RmsNormArguments().Matches(RmsNormManifest, out var mismatch), mismatch);
        Assert.Null(mismatch);
    }

    [Fact]
    public void Matches_AcceptsPtxTypesWithoutTheLeadingDot()
    {
        var manifest = RmsNormManifest.Select(p => p with { PtxType = p.PtxType.TrimStart('.') }).ToArray();

        Assert.True(RmsNormArguments().Matches(manifest, out var mismatch), mismatch);
    }

    [Fact]
    public void Matches_RejectsAWrongType_NamingItsPosition()
    {
        var manifest = RmsNormManifest.ToArray();
        manifest[3] = new KernelParameter(".b16", 2, 2);

        Assert.False(RmsNormArguments().Matches(manifest, out var mismatch));
        Assert.Equal("parameter [3]: kernel expects .b16 (2 bytes, align 2) but a Float (4 bytes, align 4) was packed", mismatch);
    }

    [Fact]
    public void Matches_RejectsASameSizedScalarOfAnotherKind()
    {
        var manifest = RmsNormManifest.ToArray();
        manifest[5] = new KernelParameter(".f32", 4, 4);

        Assert.False(RmsNormArguments().Matches(manifest, out var mismatch));
        Assert.StartsWith("parameter [5]: ", mismatch);
    }

    [Fact]
    public void Matches_RejectsAViewWithTheWrongAlignment()
    {
        var manifest = RmsNormManifest.ToArray();
        manifest[2] = new KernelParameter(".b8", 16, 16);

        Assert.False(RmsNormArguments().Matches(manifest, out var mismatch));
        Assert.Equal("parameter [2]: kernel expects .b8 (16 bytes, align 16) but a view (16 bytes, align 8) was packed", mismatch);
    }

    [Fact]
    public void Matches_RejectsMissingAndExtraArguments_NamingTheFirstUnpairedPosition()
    {
        var tooFew = new KernelArguments().AddExtent(64).AddView(Input, 64);
        Assert.False(tooFew.Matches(RmsNormManifest, out var missing));
        Assert.Equal("parameter [2]: kernel takes 6 parameters but only 2 were packed (missing .b8 (16 bytes, align 8))", missing);

        var tooMany = RmsNormArguments().AddInt32(7);
        Assert.False(tooMany.Matches(RmsNormManifest, out var extra));
        Assert.Equal("parameter [6]: kernel takes 6 parameters but 7 were packed (extra a Int32 (4 bytes, align 4))", extra);
    }

    [Fact]
    public void NegativeExtentOrViewLength_IsRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new KernelArguments().AddExtent(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new KernelArguments().AddView(Input, -1));
    }
}
