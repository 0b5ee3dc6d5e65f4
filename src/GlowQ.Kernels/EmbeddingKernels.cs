using ILGPU;
using Half = ILGPU.Half;

namespace GlowQ.Kernels;

/// <summary>The token embedding: one row of an fp16 table widened to the fp32 residual stream.</summary>
public static class EmbeddingKernels
{
    /// <summary>
    /// output[i] = table[token·dim + i]. Launch with extent = dim.
    /// </summary>
    /// <param name="index">Element i of the row.</param>
    /// <param name="table">fp16 [vocab × dim] row-major.</param>
    /// <param name="output">fp32: at least dim elements.</param>
    /// <param name="token">Token id (0 ≤ token &lt; vocab; the host validates it).</param>
    /// <param name="dim">Model width.</param>
    [GpuKernel]
    public static void EmbeddingLookup(Index1D index, ArrayView<Half> table, ArrayView<float> output, int token, int dim)
    {
        output[index] = (float)table[((long)token * dim) + index.X];
    }
}
