namespace GlowQ.Runtime.Cuda;

/// <summary>Launches of the sampling kernels (GlowQ.Kernels' <c>SamplingKernels</c>).</summary>
public sealed partial class GpuKernels
{
    /// <summary>
    /// The largest top-k the sampling kernels accept: each chunk keeps topK candidates and one thread merges them, so
    /// a bound keeps the candidate buffers small and the final, serial launch short. Larger settings sample on the host.
    /// </summary>
    public const int MaxSamplingTopK = 64;

    /// <summary>
    /// The repetition penalty on logits[tokens[i]] for the first <paramref name="count"/> ids, one thread each; the ids
    /// must be distinct and inside the logits.
    /// </summary>
    public void LaunchRepeatPenalty(DeviceView<float> logits, DeviceView<int> tokens, int count, float penalty)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        RequireAtLeast(tokens, count, nameof(tokens));
        if (!(penalty > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(penalty), penalty, "the repetition penalty must be > 0");
        }

        PackRepeatPenalty(arguments.Clear(), logits, tokens, count, penalty);
        Launch(repeatPenalty, count);
    }

    /// <summary>
    /// Each chunk's top-<paramref name="topK"/> scaled logits and its softmax maximum and sum; one thread per chunk of
    /// <paramref name="chunkLength"/> logits.
    /// </summary>
    public void LaunchSamplePartial(
        DeviceView<float> logits,
        DeviceView<float> candidateScores,
        DeviceView<int> candidateIds,
        DeviceView<float> partialMaxima,
        DeviceView<float> partialSums,
        int length,
        int chunkLength,
        int topK,
        float inverseTemperature)
    {
        var chunks = ChunkCount(length, chunkLength);
        RequireTopK(topK);
        RequireAtLeast(logits, length, nameof(logits));
        RequireAtLeast(candidateScores, (long)chunks * topK, nameof(candidateScores));
        RequireAtLeast(candidateIds, (long)chunks * topK, nameof(candidateIds));
        RequireAtLeast(partialMaxima, chunks, nameof(partialMaxima));
        RequireAtLeast(partialSums, chunks, nameof(partialSums));
        PackSamplePartial(arguments.Clear(), logits, candidateScores, candidateIds, partialMaxima, partialSums, length, chunkLength, topK, inverseTemperature);
        Launch(samplePartial, chunks);
    }

    /// <summary>
    /// result[0] = the sampled id, on a single thread, after <see cref="LaunchSamplePartial"/> with the same length,
    /// chunk length and top-k.
    /// </summary>
    public void LaunchSampleFinal(
        DeviceView<float> candidateScores,
        DeviceView<int> candidateIds,
        DeviceView<float> partialMaxima,
        DeviceView<float> partialSums,
        DeviceView<int> result,
        int length,
        int chunkLength,
        int topK,
        float topP,
        float minP,
        float uniform)
    {
        var chunks = ChunkCount(length, chunkLength);
        RequireTopK(topK);
        RequireAtLeast(candidateScores, (long)chunks * topK, nameof(candidateScores));
        RequireAtLeast(candidateIds, (long)chunks * topK, nameof(candidateIds));
        RequireAtLeast(partialMaxima, chunks, nameof(partialMaxima));
        RequireAtLeast(partialSums, chunks, nameof(partialSums));
        RequireAtLeast(result, 1, nameof(result));
        PackSampleFinal(arguments.Clear(), candidateScores, candidateIds, partialMaxima, partialSums, result, length, chunkLength, topK, topP, minP, uniform);
        Launch(sampleFinal, 1);
    }

    internal static void PackRepeatPenalty(KernelArguments packed, DeviceView<float> logits, DeviceView<int> tokens, int count, float penalty) =>
        packed.AddExtent(count)
            .AddView(logits.Pointer, logits.Length)
            .AddView(tokens.Pointer, tokens.Length)
            .AddFloat(penalty);

    internal static void PackSamplePartial(
        KernelArguments packed,
        DeviceView<float> logits,
        DeviceView<float> candidateScores,
        DeviceView<int> candidateIds,
        DeviceView<float> partialMaxima,
        DeviceView<float> partialSums,
        int length,
        int chunkLength,
        int topK,
        float inverseTemperature) =>
        packed.AddExtent(ChunkCount(length, chunkLength))
            .AddView(logits.Pointer, logits.Length)
            .AddView(candidateScores.Pointer, candidateScores.Length)
            .AddView(candidateIds.Pointer, candidateIds.Length)
            .AddView(partialMaxima.Pointer, partialMaxima.Length)
            .AddView(partialSums.Pointer, partialSums.Length)
            .AddInt32(length)
            .AddInt32(chunkLength)
            .AddInt32(topK)
            .AddFloat(inverseTemperature);

    internal static void PackSampleFinal(
        KernelArguments packed,
        DeviceView<float> candidateScores,
        DeviceView<int> candidateIds,
        DeviceView<float> partialMaxima,
        DeviceView<float> partialSums,
        DeviceView<int> result,
        int length,
        int chunkLength,
        int topK,
        float topP,
        float minP,
        float uniform) =>
        packed.AddExtent(1)
            .AddView(candidateScores.Pointer, candidateScores.Length)
            .AddView(candidateIds.Pointer, candidateIds.Length)
            .AddView(partialMaxima.Pointer, partialMaxima.Length)
            .AddView(partialSums.Pointer, partialSums.Length)
            .AddView(result.Pointer, result.Length)
            .AddInt32(length)
            .AddInt32(chunkLength)
            .AddInt32(topK)
            .AddFloat(topP)
            .AddFloat(minP)
            .AddFloat(uniform);

    private static void RequireTopK(int topK)
    {
        if (topK < 1 || topK > MaxSamplingTopK)
        {
            throw new ArgumentOutOfRangeException(nameof(topK), topK, $"the sampling kernels keep 1 to {MaxSamplingTopK} candidates");
        }
    }
}
