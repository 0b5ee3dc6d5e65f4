using ILGPU;
using ILGPU.Algorithms;
using Half = ILGPU.Half;

namespace GlowQ.Kernels;

/// <summary>
/// Decode-time (one new token) causal grouped-query attention against one layer of the KV cache, as the CPU engine's
/// <c>Attention</c> computes it: out_h = softmax(q_h·K_kvᵀ · scale)·V_kv over positions firstPosition…position, where
/// query head h reads kv head h / (heads / kvHeads). Three implicitly grouped launches, because a launch cannot share
/// a reduction across its threads: <see cref="AttentionScores"/> (one thread per head and position),
/// <see cref="AttentionSoftmax"/> (one thread per head), <see cref="AttentionWeightedSum"/> (one thread per output
/// element). Half-suffixed variants read an fp16 cache; products and sums are fp32 either way, as on the CPU. A long
/// span instead splits over the sequence (flash-decoding): <see cref="AttentionChunkSoftmax"/> and
/// <see cref="AttentionChunkWeightedSum"/> per chunk of positions, then <see cref="AttentionCombineChunks"/>, so the
/// serial walk per thread is one chunk rather than the whole context.
/// <para>
/// A layer's keys and values are each laid out [kvHead][position][headDim] with room for contextLength positions,
/// exactly as <c>KvCache</c> stores one layer, so the host can hand over per-layer views without repacking. Callers
/// pass span = position − firstPosition + 1, with firstPosition = 0 for full causal attention and
/// max(0, position − window + 1) for a sliding window. Scores are laid out [head][span] (row stride span).
/// </para>
/// </summary>
public static class AttentionKernels
{
    /// <summary>
    /// scores[h·span + s] = scale · q_h · k_{kv(h), firstPosition+s}, fp32 keys.
    /// Launch with extent = heads · span.
    /// </summary>
    /// <param name="index">h · span + s.</param>
    /// <param name="query">q, fp32 [heads × headDim] (the new token's heads, concatenated).</param>
    /// <param name="keys">One layer's keys, fp32 [kvHeads × contextLength × headDim].</param>
    /// <param name="scores">fp32: at least heads · span elements; element index is written.</param>
    /// <param name="heads">Query heads; a multiple of kvHeads.</param>
    /// <param name="kvHeads">Key/value heads.</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="contextLength">Positions the cache holds per kv head (the stride between kv heads).</param>
    /// <param name="firstPosition">The first attended position.</param>
    /// <param name="span">Attended positions, ≥ 1.</param>
    /// <param name="scale">1 / √headDim, passed in so device and host use the same rounded value.</param>
    [GpuKernel]
    public static void AttentionScores(
        Index1D index,
        ArrayView<float> query,
        ArrayView<float> keys,
        ArrayView<float> scores,
        int heads,
        int kvHeads,
        int headDim,
        int contextLength,
        int firstPosition,
        int span,
        float scale)
    {
        int head = index.X / span;
        long keyStart = KeyOffset(head, index.X - (head * span), heads, kvHeads, headDim, contextLength, firstPosition);
        int queryStart = head * headDim;
        scores[index] = QueryKeyDot(query, queryStart, keys, keyStart, headDim) * scale;
    }

    /// <summary>
    /// As <see cref="AttentionScores"/>, with an fp16 key cache (widened to fp32 as read).
    /// Launch with extent = heads · span.
    /// </summary>
    /// <param name="index">h · span + s.</param>
    /// <param name="query">q, fp32 [heads × headDim].</param>
    /// <param name="keys">One layer's keys, fp16 [kvHeads × contextLength × headDim].</param>
    /// <param name="scores">fp32: at least heads · span elements; element index is written.</param>
    /// <param name="heads">Query heads; a multiple of kvHeads.</param>
    /// <param name="kvHeads">Key/value heads.</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="contextLength">Positions the cache holds per kv head.</param>
    /// <param name="firstPosition">The first attended position.</param>
    /// <param name="span">Attended positions, ≥ 1.</param>
    /// <param name="scale">1 / √headDim.</param>
    [GpuKernel]
    public static void AttentionScoresHalf(
        Index1D index,
        ArrayView<float> query,
        ArrayView<Half> keys,
        ArrayView<float> scores,
        int heads,
        int kvHeads,
        int headDim,
        int contextLength,
        int firstPosition,
        int span,
        float scale)
    {
        int head = index.X / span;
        long keyStart = KeyOffset(head, index.X - (head * span), heads, kvHeads, headDim, contextLength, firstPosition);
        int queryStart = head * headDim;
        scores[index] = QueryKeyDot(query, queryStart, keys, keyStart, headDim) * scale;
    }

