using ILGPU;
using ILGPU.Algorithms;

namespace GlowQ.Kernels;

/// <summary>
/// RMS normalisation of one fp32 vector, y = x / sqrt(mean(x²) + ε) ⊙ weight, optionally after the residual add
/// x ← x + delta. Implicitly grouped kernels cannot share a reduction across threads, so it runs in two launches:
/// <see cref="RmsNormPartialSums"/> (one thread per chunk of the vector) then <see cref="RmsNormApply"/> (one thread
/// per element, each summing the few partial sums in the same order, so every thread sees the same total).
/// </summary>
public static class RmsNormKernels
{
    /// <summary>
    /// Optionally adds the residual delta into <paramref name="hidden"/> (in place: the residual stream), then writes
    /// the sum of squares of chunk c, elements [c·chunkLength, min((c+1)·chunkLength, length)).
    /// Launch with extent = chunks = ⌈length / chunkLength⌉.
    /// </summary>
    /// <param name="chunk">Chunk index c.</param>
    /// <param name="hidden">x, fp32: at least length elements; updated to x + delta when a delta is given.</param>
    /// <param name="residualDelta">delta, fp32 [length], or a length-0 view for no residual add.</param>
    /// <param name="partialSums">fp32: at least chunks elements; element c is written.</param>
    /// <param name="length">Elements in the vector.</param>
    /// <param name="chunkLength">Elements per chunk (≥ 1); a few hundred keeps both launches short.</param>
    [GpuKernel]
    public static void RmsNormPartialSums(Index1D chunk, ArrayView<float> hidden, ArrayView<float> residualDelta, ArrayView<float> partialSums, int length, int chunkLength)
    {
        int start = chunk.X * chunkLength;
        partialSums[chunk] = AddResidualAndSumSquares(hidden, residualDelta, start, Math.Min(start + chunkLength, length));
    }

    /// <summary>Σ x[i]² over [start, end), after x[i] += delta[i] when a delta is given (a length-0 view: none).</summary>
    internal static float AddResidualAndSumSquares(ArrayView<float> hidden, ArrayView<float> residualDelta, int start, int end)
    {
        bool addResidual = residualDelta.Length > 0;
        float sum = 0f;
        for (int i = start; i < end; i++)
        {
            float value = hidden[i];
            if (addResidual)
            {
                value += residualDelta[i];
                hidden[i] = value;
            }

            sum += value * value;
        }

        return sum;
    }

    /// <summary>
    /// output[i] = hidden[i] · (1 / sqrt(Σ partialSums / length + ε)) · weight[i].
    /// Launch with extent = length, after <see cref="RmsNormPartialSums"/>.
    /// </summary>
    /// <param name="index">Element i.</param>
    /// <param name="hidden">x (after any residual add), fp32: at least length elements.</param>
    /// <param name="partialSums">The chunks' sums of squares: exactly chunks elements (all are summed).</param>
    /// <param name="weight">The norm weight, fp32: at least length elements.</param>
    /// <param name="output">y, fp32: at least length elements; may not alias hidden.</param>
    /// <param name="length">Elements in the vector.</param>
    /// <param name="epsilon">ε of the model's config.</param>
    [GpuKernel]
    public static void RmsNormApply(Index1D index, ArrayView<float> hidden, ArrayView<float> partialSums, ArrayView<float> weight, ArrayView<float> output, int length, float epsilon)
    {
        output[index] = hidden[index] * InverseRms(partialSums, 0, partialSums.IntLength, length, epsilon) * weight[index];
    }

    /// <summary>1 / sqrt(Σ partialSums[first … first + count) / length + ε).</summary>
    internal static float InverseRms(ArrayView<float> partialSums, int first, int count, int length, float epsilon)
    {
        float sumOfSquares = 0f;
        for (int c = first; c < first + count; c++)
        {
            sumOfSquares += partialSums[c];
        }

        return XMath.Rsqrt(sumOfSquares / length + epsilon);
    }
}
