namespace GlowQ.Format.Glq;

/// <summary>A tensor's directory entry: what it is and where its bytes are (offset relative to the data section).</summary>
public sealed record GlqTensorInfo(string Name, GlqDType DType, long[] Shape, ulong Offset, ulong Length, ulong Checksum)
{
    public const int MaxNameBytes = 512;
    public const int MaxRank = 4;
    public const long MaxDimension = 1L << 32;

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";

    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    public static bool IsValidName(string name) =>
        name.Length is > 0 and <= MaxNameBytes
        && name.All(c => c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '_' or '.' or '-');

    /// <summary>Encoded size of this entry in the directory.</summary>
    public int EncodedSize => 2 + Name.Length + 1 + 1 + 8 * Shape.Length + 8 + 8 + 8;
}

/// <summary>A tensor to be written: name, dtype and shape; the writer computes offset, length and checksum.</summary>
public sealed record GlqTensorSpec(string Name, GlqDType DType, params long[] Shape)
{
    public long ByteLength => GlqDTypes.ByteSize(DType, Shape) ?? throw new ArgumentException($"tensor '{Name}': shape {string.Join("×", Shape)} is not valid for {DType}");
}
