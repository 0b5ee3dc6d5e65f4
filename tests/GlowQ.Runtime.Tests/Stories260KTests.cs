using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using GlowQ.Converter;
using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Kernels;
using GlowQ.TestSupport;
using GlowQ.Tokenizers;

namespace GlowQ.Runtime.Tests;

/// <summary>stories260K converted once with GlowQ (group 32, rank 8, 16 generated calibration sequences of 64 tokens).</summary>
public sealed class Stories260KGlowQ : IDisposable
{
    public Stories260KGlowQ()
    {
        using ICheckpoint checkpoint = CheckpointExtensions.Open(SharedData.Stories260KBin);
        using var fp = new LlamaModel(LlamaWeights.Load(checkpoint), new InferenceOptions { Threads = 2 });
        List<int[]> calibration = CalibrationData.Generate(fp, 1, 16, 64, seed: 5);
        var tokenizer = new EmbeddedTokenizer(File.ReadAllBytes(SharedData.Stories260KTokenizer), "llama2c");
        Path = Directory.File("glowq.glq");
        ModelConverter.Convert(checkpoint, tokenizer, Path, new ConversionOptions
        {
            Method = "glowq",
            Quantizer = "rtn",
            GroupSize = 32,
            Rank = 8,
            Seed = 3,
            Calibration = calibration,
        });
    }

    public TempDirectory Directory { get; } = new();

    public string Path { get; }

    public void Dispose() => Directory.Dispose();
}

public sealed class Stories260KTests(Stories260KGlowQ model) : IClassFixture<Stories260KGlowQ>
{
    [Fact]
    public void EveryUnitsFusedProduct_EqualsTheSimulatedModelsDenseWeights()
    {
        using GlqFile file = GlqFile.Open(model.Path);
        GlqModel glq = GlqModel.Read(file);
        Assert.Equal(20, glq.Units.Count);
        LlamaWeights simulated = SimulatedQuantizedModel.Load(file, Enumerable.Repeat((byte)1, glq.Units.Count).ToArray());
        var dense = new Dictionary<string, WeightMatrix>(StringComparer.Ordinal);
        for (int l = 0; l < glq.Config.Layers; l++)
        {
            LayerWeights w = simulated.Layers[l];
            WeightMatrix[] inOrder = [w.Query, w.Key, w.Value, w.Output, w.Gate, w.Up, w.Down];
            IReadOnlyList<GlqLinear> linears = GlqModel.LayerLinears(glq.Config, l);
            for (int i = 0; i < linears.Count; i++)
            {
                dense[linears[i].Module] = inOrder[i];
            }
        }

        var rng = new Random(7);
        using var pool = new WorkerPool(2);
        var fused = new W4GemvWithCorrection(pool, glq.Config.HiddenDim, 8);
        for (int u = 0; u < glq.Units.Count; u++)
        {
            GlqUnit glqUnit = glq.Units[u];
            Int4Unit unit = Int4Unit.FromGlq(file, glq, u);
            float[] x = Int4TestData.Floats(rng, unit.Cols, 1);
            float[][] outputs = [.. unit.Members.Select(m => new float[m.Rows])];
            fused.Run(unit, true, x, 1, outputs);
            for (int m = 0; m < outputs.Length; m++)
            {
                WeightMatrix w = dense[glqUnit.Members[m]];
                for (int o = 0; o < w.Rows; o++)
                {
                    double expected = 0, magnitude = 0;
                    for (int i = 0; i < w.Cols; i++)
                    {
                        expected += (double)w.F32![o * w.Cols + i] * x[i];
                        magnitude += Math.Abs((double)w.F32[o * w.Cols + i] * x[i]);
                    }

                    Assert.True(Math.Abs(outputs[m][o] - expected) <= 1e-4 * magnitude,
                        $"{glqUnit.Members[m]} row {o}: {outputs[m][o]} vs simulated {expected} (Σ|w·x| {magnitude})");
                }
            }
        }
    }

    [Fact]
    public void WeightsFromAGlqFile_AreViewedInTheMapping_NotCopied()
    {
        using GlqFile file = GlqFile.Open(model.Path);
        GlqModel glq = GlqModel.Read(file);
        Int4Unit unit = Int4Unit.FromGlq(file, glq, 0);
        GlqLinear q = GlqModel.LayerLinears(glq.Config, 0)[0];
        Assert.True(Unsafe.AreSame(
            ref MemoryMarshal.GetReference(unit.Members[0].Codes.Span),
            ref MemoryMarshal.GetReference(file.GetBytes(file.RequireTensor(q.QWeight)))));
        Assert.True(Unsafe.AreSame(
            ref Unsafe.As<Half, byte>(ref MemoryMarshal.GetReference(unit.B.Span)),
            ref MemoryMarshal.GetReference(file.GetBytes(file.RequireTensor(glq.Units[0].BName)))));
    }
}
