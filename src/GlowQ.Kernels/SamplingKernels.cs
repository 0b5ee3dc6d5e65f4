using ILGPU;
using ILGPU.Algorithms;

namespace GlowQ.Kernels;

/// <summary>
/// Temperature, top-k, top-p and min-p sampling on the device, so only the chosen id crosses to the host. It follows
/// the CPU sampler (<c>GlowQ.Engine.Sampler.Sample</c>) step for step: scaled = logit · (1/T), softmax, the top-k ids by
/// descending probability (ascending id on ties), min-p against the top probability, the smallest prefix reaching
/// top-p, then draw = u · cumulative and the first running sum above it. Two implicitly grouped launches, plus one for
/// the repetition penalty when it applies:
/// <see cref="RepeatPenalty"/> (one thread per distinct recent id), <see cref="SamplePartial"/> (one thread per chunk of
/// the vocabulary: its top-k and its softmax maximum and sum), <see cref="SampleFinal"/> (one thread: merge, normalise,
/// filter, draw).
/// <para>
/// The candidate lists live in the global candidate views (each chunk owns topK slots) rather than in thread-local
/// arrays: local arrays need a compile-time size and on a GPU spill to the same cached global memory anyway. The
/// launch wrappers cap topK so the single final thread merges a bounded list.
/// </para>
/// <para>
/// Probabilities equal the CPU's to a few ulps, not bit for bit: the exponentials are a different implementation and
/// the normaliser is summed chunk by chunk. A draw within about 1e-6 of a cumulative boundary (or a min-p / top-p
/// threshold that close) can therefore pick a neighbouring token; everything else is the same token for the same draw.
/// </para>
/// </summary>
public static class SamplingKernels
{
    /// <summary>
    /// logits[tokens[i]] becomes logit / penalty when positive, else logit · penalty, as the CPU sampler's repetition
    /// penalty. Launch with extent = tokens' length; the ids must be distinct and inside the vocabulary, or a token
    /// would be penalised twice (or a write would race).
    /// </summary>
    /// <param name="index">Which recent id.</param>
    /// <param name="logits">fp32 logits, modified in place.</param>
    /// <param name="tokens">Distinct recent token ids, each in [0, vocabulary).</param>
    /// <param name="penalty">The repetition penalty (&gt; 0).</param>
    [GpuKernel]
    public static void RepeatPenalty(Index1D index, ArrayView<float> logits, ArrayView<int> tokens, float penalty)
    {
        int token = tokens[index];
        float logit = logits[token];
        logits[token] = logit > 0 ? logit / penalty : logit * penalty;
    }

    /// <summary>
    /// For chunk c, elements [c·chunkLength, min((c+1)·chunkLength, length)): its min(topK, chunk size) largest scaled
    /// logits in descending order (lower id first on ties) into slots [c·topK, …) of the candidate views, and the
    /// chunk's maximum scaled logit (NaN if any is NaN) and Σ exp(scaled − that maximum).
    /// Launch with extent = chunks = ⌈length / chunkLength⌉.
    /// </summary>
    /// <param name="chunk">Chunk index c.</param>
    /// <param name="logits">fp32: at least length elements (already penalised).</param>
    /// <param name="candidateScores">fp32: at least chunks · topK elements.</param>
    /// <param name="candidateIds">int: at least chunks · topK elements.</param>
    /// <param name="partialMaxima">fp32: at least chunks elements; element c is written.</param>
    /// <param name="partialSums">fp32: at least chunks elements; element c is written.</param>
    /// <param name="length">Logits (the vocabulary size).</param>
    /// <param name="chunkLength">Logits per chunk (≥ 1).</param>
    /// <param name="topK">Candidates kept per chunk (≥ 1).</param>
    /// <param name="inverseTemperature">1 / temperature, computed on the host as the CPU sampler does.</param>
    [GpuKernel]
    public static void SamplePartial(
        Index1D chunk,
        ArrayView<float> logits,
        ArrayView<float> candidateScores,
        ArrayView<int> candidateIds,
        ArrayView<float> partialMaxima,
        ArrayView<float> partialSums,
        int length,
        int chunkLength,
        int topK,
        float inverseTemperature)
    {
        int start = chunk.X * chunkLength;
        int end = Math.Min(start + chunkLength, length);
        int slots = chunk.X * topK;
        int count = 0;
        float max = float.NegativeInfinity;
        for (int i = start; i < end; i++)
        {
            float scaled = logits[i] * inverseTemperature;
            if (!XMath.IsNaN(max) && (scaled > max || XMath.IsNaN(scaled)))
            {
                max = scaled;
            }

            // Ids arrive in ascending order, so only a strictly larger score may pass a kept one: ties stay id-ordered.
            if (count < topK || scaled > candidateScores[slots + count - 1])
            {
                count = InsertByScore(candidateScores, candidateIds, slots, count, topK, scaled, i);
            }
        }

        // A separate pass rather than an online rescale: an all −∞ chunk would otherwise give exp(−∞ + ∞) = NaN.
        float sum = 0f;
        for (int i = start; i < end; i++)
        {
            sum += XMath.Exp((logits[i] * inverseTemperature) - max);
        }

        partialMaxima[chunk] = max;
        partialSums[chunk] = sum;
    }

