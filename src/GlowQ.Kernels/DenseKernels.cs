using ILGPU;
using Half = ILGPU.Half;

namespace GlowQ.Kernels;

/// <summary>The dense pieces around the int4 projections: the fp16 output head and the SwiGLU product of separate gate/up units.</summary>
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

    /// <summary>
    /// hidden[i] = silu(gate[i]) · up[i], for a model whose gate and up projections are separate units (layerwise and
    /// rtn files), so each ran its own corrected GEMV. Launch with extent = the hidden width.
    /// </summary>
    /// <param name="index">Element i.</param>
    /// <param name="gate">fp32: at least extent elements.</param>
    /// <param name="up">fp32: at least extent elements.</param>
    /// <param name="hidden">fp32: at least extent elements; element i is written (may alias gate).</param>
    [GpuKernel]
    public static void SwiGluProduct(Index1D index, ArrayView<float> gate, ArrayView<float> up, ArrayView<float> hidden)
    {
        hidden[index] = Activations.Silu(gate[index]) * up[index];
    }
}