    /// <summary>
    /// Replaces row h of the scores, scores[h·span … h·span + span), by its softmax: subtracting the row maximum first
    /// keeps every exponent ≤ 0, so nothing overflows however large the scores. One thread per head walks the whole
    /// row three times; at decode spans that is cheaper than another launch.
    /// Launch with extent = heads, after <see cref="AttentionScores"/> or <see cref="AttentionScoresHalf"/>.
    /// </summary>
    /// <param name="head">Query head h.</param>
    /// <param name="scores">fp32 [heads × span], normalised in place.</param>
    /// <param name="span">Attended positions, ≥ 1.</param>
    [GpuKernel]
    public static void AttentionSoftmax(Index1D head, ArrayView<float> scores, int span)
    {
        SoftmaxInPlace(scores, head.X * span, span);
    }

    /// <summary>Softmax of scores[start … start + span), in place.</summary>
    internal static void SoftmaxInPlace(ArrayView<float> scores, int start, int span)
    {
        int end = start + span;
        float max = Reductions.MaxOrNaN(scores, start, end);

        float sum = 0f;
        for (int i = start; i < end; i++)
        {
            float weight = XMath.Exp(scores[i] - max);
            scores[i] = weight;
            sum += weight;
        }

        float inverse = 1f / sum;
        for (int i = start; i < end; i++)
        {
            scores[i] *= inverse;
        }
    }

    /// <summary>
    /// output[h·headDim + d] = Σ_s weights[h·span + s] · v_{kv(h), firstPosition+s}[d], fp32 values, summed in position
    /// order. Launch with extent = heads · headDim, after <see cref="AttentionSoftmax"/>.
    /// </summary>
    /// <param name="index">h · headDim + d.</param>
    /// <param name="weights">The softmaxed scores, fp32 [heads × span].</param>
    /// <param name="values">One layer's values, fp32 [kvHeads × contextLength × headDim].</param>
    /// <param name="output">fp32: at least heads · headDim elements; element index is written.</param>
    /// <param name="heads">Query heads; a multiple of kvHeads.</param>
    /// <param name="kvHeads">Key/value heads.</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="contextLength">Positions the cache holds per kv head.</param>
    /// <param name="firstPosition">The first attended position.</param>
    /// <param name="span">Attended positions, ≥ 1.</param>
    [GpuKernel]
    public static void AttentionWeightedSum(
        Index1D index,
        ArrayView<float> weights,
        ArrayView<float> values,
        ArrayView<float> output,
        int heads,
        int kvHeads,
        int headDim,
        int contextLength,
        int firstPosition,
        int span)
    {
        int head = index.X / headDim;
        int d = index.X - (head * headDim);
        long valueStart = KeyOffset(head, 0, heads, kvHeads, headDim, contextLength, firstPosition) + d;
        int weightStart = head * span;
        output[index] = WeightedValueSum(weights, weightStart, values, valueStart, span, headDim);
    }

