using GlowQ.Engine;
using GlowQ.Format;

namespace GlowQ.Converter;

/// <summary>The calibration statistics of one layer's four unit inputs.</summary>
public sealed record LayerStatistics(int Layer, CovarianceWhitening Attention, CovarianceWhitening AttentionOutput, CovarianceWhitening Ffn, CovarianceWhitening Down)
{
    public CovarianceWhitening For(ActivationSite site) => site switch
    {
        ActivationSite.AttentionInput => Attention,
        ActivationSite.AttentionOutput => AttentionOutput,
        ActivationSite.FfnInput => Ffn,
        _ => Down,
    };
}

/// <summary>
/// Streams calibration one decoder layer at a time: the hidden states of every calibration sequence are kept, and
/// each <see cref="NextLayer"/> advances them through one layer while accumulating that layer's four input
/// statistics. Peak memory is the stored activations plus one layer's statistics, never the whole model's.
/// Activations come from the full-precision model throughout (the reference's "fp" mode).
/// </summary>
public sealed class LayerwiseCalibration : IActivationObserver
{
    private readonly ModelConfig _config;
    private readonly LlamaModel? _model;
    private readonly IReadOnlyList<int[]> _sequences;
    private readonly float[][] _hidden;
    private LayerStatistics? _current;

    /// <summary>Calibrates a model held whole in memory (small models, tests).</summary>
    public LayerwiseCalibration(LlamaModel model, IReadOnlyList<int[]> sequences)
        : this(model.Config, sequences, model.ContextLength, (tokens, hidden) => model.Embed(tokens, hidden))
    {
        _model = model;
    }

    /// <summary>
    /// Calibrates a model whose layers are loaded one at a time: only the embedding table is needed up front, and
    /// each layer arrives as a single-layer model (<see cref="LlamaWeights.SingleLayer"/>) in <see cref="NextLayer(LlamaModel)"/>.
    /// </summary>
    public LayerwiseCalibration(ModelConfig config, IReadOnlyList<int[]> sequences, WeightMatrix embedding)
        : this(config, sequences, int.MaxValue, (tokens, hidden) =>
        {
            for (int t = 0; t < tokens.Length; t++)
            {
                embedding.CopyRow(tokens[t], hidden.Slice(t * config.Dim, config.Dim));
            }
        })
    {
    }

    private LayerwiseCalibration(ModelConfig config, IReadOnlyList<int[]> sequences, int contextLength, Embedder embed)
    {
        _config = config;
        _sequences = sequences;
        _hidden = new float[sequences.Count][];
        for (int s = 0; s < sequences.Count; s++)
        {
            int[] tokens = sequences[s];
            if (tokens.Length == 0 || tokens.Length > contextLength || tokens.Any(t => (uint)t >= (uint)config.VocabSize))
            {
                throw new ArgumentException($"calibration sequence {s} has {tokens.Length} tokens (expected 1..{Math.Min(contextLength, int.MaxValue)}) or ids outside the vocabulary");
            }

            _hidden[s] = new float[tokens.Length * config.Dim];
            embed(tokens, _hidden[s]);
        }
    }

    private delegate void Embedder(ReadOnlySpan<int> tokens, Span<float> hidden);

    /// <summary>The layer <see cref="NextLayer()"/> will process next.</summary>
    public int Layer { get; private set; }

    public long Tokens => _sequences.Sum(s => (long)s.Length);

    /// <summary>The longest calibration sequence (the context a layer model needs).</summary>
    public int LongestSequence => _sequences.Max(s => s.Length);

    /// <summary>Bytes of stored activations (the dominant memory of calibration).</summary>
    public long ActivationBytes => _hidden.Sum(h => (long)h.Length * sizeof(float));

    /// <summary>Runs the next layer of the whole model given at construction.</summary>
    public LayerStatistics NextLayer() =>
        Advance(_model ?? throw new InvalidOperationException("this calibration was built from an embedding table; pass each layer's model"), Layer);

    /// <summary>Runs the next layer, given as a single-layer model, over every sequence and returns its statistics.</summary>
    public LayerStatistics NextLayer(LlamaModel layerModel) => Advance(layerModel, 0);

    /// <summary>
    /// Sequential calibration, first half: the statistics of the next layer's inputs, from a single-layer model of the
    /// full-precision layer run on copies of the stored activations (which stay as they are).
    /// </summary>
    public LayerStatistics ObserveNextLayer(LlamaModel layerModel) => Observe(layerModel, 0, advance: false);

    /// <summary>
    /// Sequential calibration, second half: advances the stored activations through the layer as it will run
    /// (quantised and corrected), so the next layer is calibrated on the inputs it will really see.
    /// </summary>
    public void AdvanceThrough(LlamaModel quantizedLayerModel)
    {
        for (int s = 0; s < _sequences.Count; s++)
        {
            quantizedLayerModel.RunLayer(0, _hidden[s], _sequences[s].Length, null);
        }

        Layer++;
    }

    private LayerStatistics Advance(LlamaModel model, int layerInModel) => Observe(model, layerInModel, advance: true);

    /// <summary>
    /// Runs one layer over every sequence, accumulating its four input statistics. With <paramref name="advance"/>
    /// the stored activations become the layer's outputs; without, the layer runs on copies and they stay as they are.
    /// </summary>
    private LayerStatistics Observe(LlamaModel model, int layerInModel, bool advance)
    {
        ModelConfig c = _config;
        if (Layer >= c.Layers)
        {
            throw new InvalidOperationException("every layer has been calibrated");
        }

        _current = new LayerStatistics(Layer, new(c.Dim), new(c.QDim), new(c.Dim), new(c.HiddenDim));
        float[] scratch = advance ? [] : new float[_hidden.Max(h => h.Length)];
        for (int s = 0; s < _sequences.Count; s++)
        {
            float[] hidden = _hidden[s];
            if (!advance)
            {
                hidden.CopyTo(scratch, 0);
                hidden = scratch;
            }

            model.RunLayer(layerInModel, hidden, _sequences[s].Length, this);
        }

        LayerStatistics done = _current;
        _current = null;
        if (advance)
        {
            Layer++;
        }

        return done;
    }

    void IActivationObserver.Observe(int layer, ActivationSite site, ReadOnlySpan<float> rows, int tokens) =>
        _current!.For(site).Accumulate(rows, tokens);
}
