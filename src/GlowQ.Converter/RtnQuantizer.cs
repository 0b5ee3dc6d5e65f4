namespace GlowQ.Converter;

/// <summary>
/// Round-to-nearest asymmetric 4-bit quantisation per (row, group of g input columns), as in the GlowQ reference,
/// with three corrections the method notes call for:
/// the range always includes 0 (as GPTQ's quantiser does), so the zero point lies in 0..15 without clamping away
/// part of the group; a constant group gets a scale that represents it exactly instead of 0 (which yields NaN); and
/// codes are chosen against the fp16-rounded scale the file stores, so the error the correction later fits is the
/// error the runtime actually makes.
/// </summary>
public static class RtnQuantizer
{
    public const int MaxCode = 15;

    public static QuantizedMatrix Quantize(ReadOnlySpan<float> weights, int rows, int cols, int groupSize)
    {
        if ((long)rows * cols != weights.Length)
        {
            throw new ArgumentException($"weights have {weights.Length} elements, expected {rows}×{cols}");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(groupSize, 1);
        var q = new QuantizedMatrix(rows, cols, groupSize);
        for (int r = 0; r < rows; r++)
        {
            QuantizeRow(weights.Slice(r * cols, cols), groupSize, q.CodeRow(r), q.ScaleRow(r), q.ZeroRow(r));
        }

        return q;
    }

    private static void QuantizeRow(ReadOnlySpan<float> row, int groupSize, Span<byte> codes, Span<Half> scales, Span<byte> zeros)
    {
        for (int g = 0; g < scales.Length; g++)
        {
            int start = g * groupSize;
            ReadOnlySpan<float> group = row.Slice(start, Math.Min(groupSize, row.Length - start));
            (Half scale, int zero) = GroupParameters(group);
            scales[g] = scale;
            GlowQ.Format.Glq.Int4Encoding.SetNibble(zeros, g, zero);
            float s = (float)scale;
            for (int i = 0; i < groupSize; i++)
            {
                int code = i < group.Length ? Math.Clamp((int)MathF.Round(group[i] / s + zero, MidpointRounding.ToEven), 0, MaxCode) : zero;
                GlowQ.Format.Glq.Int4Encoding.SetNibble(codes, start + i, code);
            }
        }
    }

    /// <summary>fp16 scale and zero point of one group.</summary>
    public static (Half Scale, int Zero) GroupParameters(ReadOnlySpan<float> group)
    {
        float min = 0, max = 0;
        foreach (float w in group)
        {
            min = Math.Min(min, w);
            max = Math.Max(max, w);
        }

        float range = max - min;
        if (!(range > 0) || !float.IsFinite(range))
        {
            // All zeros (any finite group containing a non-zero value has range > 0 since 0 is in the range).
            return (Half.One, 0);
        }

        // The smallest normal fp16 keeps 1/s finite; weights of magnitude below ~1e-3 still quantise to within s/2.
        // Beyond fp16's range the largest finite scale keeps every value finite (such weights mean a broken source,
        // but NaN would hide where).
        Half scale = (Half)Math.Clamp(range / MaxCode, (float)BitConverter.UInt16BitsToHalf(0x0400), (float)Half.MaxValue);
        int zero = Math.Clamp((int)MathF.Round(-min / (float)scale, MidpointRounding.ToEven), 0, MaxCode);
        return (scale, zero);
    }
}