    /// <summary>
    /// As <see cref="AttentionWeightedSum"/>, with an fp16 value cache (widened to fp32 as read).
    /// Launch with extent = heads · headDim, after <see cref="AttentionSoftmax"/>.
    /// </summary>
    /// <param name="index">h · headDim + d.</param>
    /// <param name="weights">The softmaxed scores, fp32 [heads × span].</param>
    /// <param name="values">One layer's values, fp16 [kvHeads × contextLength × headDim].</param>
    /// <param name="output">fp32: at least heads · headDim elements; element index is written.</param>
    /// <param name="heads">Query heads; a multiple of kvHeads.</param>
    /// <param name="kvHeads">Key/value heads.</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="contextLength">Positions the cache holds per kv head.</param>
    /// <param name="firstPosition">The first attended position.</param>
    /// <param name="span">Attended positions, ≥ 1.</param>
    [GpuKernel]
    public static void AttentionWeightedSumHalf(
        Index1D index,
        ArrayView<float> weights,
        ArrayView<Half> values,
        ArrayView<float> output,
        int heads,
        int kvHeads,
        int headDim,
        int contextLength,
        int firstPosition,
        int span)
    {
        int head = index.X / headDim;
        int d = index.X - (head * headDim);
        long valueStart = KeyOffset(head, 0, heads, kvHeads, headDim, contextLength, firstPosition) + d;
        int weightStart = head * span;
        output[index] = WeightedValueSum(weights, weightStart, values, valueStart, span, headDim);
    }

    /// <summary>
    /// Split-sequence (flash-decoding) softmax for long spans: chunk c of head h, positions [c·chunkLength,
    /// min((c+1)·chunkLength, span)), is exponentiated against its own maximum m_c, in place, and its sum l_c recorded.
    /// <see cref="AttentionCombineChunks"/> rescales the chunks by exp(m_c − max_c m_c), so the result is the softmax
    /// of the whole row while every chunk runs on its own thread. A NaN score wins the maximum, as in the CPU softmax.
    /// Launch with extent = heads · chunks, after <see cref="AttentionScores"/> or <see cref="AttentionScoresHalf"/>.
    /// </summary>
    /// <param name="index">h · chunks + c.</param>
    /// <param name="scores">fp32 [heads × span]; each chunk is replaced by exp(score − m_c).</param>
    /// <param name="chunkMaxima">fp32 [heads × chunks]: m_c.</param>
    /// <param name="chunkSums">fp32 [heads × chunks]: l_c = Σ exp(score − m_c) over the chunk.</param>
    /// <param name="span">Attended positions, ≥ 1.</param>
    /// <param name="chunkLength">Positions per chunk, ≥ 1.</param>
    /// <param name="chunks">⌈span / chunkLength⌉.</param>
    [GpuKernel]
    public static void AttentionChunkSoftmax(
        Index1D index, ArrayView<float> scores, ArrayView<float> chunkMaxima, ArrayView<float> chunkSums, int span, int chunkLength, int chunks)
    {
        int head = index.X / chunks;
        int first = (index.X - (head * chunks)) * chunkLength;
        int start = (head * span) + first;
        int end = start + Math.Min(chunkLength, span - first);
        float max = Reductions.MaxOrNaN(scores, start, end);

        float sum = 0f;
        for (int i = start; i < end; i++)
        {
            float weight = XMath.Exp(scores[i] - max);
            scores[i] = weight;
            sum += weight;
        }

        chunkMaxima[index] = max;
        chunkSums[index] = sum;
    }

    /// <summary>
    /// partials[(h·chunks + c)·headDim + d] = Σ_{s in chunk c} weights[h·span + s] · v_{kv(h), firstPosition+s}[d], fp32
    /// values, the chunk's unnormalised weights from <see cref="AttentionChunkSoftmax"/>. Launch with extent =
    /// heads · chunks · headDim.
    /// </summary>
    /// <param name="index">(h · chunks + c) · headDim + d.</param>
    /// <param name="weights">fp32 [heads × span] from <see cref="AttentionChunkSoftmax"/>.</param>
    /// <param name="values">One layer's values, fp32 [kvHeads × contextLength × headDim].</param>
    /// <param name="partials">fp32 [heads × chunks × headDim].</param>
    /// <param name="heads">Query heads; a multiple of kvHeads.</param>
    /// <param name="kvHeads">Key/value heads.</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="contextLength">Positions the cache holds per kv head.</param>
    /// <param name="firstPosition">The first attended position.</param>
    /// <param name="span">Attended positions, ≥ 1.</param>
    /// <param name="chunkLength">Positions per chunk.</param>
    /// <param name="chunks">⌈span / chunkLength⌉.</param>
    [GpuKernel]
    public static void AttentionChunkWeightedSum(
        Index1D index,
        ArrayView<float> weights,
        ArrayView<float> values,
        ArrayView<float> partials,
        int heads,
        int kvHeads,
        int headDim,
        int contextLength,
        int firstPosition,
        int span,
        int chunkLength,
        int chunks)
    {
        (int head, int first, int count, int d) = ChunkOf(index.X, headDim, span, chunkLength, chunks);
        long valueStart = KeyOffset(head, first, heads, kvHeads, headDim, contextLength, firstPosition) + d;
        partials[index] = WeightedValueSum(weights, (head * span) + first, values, valueStart, count, headDim);
    }

