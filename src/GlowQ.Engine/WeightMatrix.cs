namespace GlowQ.Engine;

/// <summary>
/// A dense [Rows × Cols] weight matrix in HF layout (row = output feature), stored as fp32 or fp16.
/// fp16 storage halves the bytes a decode step streams; products still accumulate in fp32.
/// </summary>
public sealed class WeightMatrix
{
    private WeightMatrix(int rows, int cols, float[]? f32, Half[]? f16, float[]? bias)
    {
        Rows = rows;
        Cols = cols;
        F32 = f32;
        F16 = f16;
        Bias = bias;
    }

    public int Rows { get; }

    public int Cols { get; }

    public float[]? F32 { get; }

    public Half[]? F16 { get; }

    public float[]? Bias { get; }

    public long ByteSize => (long)Rows * Cols * (F16 is null ? 4 : 2) + (Bias?.Length ?? 0) * 4L;

    public static WeightMatrix FromSingle(int rows, int cols, float[] data, float[]? bias = null)
    {
        Check(rows, cols, data.Length, bias);
        return new WeightMatrix(rows, cols, data, null, bias);
    }

    public static WeightMatrix FromHalf(int rows, int cols, Half[] data, float[]? bias = null)
    {
        Check(rows, cols, data.Length, bias);
        return new WeightMatrix(rows, cols, null, data, bias);
    }

    /// <summary>Row <paramref name="row"/> as fp32 (converted when stored as fp16).</summary>
    public void CopyRow(int row, Span<float> destination)
    {
        if (F32 is not null)
        {
            F32.AsSpan(row * Cols, Cols).CopyTo(destination);
        }
        else
        {
            System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(F16.AsSpan(row * Cols, Cols), destination);
        }
    }

    private static void Check(int rows, int cols, long length, float[]? bias)
    {
        if ((long)rows * cols != length)
        {
            throw new ArgumentException($"weight data has {length} elements, expected {rows}×{cols}");
        }

        if (bias is not null && bias.Length != rows)
        {
            throw new ArgumentException($"bias has {bias.Length} elements, expected {rows}");
        }
    }
}
