using ILGPU;

namespace GlowQ.Kernels;

/// <summary>
/// Rotary position embedding of every head of a q or k vector at one position, in both layouts the CPU engine
/// supports (GlowQ.Engine.RotaryEmbedding). cos and sin come from the host (computed in float64, as the CPU engine
/// does) rather than from device sin/cos: angles reach position·1 radians, where the GPU's approximate sine loses
/// accuracy.
/// </summary>
public static class RopeKernels
{
    /// <summary>
    /// llama2.c layout: pair j of a head is elements (2j, 2j+1). Launch with extent = heads · headDim/2.
    /// </summary>
    /// <param name="pair">Pair p: head p / (headDim/2), frequency j = p mod (headDim/2).</param>
    /// <param name="heads">fp32, heads stored one after another (headDim each); rotated in place.</param>
    /// <param name="cos">cos(position·θ_j), fp32: at least headDim/2 elements.</param>
    /// <param name="sin">sin(position·θ_j), fp32: at least headDim/2 elements.</param>
    /// <param name="headDim">Elements per head (even).</param>
    [GpuKernel]
    public static void RopeInterleaved(Index1D pair, ArrayView<float> heads, ArrayView<float> cos, ArrayView<float> sin, int headDim)
    {
        int half = headDim / 2;
        int j = pair.X % half;
        int first = (pair.X / half * headDim) + (2 * j);
        Rotate(heads, first, first + 1, cos[j], sin[j]);
    }

    /// <summary>
    /// Hugging Face layout: pair j of a head is elements (j, j + headDim/2). Launch with extent = heads · headDim/2.
    /// </summary>
    /// <param name="pair">Pair p: head p / (headDim/2), frequency j = p mod (headDim/2).</param>
    /// <param name="heads">fp32, heads stored one after another (headDim each); rotated in place.</param>
    /// <param name="cos">cos(position·θ_j), fp32: at least headDim/2 elements.</param>
    /// <param name="sin">sin(position·θ_j), fp32: at least headDim/2 elements.</param>
    /// <param name="headDim">Elements per head (even).</param>
    [GpuKernel]
    public static void RopeHalfSplit(Index1D pair, ArrayView<float> heads, ArrayView<float> cos, ArrayView<float> sin, int headDim)
    {
        int half = headDim / 2;
        int j = pair.X % half;
        int first = (pair.X / half * headDim) + j;
        Rotate(heads, first, first + half, cos[j], sin[j]);
    }

    internal static void Rotate(ArrayView<float> heads, int first, int second, float cos, float sin)
    {
        float a = heads[first], b = heads[second];
        heads[first] = (a * cos) - (b * sin);
        heads[second] = (a * sin) + (b * cos);
    }
}