    /// <summary>
    /// As <see cref="AttentionChunkWeightedSum"/>, with an fp16 value cache (widened to fp32 as read).
    /// Launch with extent = heads · chunks · headDim.
    /// </summary>
    /// <param name="index">(h · chunks + c) · headDim + d.</param>
    /// <param name="weights">fp32 [heads × span] from <see cref="AttentionChunkSoftmax"/>.</param>
    /// <param name="values">One layer's values, fp16 [kvHeads × contextLength × headDim].</param>
    /// <param name="partials">fp32 [heads × chunks × headDim].</param>
    /// <param name="heads">Query heads; a multiple of kvHeads.</param>
    /// <param name="kvHeads">Key/value heads.</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="contextLength">Positions the cache holds per kv head.</param>
    /// <param name="firstPosition">The first attended position.</param>
    /// <param name="span">Attended positions, ≥ 1.</param>
    /// <param name="chunkLength">Positions per chunk.</param>
    /// <param name="chunks">⌈span / chunkLength⌉.</param>
    [GpuKernel]
    public static void AttentionChunkWeightedSumHalf(
        Index1D index,
        ArrayView<float> weights,
        ArrayView<Half> values,
        ArrayView<float> partials,
        int heads,
        int kvHeads,
        int headDim,
        int contextLength,
        int firstPosition,
        int span,
        int chunkLength,
        int chunks)
    {
        (int head, int first, int count, int d) = ChunkOf(index.X, headDim, span, chunkLength, chunks);
        long valueStart = KeyOffset(head, first, heads, kvHeads, headDim, contextLength, firstPosition) + d;
        partials[index] = WeightedValueSum(weights, (head * span) + first, values, valueStart, count, headDim);
    }

    /// <summary>
    /// output[h·headDim + d] = Σ_c exp(m_c − M)·partials_c[d] / Σ_c exp(m_c − M)·l_c with M = max_c m_c: the chunks of
    /// <see cref="AttentionChunkWeightedSum"/> joined into the attention output, every factor ≤ 1 so nothing overflows.
    /// Launch with extent = heads · headDim.
    /// </summary>
    /// <param name="index">h · headDim + d.</param>
    /// <param name="partials">fp32 [heads × chunks × headDim].</param>
    /// <param name="chunkMaxima">fp32 [heads × chunks] from <see cref="AttentionChunkSoftmax"/>.</param>
    /// <param name="chunkSums">fp32 [heads × chunks] from <see cref="AttentionChunkSoftmax"/>.</param>
    /// <param name="output">fp32: at least heads · headDim elements; element index is written.</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="chunks">Chunks per head.</param>
    [GpuKernel]
    public static void AttentionCombineChunks(
        Index1D index, ArrayView<float> partials, ArrayView<float> chunkMaxima, ArrayView<float> chunkSums, ArrayView<float> output, int headDim, int chunks)
    {
        int head = index.X / headDim;
        int d = index.X - (head * headDim);
        int statsStart = head * chunks;
        float max = Reductions.MaxOrNaN(chunkMaxima, statsStart, statsStart + chunks);

        float numerator = 0f, denominator = 0f;
        for (int c = 0; c < chunks; c++)
        {
            float scale = XMath.Exp(chunkMaxima[statsStart + c] - max);
            numerator += scale * partials[((long)(statsStart + c) * headDim) + d];
            denominator += scale * chunkSums[statsStart + c];
        }

        output[index] = numerator / denominator;
    }

