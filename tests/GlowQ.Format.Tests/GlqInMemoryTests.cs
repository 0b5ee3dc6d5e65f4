using System.Runtime.InteropServices;
using GlowQ.Format;
using GlowQ.Format.Glq;
using GlowQ.TestSupport;

namespace GlowQ.Format.Tests;

/// <summary>A .glq file's bytes already in memory (a model embedded in the binary) open and validate as the file does.</summary>
public sealed unsafe class GlqInMemoryTests
{
    /// <summary>Copies <paramref name="bytes"/> into native memory at <paramref name="misalignment"/> bytes past a 4 KiB boundary.</summary>
    private sealed class NativeBytes : IDisposable
    {
        private readonly byte* _block;

        public NativeBytes(byte[] bytes, int misalignment)
        {
            _block = (byte*)NativeMemory.AlignedAlloc((nuint)(bytes.Length + misalignment + 1), 4096);
            Start = _block + misalignment;
            bytes.CopyTo(new Span<byte>(Start, bytes.Length));
            Length = bytes.Length;
        }

        public byte* Start { get; }

        public int Length { get; }

        public UnmanagedMemoryStream Stream() => new(Start, Length);

        public void Dispose() => NativeMemory.AlignedFree(_block);
    }

    private static byte[] TinyFileBytes()
    {
        using var dir = new TempDirectory();
        return File.ReadAllBytes(TinyGlqModel.WriteFile(dir.File("tiny.glq")));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(64)]
    [InlineData(8)]
    [InlineData(3)]
    public void InMemoryBytes_AtAnyAlignment_GiveTheFilesTensorsOnAlignedAddresses(int misalignment)
    {
        byte[] bytes = TinyFileBytes();
        using var dir = new TempDirectory();
        using GlqFile fromDisk = GlqFile.Open(dir.Write("tiny.glq", bytes));
        using var native = new NativeBytes(bytes, misalignment);
        using GlqFile inMemory = GlqFile.Open("bundled.glq", native.Stream());

        Assert.Equal("bundled.glq", inMemory.Name);
        Assert.Equal(fromDisk.FileLength, inMemory.FileLength);
        Assert.Equal(fromDisk.Tensors.Count, inMemory.Tensors.Count);
        foreach (GlqTensorInfo tensor in inMemory.Tensors)
        {
            inMemory.VerifyTensor(tensor);
            ReadOnlySpan<byte> data = inMemory.GetBytes(tensor);
            Assert.True(data.SequenceEqual(fromDisk.GetBytes(fromDisk.RequireTensor(tensor.Name))), tensor.Name);
            fixed (byte* p = data)
            {
                Assert.True(data.IsEmpty || (nuint)p % GlqHeader.MinTensorAlignment == 0, $"{tensor.Name} at {(nuint)p:x}");
            }
        }

        Assert.Equal(GlqModel.Read(fromDisk).Units.Count, GlqModel.Read(inMemory).Units.Count);
    }

    [Fact]
    public void InMemoryBytes_OnAnAlignedAddress_AreUsedInPlace()
    {
        byte[] bytes = TinyFileBytes();
        using var native = new NativeBytes(bytes, 0);
        using GlqFile inMemory = GlqFile.Open("bundled.glq", native.Stream());
        GlqTensorInfo first = inMemory.Tensors[0];
        fixed (byte* p = inMemory.GetBytes(first))
        {
            Assert.Equal((nuint)(native.Start + (long)inMemory.Header.DataOffset + (long)first.Offset), (nuint)p);
        }
    }

    [Fact]
    public void CorruptInMemoryBytes_AreRefusedWithTheGivenName()
    {
        byte[] bytes = TinyFileBytes();
        bytes[GlqHeader.Size + 5] ^= 0x40;
        using var native = new NativeBytes(bytes, 0);
        var e = Assert.Throws<ModelFormatException>(() => GlqFile.Open("bundled.glq", native.Stream()));
        Assert.StartsWith("bundled.glq: header.checksum", e.Message);
    }

    [Fact]
    public void EmptyInMemoryBytes_AreRefused()
    {
        using var native = new NativeBytes([], 0);
        var e = Assert.Throws<ModelFormatException>(() => GlqFile.Open("bundled.glq", native.Stream()));
        Assert.Contains("bundled.glq", e.Message);
        Assert.Contains("empty", e.Message);
    }
}
