using ILGPU;
using Half = ILGPU.Half;

namespace GlowQ.Kernels;

/// <summary>The dense product around the int4 projections: the fp16 output head.</summary>
public static class DenseKernels
{
    /// <summary>
    /// output[r] = Σ_c matrix[r·cols + c] · input[c], fp16 weights widened exactly, fp32 accumulation in column order (the
    /// order of the CPU engine's scalar product). One thread per row; launch with extent = rows.
    /// </summary>
    /// <param name="row">Output row r.</param>
    /// <param name="matrix">fp16 [rows × cols] row-major (the output head or a tied embedding).</param>
    /// <param name="input">fp32: at least cols elements.</param>
    /// <param name="output">fp32: at least rows elements; element r is written.</param>
    /// <param name="cols">Elements per row.</param>
    [GpuKernel]
    public static void HalfMatrixVector(Index1D row, ArrayView<Half> matrix, ArrayView<float> input, ArrayView<float> output, int cols)
    {
        output[row] = HalfRowDot(matrix, (long)row.X * cols, input, cols);
    }

    /// <summary>Σ_c matrix[start + c] · input[c], fp16 widened exactly, fp32 accumulation in column order.</summary>
    internal static float HalfRowDot(ArrayView<Half> matrix, long start, ArrayView<float> input, int cols)
    {
        float sum = 0f;
        for (int c = 0; c < cols; c++)
        {
            sum += (float)matrix[start + c] * input[c];
        }

        return sum;
    }
}
