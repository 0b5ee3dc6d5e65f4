namespace GlowQ.Format;

/// <summary>How rotary position embedding pairs the dimensions of a head.</summary>
public enum RopeLayout
{
    /// <summary>HF convention: dimension j pairs with j + headDim/2 ("rotate_half").</summary>
    RotateHalf,

    /// <summary>llama2.c / Meta convention: dimensions (2j, 2j+1) form a pair.</summary>
    InterleavedPairs,
}

/// <summary>Llama-3 frequency-dependent RoPE scaling (rope_scaling.rope_type = "llama3").</summary>
public sealed record Llama3RopeScaling(double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositions);

/// <summary>Everything the forward pass needs to know about a Llama-family decoder.</summary>
public sealed record ModelConfig
{
    public required string Architecture { get; init; }

    public required int Dim { get; init; }

    public required int HiddenDim { get; init; }

    public required int Layers { get; init; }

    public required int Heads { get; init; }

    public required int KvHeads { get; init; }

    public required int HeadDim { get; init; }

    public required int VocabSize { get; init; }

    /// <summary>Longest sequence the model was trained for (max_position_embeddings / seq_len).</summary>
    public required int MaxSequenceLength { get; init; }

    public required float NormEps { get; init; }

    public required double RopeTheta { get; init; }

    public Llama3RopeScaling? RopeScaling { get; init; }

    public required RopeLayout RopeLayout { get; init; }

    public required bool TiedEmbeddings { get; init; }

    /// <summary>q/k/v projections carry biases (Qwen2, or Llama with attention_bias).</summary>
    public bool QkvBias { get; init; }

    /// <summary>Mistral's sliding attention window, when the model has one.</summary>
    public int? SlidingWindow { get; init; }

    public int? BosTokenId { get; init; }

    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    public int QDim => Heads * HeadDim;

    public int KvDim => KvHeads * HeadDim;

    /// <summary>
    /// Throws ModelFormatException naming the first inconsistent field. Fields are named as in HF config.json unless
    /// <paramref name="fieldName"/> maps them to the source's own names (e.g. .glq metadata keys).
    /// </summary>
    public void Validate(string source, Func<string, string>? fieldName = null)
    {
        fieldName ??= name => name;

        void Positive(int value, string field)
        {
            if (value <= 0)
            {
                throw ModelFormatException.For(source, $"{fieldName(field)} must be positive, found {value}");
            }
        }

        Positive(Dim, "hidden_size");
        Positive(HiddenDim, "intermediate_size");
        Positive(Layers, "num_hidden_layers");
        Positive(Heads, "num_attention_heads");
        Positive(KvHeads, "num_key_value_heads");
        Positive(HeadDim, "head_dim");
        Positive(VocabSize, "vocab_size");
        Positive(MaxSequenceLength, "max_position_embeddings");
        if (Heads % KvHeads != 0)
        {
            throw ModelFormatException.For(source, $"{fieldName("num_attention_heads")} ({Heads}) is not a multiple of {fieldName("num_key_value_heads")} ({KvHeads})");
        }

        if (HeadDim % 2 != 0)
        {
            throw ModelFormatException.For(source, $"{fieldName("head_dim")} must be even for rotary embeddings, found {HeadDim}");
        }

        if (!(NormEps > 0) || !(RopeTheta > 0))
        {
            throw ModelFormatException.For(source, $"{fieldName("rms_norm_eps")} ({NormEps}) and {fieldName("rope_theta")} ({RopeTheta}) must be positive");
        }
    }
}