    /// <summary>Head, first position in the span, positions and element d of a chunked weighted-sum thread.</summary>
    private static (int Head, int First, int Count, int D) ChunkOf(int index, int headDim, int span, int chunkLength, int chunks)
    {
        int headChunk = index / headDim;
        int d = index - (headChunk * headDim);
        int head = headChunk / chunks;
        int first = (headChunk - (head * chunks)) * chunkLength;
        return (head, first, Math.Min(chunkLength, span - first), d);
    }

    /// <summary>
    /// Writes this token's keys and values, element (kv, d), into one layer's cache at position:
    /// cache[(kv·contextLength + position)·headDim + d] = token[kv·headDim + d]. Launch with extent = kvHeads · headDim,
    /// before the attention launches of the same token (it attends to itself).
    /// </summary>
    /// <param name="index">kv · headDim + d.</param>
    /// <param name="tokenKeys">This token's k, fp32 [kvHeads × headDim].</param>
    /// <param name="tokenValues">This token's v, fp32 [kvHeads × headDim].</param>
    /// <param name="keys">One layer's keys, fp32 [kvHeads × contextLength × headDim].</param>
    /// <param name="values">One layer's values, fp32 [kvHeads × contextLength × headDim].</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="contextLength">Positions the cache holds per kv head.</param>
    /// <param name="position">The token's position, 0 ≤ position &lt; contextLength.</param>
    [GpuKernel]
    public static void KvCacheStore(
        Index1D index,
        ArrayView<float> tokenKeys,
        ArrayView<float> tokenValues,
        ArrayView<float> keys,
        ArrayView<float> values,
        int headDim,
        int contextLength,
        int position)
    {
        long at = CacheOffset(index.X, headDim, contextLength, position);
        keys[at] = tokenKeys[index];
        values[at] = tokenValues[index];
    }

    /// <summary>
    /// As <see cref="KvCacheStore"/>, into an fp16 cache: each element is rounded to the nearest half once, here, as
    /// the CPU cache's store does. Launch with extent = kvHeads · headDim.
    /// </summary>
    /// <param name="index">kv · headDim + d.</param>
    /// <param name="tokenKeys">This token's k, fp32 [kvHeads × headDim].</param>
    /// <param name="tokenValues">This token's v, fp32 [kvHeads × headDim].</param>
    /// <param name="keys">One layer's keys, fp16 [kvHeads × contextLength × headDim].</param>
    /// <param name="values">One layer's values, fp16 [kvHeads × contextLength × headDim].</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="contextLength">Positions the cache holds per kv head.</param>
    /// <param name="position">The token's position, 0 ≤ position &lt; contextLength.</param>
    [GpuKernel]
    public static void KvCacheStoreHalf(
        Index1D index,
        ArrayView<float> tokenKeys,
        ArrayView<float> tokenValues,
        ArrayView<Half> keys,
        ArrayView<Half> values,
        int headDim,
        int contextLength,
        int position)
    {
        long at = CacheOffset(index.X, headDim, contextLength, position);
        keys[at] = RoundToHalf(tokenKeys[index]);
        values[at] = RoundToHalf(tokenValues[index]);
    }

