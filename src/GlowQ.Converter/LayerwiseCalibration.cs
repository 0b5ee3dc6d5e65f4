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
    private readonly LlamaModel _model;
    private readonly IReadOnlyList<int[]> _sequences;
    private readonly float[][] _hidden;
    private LayerStatistics? _current;

    public LayerwiseCalibration(LlamaModel model, IReadOnlyList<int[]> sequences)
    {
        _model = model;
        _sequences = sequences;
        ModelConfig c = model.Config;
        _hidden = new float[sequences.Count][];
        for (int s = 0; s < sequences.Count; s++)
        {
            if (sequences[s].Length == 0 || sequences[s].Length > model.ContextLength)
            {
                throw new ArgumentException($"calibration sequence {s} has {sequences[s].Length} tokens; expected 1..{model.ContextLength}");
            }

            _hidden[s] = new float[sequences[s].Length * c.Dim];
            model.Embed(sequences[s], _hidden[s]);
        }
    }

    /// <summary>The layer <see cref="NextLayer"/> will process next.</summary>
    public int Layer { get; private set; }

    public long Tokens => _sequences.Sum(s => (long)s.Length);

    /// <summary>Bytes of stored activations (the dominant memory of calibration).</summary>
    public long ActivationBytes => _hidden.Sum(h => (long)h.Length * sizeof(float));

    /// <summary>Runs the next layer over every sequence and returns its statistics.</summary>
    public LayerStatistics NextLayer()
    {
        ModelConfig c = _model.Config;
        if (Layer >= c.Layers)
        {
            throw new InvalidOperationException("every layer has been calibrated");
        }

        _current = new LayerStatistics(Layer, new(c.Dim), new(c.QDim), new(c.Dim), new(c.HiddenDim));
        for (int s = 0; s < _sequences.Count; s++)
        {
            _model.RunLayer(Layer, _hidden[s], _sequences[s].Length, this);
        }

        LayerStatistics done = _current;
        _current = null;
        Layer++;
        return done;
    }

    void IActivationObserver.Observe(int layer, ActivationSite site, ReadOnlySpan<float> rows, int tokens) =>
        _current!.For(site).Accumulate(rows, tokens);
}
