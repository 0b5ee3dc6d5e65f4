using System.Buffers.Binary;

namespace GlowQ.Format.Glq;

/// <summary>The fixed 128-byte header of a .glq file (formats/glq-v1.md §3).</summary>
public sealed record GlqHeader
{
    public const int Size = 128;
    public const int ChecksumOffset = 88;
    public const ushort CurrentMajor = 1;
    public const ushort CurrentMinor = 0;
    public const int PageSize = 4096;
    public const uint DefaultTensorAlignment = 256;

    /// <summary>The smallest tensor alignment a file may declare: a cache line, and enough for any typed view.</summary>
    public const int MinTensorAlignment = 64;

    public static ReadOnlySpan<byte> Magic => [0x89, (byte)'G', (byte)'L', (byte)'Q', 0x0D, 0x0A, 0x1A, 0x0A];

    public ushort MajorVersion { get; init; } = CurrentMajor;

    public ushort MinorVersion { get; init; } = CurrentMinor;

    public uint Flags { get; init; }

    public uint HeaderSize { get; init; } = Size;

    public uint TensorAlignment { get; init; } = DefaultTensorAlignment;

    public ulong MetadataOffset { get; init; }

    public ulong MetadataLength { get; init; }

    public ulong DirectoryOffset { get; init; }

    public ulong DirectoryLength { get; init; }

    public ulong DataOffset { get; init; }

    public ulong DataLength { get; init; }

    public ulong FileLength { get; init; }

    public uint TensorCount { get; init; }

    public uint MetadataCount { get; init; }

    public ulong Checksum { get; init; }

    public byte[] Encode()
    {
        var b = new byte[Size];
        Magic.CopyTo(b);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(8), MajorVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(10), MinorVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(12), Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(16), HeaderSize);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(20), TensorAlignment);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(24), MetadataOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(32), MetadataLength);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(40), DirectoryOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(48), DirectoryLength);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(56), DataOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(64), DataLength);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(72), FileLength);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(80), TensorCount);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(84), MetadataCount);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(ChecksumOffset), Checksum);
        return b;
    }

    /// <summary>Parses the fixed fields; callers validate them (magic and version are checked here, first).</summary>
    public static GlqHeader Decode(ReadOnlySpan<byte> b, string source)
    {
        if (b.Length < Size)
        {
            throw new ModelFormatException($"{source}: file is {b.Length} bytes, shorter than the {Size}-byte .glq header");
        }

        if (!b[..8].SequenceEqual(Magic))
        {
            throw new ModelFormatException($"{source}: header.magic is {Convert.ToHexString(b[..8])}, expected {Convert.ToHexString(Magic)} (not a .glq file)");
        }

        var header = new GlqHeader
        {
            MajorVersion = BinaryPrimitives.ReadUInt16LittleEndian(b[8..]),
            MinorVersion = BinaryPrimitives.ReadUInt16LittleEndian(b[10..]),
            Flags = BinaryPrimitives.ReadUInt32LittleEndian(b[12..]),
            HeaderSize = BinaryPrimitives.ReadUInt32LittleEndian(b[16..]),
            TensorAlignment = BinaryPrimitives.ReadUInt32LittleEndian(b[20..]),
            MetadataOffset = BinaryPrimitives.ReadUInt64LittleEndian(b[24..]),
            MetadataLength = BinaryPrimitives.ReadUInt64LittleEndian(b[32..]),
            DirectoryOffset = BinaryPrimitives.ReadUInt64LittleEndian(b[40..]),
            DirectoryLength = BinaryPrimitives.ReadUInt64LittleEndian(b[48..]),
            DataOffset = BinaryPrimitives.ReadUInt64LittleEndian(b[56..]),
            DataLength = BinaryPrimitives.ReadUInt64LittleEndian(b[64..]),
            FileLength = BinaryPrimitives.ReadUInt64LittleEndian(b[72..]),
            TensorCount = BinaryPrimitives.ReadUInt32LittleEndian(b[80..]),
            MetadataCount = BinaryPrimitives.ReadUInt32LittleEndian(b[84..]),
            Checksum = BinaryPrimitives.ReadUInt64LittleEndian(b[ChecksumOffset..]),
        };
        if (header.MajorVersion > CurrentMajor)
        {
            throw new ModelFormatException(
                $"{source}: file format version {header.MajorVersion}.{header.MinorVersion} is newer than this reader ({CurrentMajor}.x); upgrade glowq");
        }

        if (header.MajorVersion == 0)
        {
            throw new ModelFormatException($"{source}: header.major_version is 0, expected {CurrentMajor}");
        }

        return header;
    }

    public static ulong Align(ulong value, ulong alignment) => (value + alignment - 1) / alignment * alignment;
}