    /// <summary>
    /// result[0] = the sampled id. Merges the chunks' candidates into the global top-k (the candidate views' first
    /// topK slots, overwritten), normalises with the combined softmax maximum and sum, then applies min-p and top-p and
    /// draws with <paramref name="uniform"/> exactly as the CPU sampler. Launch with extent = 1, after
    /// <see cref="SamplePartial"/> with the same length, chunkLength and topK.
    /// </summary>
    /// <param name="index">The single thread (0).</param>
    /// <param name="candidateScores">fp32: the chunks' candidates; the first topK slots end up holding probabilities.</param>
    /// <param name="candidateIds">int: the chunks' candidate ids.</param>
    /// <param name="partialMaxima">The chunks' maxima: at least chunks elements.</param>
    /// <param name="partialSums">The chunks' exponential sums: at least chunks elements.</param>
    /// <param name="result">int: at least 1 element; element 0 is written.</param>
    /// <param name="length">Logits (the vocabulary size).</param>
    /// <param name="chunkLength">Logits per chunk (≥ 1).</param>
    /// <param name="topK">Top-k (≥ 1); at least length means "no top-k", as on the CPU.</param>
    /// <param name="topP">Top-p in (0, 1].</param>
    /// <param name="minP">Min-p in [0, 1).</param>
    /// <param name="uniform">The sampler's uniform draw in [0, 1).</param>
    [GpuKernel]
    public static void SampleFinal(
        Index1D index,
        ArrayView<float> candidateScores,
        ArrayView<int> candidateIds,
        ArrayView<float> partialMaxima,
        ArrayView<float> partialSums,
        ArrayView<int> result,
        int length,
        int chunkLength,
        int topK,
        float topP,
        float minP,
        float uniform)
    {
        int chunks = ((length - 1) / chunkLength) + 1;
        float max = Reductions.MaxOrNaN(partialMaxima, 0, chunks);

        if (!(max > float.NegativeInfinity && max < float.PositiveInfinity))
        {
            // A NaN or +∞ logit, or all −∞, makes every CPU probability NaN: then every comparison ties, the candidates
            // are the lowest ids, and the draw falls through to the last kept one (with top-k on) or to id 0 (the
            // CPU's IndexOfMax of an all-NaN row). Matching it keeps host and device on the same token.
            result[index] = topK < length ? topK - 1 : 0;
            return;
        }

        float sum = 0f;
        for (int c = 0; c < chunks; c++)
        {
            float chunkMax = partialMaxima[c];
            if (chunkMax > float.NegativeInfinity)
            {
                sum += partialSums[c] * XMath.Exp(chunkMax - max);
            }
        }

        // Merge into chunk 0's slots. Each chunk's list is sorted, so the first candidate that does not beat the last
        // kept one ends that chunk; later chunks hold higher ids, so a tie never displaces a kept candidate.
        int count = Math.Min(topK, Math.Min(chunkLength, length));
        for (int c = 1; c < chunks; c++)
        {
            int chunkStart = c * chunkLength;
            int chunkCount = Math.Min(topK, Math.Min(chunkStart + chunkLength, length) - chunkStart);
            for (int j = 0; j < chunkCount; j++)
            {
                float score = candidateScores[(c * topK) + j];
                if (count == topK && !(score > candidateScores[count - 1]))
                {
                    break;
                }

                // The source slot lies past chunk 0's, so the shift inside the insertion never overwrites it.
                count = InsertByScore(candidateScores, candidateIds, 0, count, topK, score, candidateIds[(c * topK) + j]);
            }
        }

        // Probabilities as the CPU's softmax forms them (exp(x − max) · (1/sum)), then its order: descending
        // probability, ascending id. Distinct scores can round to one probability, so re-sort; insertion sort is
        // nearly free on a list that is already in order.
        float inverseSum = 1f / sum;
        for (int j = 0; j < count; j++)
        {
            float probability = XMath.Exp(candidateScores[j] - max) * inverseSum;
            int id = candidateIds[j];
            int position = j;
            while (position > 0 && Precedes(probability, id, candidateScores[position - 1], candidateIds[position - 1]))
            {
                candidateScores[position] = candidateScores[position - 1];
                candidateIds[position] = candidateIds[position - 1];
                position--;
            }

            candidateScores[position] = probability;
            candidateIds[position] = id;
        }

        if (topK >= length)
        {
            // Without top-k the CPU drops tokens below a share that can never enter the top-p set first; the filter
            // changes which tokens a rounding-short cumulative sum can reach, so it is reproduced, not skipped.
            float floor = topP < 1 ? (1 - topP) / Math.Max(1, length - 1) : 0;
            int kept = 0;
            for (int j = 0; j < count; j++)
            {
                if (candidateScores[j] >= floor)
                {
                    candidateScores[kept] = candidateScores[j];
                    candidateIds[kept] = candidateIds[j];
                    kept++;
                }
            }

            // None left: the CPU keeps its IndexOfMax, the first of the sorted list, which nothing has overwritten.
            count = Math.Max(kept, 1);
        }

        float topProbability = candidateScores[0];
        float cumulative = 0;
        int keep = 0;
        while (keep < count)
        {
            float probability = candidateScores[keep];
            if (keep > 0 && probability < minP * topProbability)
            {
                break;
            }

            cumulative += probability;
            keep++;
            if (cumulative >= topP)
            {
                break;
            }
        }

        float draw = uniform * cumulative;
        float running = 0;
        for (int i = 0; i < keep; i++)
        {
            running += candidateScores[i];
            if (draw < running)
            {
                result[index] = candidateIds[i];
                return;
            }
        }

        result[index] = candidateIds[keep - 1];
    }

    /// <summary>The CPU sampler's order: higher probability first, then lower id.</summary>
    private static bool Precedes(float probability, int id, float otherProbability, int otherId) =>
        probability > otherProbability || (probability == otherProbability && id < otherId);

    /// <summary>
    /// Places (score, id) in the list [start, start + count) of the candidate views, kept in descending score with
    /// earlier entries first among equals; a list already holding <paramref name="capacity"/> entries drops its last.
    /// Returns the list's new length.
    /// </summary>
    private static int InsertByScore(ArrayView<float> scores, ArrayView<int> ids, int start, int count, int capacity, float score, int id)
    {
        int position = count < capacity ? count++ : capacity - 1;
        while (position > 0 && score > scores[start + position - 1])
        {
            scores[start + position] = scores[start + position - 1];
            ids[start + position] = ids[start + position - 1];
            position--;
        }

        scores[start + position] = score;
        ids[start + position] = id;
        return count;
    }
}
