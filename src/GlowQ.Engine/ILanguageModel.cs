using GlowQ.Format;

namespace GlowQ.Engine;

/// <summary>
/// What text generation and perplexity need from a model, whatever its weight format: run tokens at consecutive
/// positions against its own KV cache and write logits.
/// </summary>
public interface ILanguageModel : IDisposable
{
    ModelConfig Config { get; }

    /// <summary>Positions the KV cache holds.</summary>
    int ContextLength { get; }

    int Threads { get; }

    /// <summary>Bytes of weights the model holds or maps.</summary>
    long WeightBytes { get; }

    /// <summary>
    /// Runs <paramref name="tokens"/> at positions <paramref name="startPosition"/>… (the cache must hold every earlier
    /// position) and writes the last token's logits, or one vocab-sized row per token when <paramref name="allPositions"/>.
    /// </summary>
    void Forward(ReadOnlySpan<int> tokens, int startPosition, Span<float> logits, bool allPositions = false);
}

/// <summary>
/// A model that can choose the greedy next token where its logits live (a GPU), so only the token id crosses to the
/// host. <see cref="TextGenerator"/> uses it when sampling is plain greedy (temperature 0, no repetition penalty).
/// </summary>
public interface IDeviceArgmax
{
    /// <summary>
    /// Runs <paramref name="tokens"/> as <see cref="ILanguageModel.Forward"/> does and returns the index of the last token's
    /// largest logit, the first on ties (as <c>TensorPrimitives.IndexOfMax</c>).
    /// </summary>
    int ForwardArgmax(ReadOnlySpan<int> tokens, int startPosition);
}

/// <summary>
/// A model that can sample the next token where its logits live (a GPU): repetition penalty, temperature, top-k, top-p,
/// min-p and the draw, so only the token id crosses to the host. <see cref="TextGenerator"/> uses it when
/// <see cref="Sampler.CanSampleOnDevice"/> allows, handing over the sampler's penalised ids and its next uniform draw.
/// </summary>
public interface IDeviceSampler
{
    /// <summary>The largest top-k the device can sample with.</summary>
    int MaxTopK { get; }

    /// <summary>
    /// Runs <paramref name="tokens"/> as <see cref="ILanguageModel.Forward"/> does and returns the token that
    /// <see cref="Sampler.Sample"/> would pick from the last token's logits with the same settings and draw.
    /// </summary>
    /// <param name="options">Temperature &gt; 0 and a top-k in (0, <see cref="MaxTopK"/>].</param>
    /// <param name="penalisedTokens">Distinct ids inside the vocabulary (<see cref="Sampler.PenalisedTokens"/>).</param>
    /// <param name="uniform">The sampler's draw in [0, 1) (<see cref="Sampler.NextUniform"/>).</param>
    int ForwardSample(ReadOnlySpan<int> tokens, int startPosition, SamplingOptions options, ReadOnlySpan<int> penalisedTokens, float uniform);
}

/// <summary>The argument rules of <see cref="ILanguageModel.Forward"/>, shared by every implementation.</summary>
public static class ForwardArguments
{
    /// <summary>Throws unless the tokens are in the vocabulary, their positions fit the context and the logits fit the buffer.</summary>
    public static void Check(ReadOnlySpan<int> tokens, int startPosition, int contextLength, int vocab, int logitsLength, bool allPositions)
    {
        if (tokens.IsEmpty)
        {
            throw new ArgumentException("no tokens to run", nameof(tokens));
        }

        if (startPosition < 0 || startPosition + tokens.Length > contextLength)
        {
            throw new ArgumentOutOfRangeException(nameof(tokens), $"positions {startPosition}..{startPosition + tokens.Length - 1} exceed the context length {contextLength}");
        }

        if (logitsLength < (allPositions ? (long)tokens.Length * vocab : vocab))
        {
            throw new ArgumentException($"logits buffer too small: {logitsLength} floats for {(allPositions ? tokens.Length : 1)} × {vocab}", nameof(logitsLength));
        }

        foreach (int token in tokens)
        {
            if ((uint)token >= (uint)vocab)
            {
                throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {token} is outside the vocabulary (0..{vocab - 1})");
            }
        }
    }
}

