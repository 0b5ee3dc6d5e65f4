using ILGPU;
using Half = ILGPU.Half;

namespace GlowQ.Kernels;

/// <summary>The dense product around the int4 projections: the fp16 output head.</summary>
public static class DenseKernels
{
    /// <summary>
    /// output[r] = Σ_c matrix[r·cols + c] · input[c], fp16 weights widened exactly, fp32 accumulation. One warp per row
    /// (the head is the largest dense matrix read per token, so its reads must coalesce): launch with extent =
    /// rows · <see cref="Warp.WarpSize"/>; lane 0 writes.
    /// </summary>
    /// <param name="index">row · warp size + lane.</param>
    /// <param name="matrix">fp16 [rows × cols] row-major (the output head or a tied embedding).</param>
    /// <param name="input">fp32: at least cols elements.</param>
    /// <param name="output">fp32: at least rows elements; element r is written.</param>
    /// <param name="cols">Elements per row.</param>
    [GpuKernel]
    public static void HalfMatrixVector(Index1D index, ArrayView<Half> matrix, ArrayView<float> input, ArrayView<float> output, int cols)
    {
        int row = index.X / Warp.WarpSize;
        float sum = WarpMath.Sum(WarpMath.LaneHalfRowDot(matrix, (long)row * cols, input, cols));
        if (Warp.LaneIdx == 0)
        {
            output[row] = sum;
        }
    }

    /// <summary>Σ_c matrix[start + c] · input[c] on one thread (the prefill kernels' order), fp16 widened exactly, fp32 accumulation in column order.</summary>
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
