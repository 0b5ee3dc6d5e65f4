namespace GlowQ.Runtime.Cuda;

/// <summary>
/// Decode attention split over the sequence (flash-decoding) for long spans: the softmax and the weighted value sum
/// run per chunk of positions, in parallel, and a third launch joins the chunks. See the kernels' docs in
/// <c>AttentionKernels</c>.
/// </summary>
public sealed partial class GpuKernels
{
    /// <summary>
    /// Chunks of <paramref name="chunkLength"/> positions of every head's scores exponentiated against their own
    /// maximum, with the chunk maxima and sums recorded; extent heads · chunks.
    /// </summary>
    public void LaunchAttentionChunkSoftmax(
        DeviceView<float> scores, DeviceView<float> chunkMaxima, DeviceView<float> chunkSums, int heads, int span, int chunkLength)
    {
        var chunks = CheckChunks(heads, span, chunkLength);
        RequireAtLeast(scores, (long)heads * span, nameof(scores));
        RequireAtLeast(chunkMaxima, (long)heads * chunks, nameof(chunkMaxima));
        RequireAtLeast(chunkSums, (long)heads * chunks, nameof(chunkSums));
        PackAttentionChunkSoftmax(arguments.Clear(), scores, chunkMaxima, chunkSums, heads, span, chunkLength);
        Launch(attentionChunkSoftmax, heads * chunks);
    }

    /// <summary>Each chunk's weighted value sum from an fp32 or fp16 value cache; extent heads · chunks · headDim.</summary>
    public void LaunchAttentionChunkWeightedSum<TCache>(
        DeviceView<float> weights,
        DeviceView<TCache> values,
        DeviceView<float> partials,
        int heads,
        int kvHeads,
        int headDim,
        int contextLength,
        int firstPosition,
        int span,
        int chunkLength)
        where TCache : unmanaged
    {
        var chunks = CheckChunks(heads, span, chunkLength);
        CheckAttentionWeightedSum(weights, values, partials, heads, kvHeads, headDim, contextLength, firstPosition, span);
        RequireAtLeast(partials, (long)heads * chunks * headDim, nameof(partials));
        PackAttentionChunkWeightedSum(arguments.Clear(), weights, values, partials, heads, kvHeads, headDim, contextLength, firstPosition, span, chunkLength, chunks);
        Launch(ForCache<TCache>(attentionChunkWeightedSum, attentionChunkWeightedSumHalf), checked(heads * chunks * headDim));
    }

    /// <summary>The chunks joined into the attention output; extent heads · headDim.</summary>
    public void LaunchAttentionCombineChunks(
        DeviceView<float> partials, DeviceView<float> chunkMaxima, DeviceView<float> chunkSums, DeviceView<float> output, int heads, int headDim, int chunks)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(heads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(headDim);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunks);
        RequireAtLeast(partials, (long)heads * chunks * headDim, nameof(partials));
        RequireAtLeast(chunkMaxima, (long)heads * chunks, nameof(chunkMaxima));
        RequireAtLeast(chunkSums, (long)heads * chunks, nameof(chunkSums));
        RequireAtLeast(output, (long)heads * headDim, nameof(output));
        PackAttentionCombineChunks(arguments.Clear(), partials, chunkMaxima, chunkSums, output, heads, headDim, chunks);
        Launch(attentionCombineChunks, checked(heads * headDim));
    }

    /// <summary>⌈span / chunkLength⌉, after checking that every chunk count and extent fits the kernels' 32-bit indices.</summary>
    internal static int CheckChunks(int heads, int span, int chunkLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(heads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(span);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunkLength);
        RequireIndexable((long)heads * span, nameof(span));
        return ((span - 1) / chunkLength) + 1;
    }

    internal static void PackAttentionChunkSoftmax(
        KernelArguments packed, DeviceView<float> scores, DeviceView<float> chunkMaxima, DeviceView<float> chunkSums, int heads, int span, int chunkLength)
    {
        var chunks = ((span - 1) / chunkLength) + 1;
        packed.AddExtent(checked(heads * chunks))
            .AddView(scores.Pointer, scores.Length)
            .AddView(chunkMaxima.Pointer, chunkMaxima.Length)
            .AddView(chunkSums.Pointer, chunkSums.Length)
            .AddInt32(span)
            .AddInt32(chunkLength)
            .AddInt32(chunks);
    }

    internal static void PackAttentionChunkWeightedSum<TValue>(
        KernelArguments packed, DeviceView<float> weights, DeviceView<TValue> values, DeviceView<float> partials,
        int heads, int kvHeads, int headDim, int contextLength, int firstPosition, int span, int chunkLength, int chunks)
        where TValue : unmanaged =>
        packed.AddExtent(checked(heads * chunks * headDim))
            .AddView(weights.Pointer, weights.Length)
            .AddView(values.Pointer, values.Length)
            .AddView(partials.Pointer, partials.Length)
            .AddInt32(heads)
            .AddInt32(kvHeads)
            .AddInt32(headDim)
            .AddInt32(contextLength)
            .AddInt32(firstPosition)
            .AddInt32(span)
            .AddInt32(chunkLength)
            .AddInt32(chunks);

    internal static void PackAttentionCombineChunks(
        KernelArguments packed, DeviceView<float> partials, DeviceView<float> chunkMaxima, DeviceView<float> chunkSums, DeviceView<float> output,
        int heads, int headDim, int chunks) =>
        packed.AddExtent(checked(heads * headDim))
            .AddView(partials.Pointer, partials.Length)
            .AddView(chunkMaxima.Pointer, chunkMaxima.Length)
            .AddView(chunkSums.Pointer, chunkSums.Length)
            .AddView(output.Pointer, output.Length)
            .AddInt32(headDim)
            .AddInt32(chunks);
}
