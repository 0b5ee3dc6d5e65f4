using GlowQ.Format.Glq;

namespace GlowQ.Converter;

/// <summary>
/// A [Rows × Cols] weight matrix in the .glq 4-bit layout: packed codes [Rows × PaddedCols], fp16 scales and packed
/// zero points [Rows × Groups]. Padding columns hold the group's zero point, so they dequantise to exactly 0.
/// </summary>
public sealed class QuantizedMatrix
{
    public QuantizedMatrix(int rows, int cols, int groupSize)
    {
        Rows = rows;
        Cols = cols;
        GroupSize = groupSize;
        Groups = (cols + groupSize - 1) / groupSize;
        Codes = new byte[(long)rows * RowBytes];
        Scales = new Half[(long)rows * Groups];
        Zeros = new byte[(long)rows * ZeroRowBytes];
    }

    public int Rows { get; }

    public int Cols { get; }

    public int GroupSize { get; }

    public int Groups { get; }

    public int PaddedCols => Groups * GroupSize;

    public int RowBytes => Int4Encoding.PackedRowBytes(PaddedCols);

    public int ZeroRowBytes => Int4Encoding.PackedRowBytes(Groups);

    public byte[] Codes { get; }

    public Half[] Scales { get; }

    public byte[] Zeros { get; }

    public Span<byte> CodeRow(int row) => Codes.AsSpan(row * RowBytes, RowBytes);

    public Span<Half> ScaleRow(int row) => Scales.AsSpan(row * Groups, Groups);

    public Span<byte> ZeroRow(int row) => Zeros.AsSpan(row * ZeroRowBytes, ZeroRowBytes);

    /// <summary>Q(W) row by row, exactly as the runtime dequantises it.</summary>
    public void Dequantize(Span<float> destination) =>
        Int4Encoding.DequantizeMatrix(Codes, Scales, Zeros, Rows, Cols, GroupSize, destination);
}
