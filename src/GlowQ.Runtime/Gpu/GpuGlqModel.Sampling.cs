using GlowQ.Engine;
using GlowQ.Runtime.Cuda;

namespace GlowQ.Runtime.Gpu;

/// <summary>Sampling on the device (<see cref="IDeviceSampler"/>): only the chosen id crosses to the host.</summary>
public sealed partial class GpuGlqModel
{
    private const int SampleChunk = 256;

    // Each chunk's candidates (topK slots per chunk, sized for the largest top-k), its softmax maximum and sum, the
    // distinct recent ids the repetition penalty applies to, and the chosen id.
    private readonly DeviceView<float> _sampleScores, _sampleMaxima, _sampleSums;
    private readonly DeviceView<int> _sampleIds, _penalisedTokens, _sampleResult;

    public int MaxTopK => GpuKernels.MaxSamplingTopK;

    public int ForwardSample(ReadOnlySpan<int> tokens, int startPosition, SamplingOptions options, ReadOnlySpan<int> penalisedTokens, float uniform)
    {
        ArgumentNullException.ThrowIfNull(options);
        ForwardArguments.Check(tokens, startPosition, ContextLength, _c.VocabSize, _c.VocabSize, allPositions: false);
        if (!(options.Temperature > 0) || options.TopK < 1 || options.TopK > MaxTopK)
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"device sampling needs a temperature > 0 and a top-k in 1..{MaxTopK}; got {options.Temperature} and {options.TopK}");
        }

        if (penalisedTokens.Length > _penalisedTokens.Length)
        {
            throw new ArgumentException($"{penalisedTokens.Length} penalised ids; at most {_penalisedTokens.Length} can be distinct", nameof(penalisedTokens));
        }

        foreach (int token in penalisedTokens)
        {
            if ((uint)token >= (uint)_c.VocabSize)
            {
                throw new ArgumentOutOfRangeException(nameof(penalisedTokens), $"token id {token} is outside the vocabulary (0..{_c.VocabSize - 1})");
            }
        }

        RunToLastLogits(tokens, startPosition);
        if (!penalisedTokens.IsEmpty && options.RepeatPenalty != 1f)
        {
            _device.Upload(penalisedTokens, _penalisedTokens.Slice(0, penalisedTokens.Length));
            _kernels.LaunchRepeatPenalty(_logits, _penalisedTokens, penalisedTokens.Length, options.RepeatPenalty);
        }

        int vocab = _c.VocabSize;
        _kernels.LaunchSamplePartial(_logits, _sampleScores, _sampleIds, _sampleMaxima, _sampleSums, vocab, SampleChunk, options.TopK, 1f / options.Temperature);
        _kernels.LaunchSampleFinal(_sampleScores, _sampleIds, _sampleMaxima, _sampleSums, _sampleResult, vocab, SampleChunk, options.TopK, options.TopP, options.MinP, uniform);
        Span<int> chosen = stackalloc int[1];
        _device.Download(_sampleResult, chosen);
        return chosen[0];
    }
}
