namespace GlowQ.Format.Glq;

/// <summary>
/// The 4-bit weight encoding of formats/glq-v1.md §6: codes q and zero points z packed two per byte (low nibble =
/// even index), fp16 scales s per (row, group), and the one dequantisation both the converter and the runtime use,
/// Q(W)[o, i] = (q − z)·s evaluated in fp32.
/// </summary>
public static class Int4Encoding
{
    /// <summary>Bytes of one packed row of <paramref name="count"/> codes.</summary>
    public static int PackedRowBytes(int count) => (count + 1) / 2;

    public static byte GetNibble(ReadOnlySpan<byte> packedRow, int index) =>
        (byte)((packedRow[index >> 1] >> ((index & 1) * 4)) & 0xF);

    public static void SetNibble(Span<byte> packedRow, int index, int code)
    {
        int shift = (index & 1) * 4;
        packedRow[index >> 1] = (byte)((packedRow[index >> 1] & ~(0xF << shift)) | ((code & 0xF) << shift));
    }

    /// <summary>Dequantises one row: <paramref name="weights"/>[i] = (q[i] − z[g])·s[g] for the first weights.Length columns.</summary>
    public static void DequantizeRow(ReadOnlySpan<byte> codes, ReadOnlySpan<Half> scales, ReadOnlySpan<byte> zeros, int groupSize, Span<float> weights)
    {
        for (int i = 0; i < weights.Length; i++)
        {
            int g = i / groupSize;
            weights[i] = (GetNibble(codes, i) - GetNibble(zeros, g)) * (float)scales[g];
        }
    }

    /// <summary>Dequantises a whole [rows × cols] matrix stored in the §6 layout (codes padded to whole groups).</summary>
    public static void DequantizeMatrix(ReadOnlySpan<byte> codes, ReadOnlySpan<Half> scales, ReadOnlySpan<byte> zeros, int rows, int cols, int groupSize, Span<float> weights)
    {
        int groups = (cols + groupSize - 1) / groupSize;
        int rowBytes = PackedRowBytes(groups * groupSize), zeroBytes = PackedRowBytes(groups);
        for (int r = 0; r < rows; r++)
        {
            DequantizeRow(codes.Slice(r * rowBytes, rowBytes), scales.Slice(r * groups, groups), zeros.Slice(r * zeroBytes, zeroBytes),
                groupSize, weights.Slice(r * cols, cols));
        }
    }
}
