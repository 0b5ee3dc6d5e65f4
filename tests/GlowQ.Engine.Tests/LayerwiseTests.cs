using GlowQ.Format;
using GlowQ.TestSupport;

namespace GlowQ.Engine.Tests;

public sealed class LayerwiseTests
{
    private sealed class Recorder : IActivationObserver
    {
        public List<(int Layer, ActivationSite Site, float[] Rows, int Tokens)> Seen { get; } = [];

        public void Observe(int layer, ActivationSite site, ReadOnlySpan<float> rows, int tokens) => Seen.Add((layer, site, rows.ToArray(), tokens));
    }

    private static readonly int[] Tokens = [1, 403, 407, 261, 378, 300, 301, 302, 12, 99, 450];

    [Fact]
    public void RunningLayerByLayer_GivesTheSameLogitsAsForward()
    {
        using ICheckpoint bin = CheckpointExtensions.Open(SharedData.Stories260KBin);
        using var model = new LlamaModel(LlamaWeights.Load(bin), new InferenceOptions { PrefillChunk = 4, Threads = 1 });
        ModelConfig c = model.Config;
        var expected = new float[Tokens.Length * c.VocabSize];
        model.Forward(Tokens, 0, expected, allPositions: true);

        var hidden = new float[Tokens.Length * c.Dim];
        model.Embed(Tokens, hidden);
        for (int l = 0; l < c.Layers; l++)
        {
            model.RunLayer(l, hidden, Tokens.Length, null);
        }

        var actual = new float[expected.Length];
        model.OutputLogits(hidden, Tokens.Length, actual);
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void Observer_SeesEveryUnitInputOfEveryLayer_WithItsWidth()
    {
        using ICheckpoint bin = CheckpointExtensions.Open(SharedData.Stories260KBin);
        using var model = new LlamaModel(LlamaWeights.Load(bin), new InferenceOptions { Threads = 1 });
        var recorder = new Recorder();
        model.Forward(Tokens, 0, new float[model.Config.VocabSize], observer: recorder);
        ModelConfig c = model.Config;
        Assert.Equal(4 * c.Layers, recorder.Seen.Count);
        foreach (var (layer, site, rows, tokens) in recorder.Seen)
        {
            int width = site switch
            {
                ActivationSite.AttentionOutput => c.QDim,
                ActivationSite.DownInput => c.HiddenDim,
                _ => c.Dim,
            };
            Assert.Equal(Tokens.Length, tokens);
            Assert.Equal(tokens * width, rows.Length);
        }

        // The attention input of layer 0 is RMSNorm(embedding) ⊙ weight: check the first token independently.
        var table = new float[c.VocabSize * c.Dim];
        bin.FindTensor(LlamaTensorNames.Embedding)!.CopyTo(table);
        var norm = new float[c.Dim];
        bin.FindTensor(LlamaTensorNames.AttentionNorm(0))!.CopyTo(norm);
        double ms = table.Skip(Tokens[0] * c.Dim).Take(c.Dim).Sum(v => (double)v * v) / c.Dim;
        float[] first = recorder.Seen.First(s => s.Layer == 0 && s.Site == ActivationSite.AttentionInput).Rows;
        for (int i = 0; i < c.Dim; i++)
        {
            double expected = table[Tokens[0] * c.Dim + i] / Math.Sqrt(ms + 1e-5) * norm[i];
            Assert.True(Math.Abs(expected - first[i]) < 1e-5, $"dim {i}: {first[i]} vs {expected}");
        }
    }
}
