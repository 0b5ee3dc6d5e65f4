using ILGPU;

namespace GlowQ.Kernels;

/// <summary>
/// Greedy sampling on the device: the index of the largest logit, in two implicitly grouped launches
/// (<see cref="ArgmaxPartial"/> per chunk, then <see cref="ArgmaxFinal"/> on one thread). It matches the CPU
/// sampler's <c>TensorPrimitives.IndexOfMax</c>: the first index among equal maxima, and the first NaN if any, so
/// a broken forward pass shows up rather than being masked by a finite logit.
/// </summary>
public static class ArgmaxKernels
{
    /// <summary>
    /// The maximum of chunk c, elements [c·chunkLength, min((c+1)·chunkLength, length)), and its index.
    /// Launch with extent = chunks = ⌈length / chunkLength⌉.
    /// </summary>
    /// <param name="chunk">Chunk index c.</param>
    /// <param name="logits">fp32: at least length elements.</param>
    /// <param name="partialMaxima">fp32: at least chunks elements; element c is written.</param>
    /// <param name="partialIndices">int: at least chunks elements; element c is written.</param>
    /// <param name="length">Logits (the vocabulary size).</param>
    /// <param name="chunkLength">Logits per chunk (≥ 1).</param>
    [GpuKernel]
    public static void ArgmaxPartial(Index1D chunk, ArrayView<float> logits, ArrayView<float> partialMaxima, ArrayView<int> partialIndices, int length, int chunkLength)
    {
        int start = chunk.X * chunkLength;
        int end = Math.Min(start + chunkLength, length);
        float best = logits[start];
        int bestIndex = start;
        for (int i = start + 1; i < end; i++)
        {
            float value = logits[i];
            if (Beats(value, best))
            {
                best = value;
                bestIndex = i;
            }
        }

        partialMaxima[chunk] = best;
        partialIndices[chunk] = bestIndex;
    }

    /// <summary>
    /// result[0] = the overall index from the chunks' maxima, taken in chunk order (so ties keep the lowest index).
    /// Launch with extent = 1, after <see cref="ArgmaxPartial"/>.
    /// </summary>
    /// <param name="index">The single thread (0).</param>
    /// <param name="partialMaxima">The chunks' maxima: exactly chunks elements (all are read).</param>
    /// <param name="partialIndices">The chunks' indices: at least chunks elements.</param>
    /// <param name="result">int: at least 1 element; element 0 is written.</param>
    [GpuKernel]
    public static void ArgmaxFinal(Index1D index, ArrayView<float> partialMaxima, ArrayView<int> partialIndices, ArrayView<int> result)
    {
        float best = partialMaxima[0];
        int bestIndex = partialIndices[0];
        for (int c = 1; c < partialMaxima.IntLength; c++)
        {
            float value = partialMaxima[c];
            if (Beats(value, best))
            {
                best = value;
                bestIndex = partialIndices[c];
            }
        }

        result[index] = bestIndex;
    }

    /// <summary>Whether a later value replaces the current best: strictly greater, or the first NaN.</summary>
    private static bool Beats(float value, float best) =>
        !float.IsNaN(best) && (value > best || float.IsNaN(value));
}
