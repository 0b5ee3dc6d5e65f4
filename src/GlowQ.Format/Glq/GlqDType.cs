namespace GlowQ.Format.Glq;

/// <summary>Tensor element types of a .glq file (formats/glq-v1.md §5.1).</summary>
public enum GlqDType : byte
{
    F32 = 0,
    F16 = 1,
    BF16 = 2,
    U8 = 3,
    I32 = 4,

    /// <summary>4-bit codes, two per byte, low nibble first; every row of the last dimension starts on a byte.</summary>
    U4 = 5,

    /// <summary>Bits, eight per byte, least significant first; rows byte-aligned.</summary>
    Bits = 6,
}

public static class GlqDTypes
{
    public static bool IsKnown(byte code) => code <= (byte)GlqDType.Bits;

    /// <summary>Bytes a tensor of <paramref name="shape"/> occupies; null when the arithmetic overflows 64 bits.</summary>
    public static long? ByteSize(GlqDType dtype, ReadOnlySpan<long> shape)
    {
        if (shape.IsEmpty)
        {
            return null;
        }

        long last = shape[^1];
        long rows = 1;
        foreach (long d in shape[..^1])
        {
            if (d <= 0 || rows > long.MaxValue / d)
            {
                return null;
            }

            rows *= d;
        }

        if (last <= 0)
        {
            return null;
        }

        long rowBytes = dtype switch
        {
            GlqDType.F32 or GlqDType.I32 => last > long.MaxValue / 4 ? -1 : last * 4,
            GlqDType.F16 or GlqDType.BF16 => last > long.MaxValue / 2 ? -1 : last * 2,
            GlqDType.U8 => last,
            GlqDType.U4 => (last + 1) / 2,
            GlqDType.Bits => (last + 7) / 8,
            _ => -1,
        };
        return rowBytes < 0 || rows > long.MaxValue / rowBytes ? null : rows * rowBytes;
    }

    public static string Name(this GlqDType dtype) => dtype switch
    {
        GlqDType.Bits => "BITS",
        _ => dtype.ToString(),
    };
}
