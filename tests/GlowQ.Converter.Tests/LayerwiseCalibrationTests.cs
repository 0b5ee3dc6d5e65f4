using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.TestSupport;
using MathNet.Numerics.LinearAlgebra;

namespace GlowQ.Converter.Tests;

public sealed class LayerwiseCalibrationTests
{
    private sealed class Collector(int layer) : IActivationObserver
    {
        public Dictionary<ActivationSite, List<float[]>> Rows { get; } = [];

        public void Observe(int l, ActivationSite site, ReadOnlySpan<float> rows, int tokens)
        {
            if (l == layer)
            {
                if (!Rows.TryGetValue(site, out var list))
                {
                    Rows[site] = list = [];
                }

                list.Add(rows.ToArray());
            }
        }
    }

    [Fact]
    public void LayerStatistics_EqualTheSecondMomentOfTheFullForwardPassInputs()
    {
        using ICheckpoint bin = CheckpointExtensions.Open(SharedData.Stories260KBin);
        using var model = new LlamaModel(LlamaWeights.Load(bin), new InferenceOptions { Threads = 1, PrefillChunk = 8 });
        int[][] sequences = [[1, 403, 407, 261, 378, 300, 12], [1, 99, 450, 260, 290]];
        var calibration = new LayerwiseCalibration(model, sequences);
        calibration.NextLayer();
        calibration.NextLayer();
        LayerStatistics layer2 = calibration.NextLayer();
        Assert.Equal(3, calibration.Layer);

        // Independent route: observe layer 2's inputs during ordinary forward passes, then Σ = (1/N) Σ x xᵀ in fp64.
        var collector = new Collector(2);
        foreach (int[] s in sequences)
        {
            model.Forward(s, 0, new float[model.Config.VocabSize], observer: collector);
        }

        foreach (ActivationSite site in Enum.GetValues<ActivationSite>())
        {
            float[] all = [.. collector.Rows[site].SelectMany(r => r)];
            int d = layer2.For(site).Dim;
            int n = all.Length / d;
            Assert.Equal(n, layer2.For(site).Samples);
            Matrix<double> expected = Matrix<double>.Build.Dense(d, d, (i, j) =>
                Enumerable.Range(0, n).Sum(t => (double)all[t * d + i] * all[t * d + j]) / n);
            Matrix<double> actual = layer2.For(site).Covariance(0);
            Assert.True((expected - actual).FrobeniusNorm() < 1e-4 * (1 + expected.FrobeniusNorm()), $"{site}: Σ differs");
        }
    }

    [Fact]
    public void CalibratingPastTheLastLayer_Throws()
    {
        using ICheckpoint bin = CheckpointExtensions.Open(SharedData.Stories260KBin);
        using var model = new LlamaModel(LlamaWeights.Load(bin), new InferenceOptions { Threads = 1 });
        var calibration = new LayerwiseCalibration(model, [[1, 2, 3]]);
        for (int l = 0; l < model.Config.Layers; l++)
        {
            calibration.NextLayer();
        }

        Assert.Throws<InvalidOperationException>(() => calibration.NextLayer());
    }
}