    /// <summary>
    /// fp32 → fp16, rounding to nearest with ties to even (as <see cref="System.Half"/>'s conversion and PTX's cvt.rn).
    /// Done in integer arithmetic rather than by the (Half) cast because ILGPU's CPU accelerator emulates that cast
    /// without ties-to-even, and the cache the tests check must hold the same bits on every accelerator as the CPU
    /// engine's cache. The store is kvHeads·headDim elements per token, so the few integer ops cost nothing.
    /// </summary>
    internal static Half RoundToHalf(float value)
    {
        uint bits = Interop.FloatAsInt(value);
        uint sign = (bits >> 16) & 0x8000u;
        uint magnitude = bits & 0x7FFFFFFFu;
        uint half;
        if (magnitude > 0x7F800000u)
        {
            half = 0x7E00u | ((magnitude >> 13) & 0x3FFu); // NaN stays a (quiet) NaN
        }
        else if (magnitude >= 0x477FF000u)
        {
            half = 0x7C00u; // 65520 and beyond (and infinity) round to infinity
        }
        else if (magnitude >= 0x38800000u)
        {
            // Normal half: rebias the exponent (127 → 15) and drop 13 mantissa bits; adding just under half a unit,
            // plus the kept lowest bit, rounds ties to even, and a mantissa carry correctly bumps the exponent.
            half = (magnitude - 0x38000000u + 0xFFFu + ((magnitude >> 13) & 1u)) >> 13;
        }
        else if (magnitude > 0x33000000u)
        {
            // Subnormal half: the value in units of 2^−24 is the full 24-bit mantissa shifted right by 126 − exponent.
            uint mantissa = (magnitude & 0x7FFFFFu) | 0x800000u;
            int shift = 126 - (int)(magnitude >> 23);
            uint quotient = mantissa >> shift;
            uint remainder = mantissa & ((1u << shift) - 1u);
            uint halfway = 1u << (shift - 1);
            if (remainder > halfway || (remainder == halfway && (quotient & 1u) != 0))
            {
                quotient++;
            }

            half = quotient;
        }
        else
        {
            half = 0; // at most 2^−25: rounds to (signed) zero
        }

        return Interop.IntAsFloat((ushort)(sign | half));
    }

    /// <summary>q·k over one head: query[queryStart …] against keys[keyStart …], fp32 accumulation in element order.</summary>
    internal static float QueryKeyDot(ArrayView<float> query, int queryStart, ArrayView<float> keys, long keyStart, int headDim)
    {
        float dot = 0f;
        for (int d = 0; d < headDim; d++)
        {
            dot += query[queryStart + d] * keys[keyStart + d];
        }

        return dot;
    }

    /// <summary>As the fp32 overload, with fp16 keys widened exactly as read.</summary>
    internal static float QueryKeyDot(ArrayView<float> query, int queryStart, ArrayView<Half> keys, long keyStart, int headDim)
    {
        float dot = 0f;
        for (int d = 0; d < headDim; d++)
        {
            dot += query[queryStart + d] * (float)keys[keyStart + d];
        }

        return dot;
    }

    /// <summary>Σ_s weights[weightStart + s] · values[valueStart + s·headDim]: one element of a head's attention output.</summary>
    internal static float WeightedValueSum(ArrayView<float> weights, int weightStart, ArrayView<float> values, long valueStart, int span, int headDim)
    {
        float sum = 0f;
        for (int s = 0; s < span; s++)
        {
            sum += weights[weightStart + s] * values[valueStart + ((long)s * headDim)];
        }

        return sum;
    }

    /// <summary>As the fp32 overload, with fp16 values widened exactly as read.</summary>
    internal static float WeightedValueSum(ArrayView<float> weights, int weightStart, ArrayView<Half> values, long valueStart, int span, int headDim)
    {
        float sum = 0f;
        for (int s = 0; s < span; s++)
        {
            sum += weights[weightStart + s] * (float)values[valueStart + ((long)s * headDim)];
        }

        return sum;
    }

    /// <summary>Offset of (kv head of query head h, firstPosition + s) in a layer's key or value array.</summary>
    internal static long KeyOffset(int head, int s, int heads, int kvHeads, int headDim, int contextLength, int firstPosition)
    {
        int kvHead = head / (heads / kvHeads);
        return (((long)kvHead * contextLength) + firstPosition + s) * headDim;
    }

    /// <summary>Offset of element (kv, d) of the token at position, given index = kv·headDim + d.</summary>
    internal static long CacheOffset(int index, int headDim, int contextLength, int position)
    {
        int kvHead = index / headDim;
        int d = index - (kvHead * headDim);
        return (((long)kvHead * contextLength) + position) * headDim + d;
    }
}