/// <summary>
/// The matrix products of a decoder layer: the only part of the forward pass that depends on how the projections are
/// stored (dense fp32/fp16 in <see cref="DenseProjections"/>, int4 with GlowQ correction in GlowQ.Runtime).
/// Inputs and outputs are row-major [tokens × features]; <c>tokens</c> never exceeds the model's prefill chunk.
/// </summary>
public interface ILayerProjections
{
    /// <summary>Bytes of projection weights.</summary>
    long ByteSize { get; }

    void QueryKeyValue(int layer, float[] x, int tokens, float[] q, float[] k, float[] v);

    void AttentionOutput(int layer, float[] attention, int tokens, float[] y);

    /// <summary>hidden ← silu(gate·x) ⊙ (up·x), the SwiGLU feed-forward state.</summary>
    void GateUpSwiGlu(int layer, float[] x, int tokens, float[] hidden);

    void Down(int layer, float[] hidden, int tokens, float[] y);
}

/// <summary>Everything of a Llama model but its layer projections; every weight format keeps these in fp16 or fp32.</summary>
public sealed record LlamaFrame(
    ModelConfig Config,
    WeightMatrix Embedding,
    IReadOnlyList<float[]> AttentionNorms,
    IReadOnlyList<float[]> FfnNorms,
    float[] FinalNorm,
    WeightMatrix OutputHead)
{
    public long ByteSize =>
        Embedding.ByteSize + (ReferenceEquals(OutputHead, Embedding) ? 0 : OutputHead.ByteSize) + FinalNorm.Length * 4L
        + AttentionNorms.Sum(n => n.Length * 4L) + FfnNorms.Sum(n => n.Length * 4L);

    public static LlamaFrame Of(LlamaWeights w) => new(
        w.Config, w.Embedding, [.. w.Layers.Select(l => l.AttentionNorm)], [.. w.Layers.Select(l => l.FfnNorm)], w.FinalNorm, w.OutputHead);
}

/// <summary>The projections of <see cref="LlamaWeights"/>, multiplied by the engine's dense <see cref="MatMul"/>.</summary>
public sealed class DenseProjections(LlamaWeights weights, MatMul matMul, int maxTokens) : ILayerProjections
{
    private readonly float[] _up = new float[maxTokens * weights.Config.HiddenDim];
    private readonly float[] _swigluScratch = new float[weights.Config.HiddenDim];

    public long ByteSize => weights.ByteSize - LlamaFrame.Of(weights).ByteSize;

    public void QueryKeyValue(int layer, float[] x, int tokens, float[] q, float[] k, float[] v)
    {
        LayerWeights w = weights.Layers[layer];
        matMul.Run(w.Query, x, q, tokens);
        matMul.Run(w.Key, x, k, tokens);
        matMul.Run(w.Value, x, v, tokens);
    }

    public void AttentionOutput(int layer, float[] attention, int tokens, float[] y) =>
        matMul.Run(weights.Layers[layer].Output, attention, y, tokens);

    public void GateUpSwiGlu(int layer, float[] x, int tokens, float[] hidden)
    {
        LayerWeights w = weights.Layers[layer];
        int width = weights.Config.HiddenDim;
        matMul.Run(w.Gate, x, hidden, tokens);
        matMul.Run(w.Up, x, _up, tokens);
        for (int t = 0; t < tokens; t++)
        {
            VectorMath.SwiGlu(hidden.AsSpan(t * width, width), _up.AsSpan(t * width, width), _swigluScratch);
        }
    }

    public void Down(int layer, float[] hidden, int tokens, float[] y) => matMul.Run(weights.Layers[layer].Down, hidden, y, tokens);
}
