using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.TestSupport;
using GlowQ.Tokenizers;

namespace GlowQ.Converter.Tests;

public sealed class SyntheticCheckpointTests
{
    [Fact]
    public void Tiny_LoadsAsAnHfCheckpointWithItsShape_AndRuns()
    {
        using var dir = new TempDirectory();
        SyntheticCheckpoint.Shape shape = SyntheticCheckpoint.Find("tiny");
        SyntheticCheckpoint.Write(shape, dir.Path, seed: 3);
        using ICheckpoint checkpoint = CheckpointExtensions.Open(dir.Path);
        ModelConfig c = checkpoint.Config;
        Assert.Equal((128, 344, 2, 4, 2, 512), (c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KvHeads, c.VocabSize));
        using LoadedModel loaded = ModelLoader.Load(dir.Path, null, new InferenceOptions { ContextLength = 64, Threads = 1 });
        Assert.Equal(512, loaded.Tokenizer.VocabularySize);
        Assert.Equal("héllo, wörld", loaded.Tokenizer.Decode(loaded.Tokenizer.Encode("héllo, wörld", addBos: true)));
        var logits = new float[512];
        loaded.Model.Forward(loaded.Tokenizer.Encode("Once", addBos: true), 0, logits);
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void SameSeed_SameBytes_OtherSeed_OtherWeights()
    {
        using var a = new TempDirectory();
        using var b = new TempDirectory();
        using var other = new TempDirectory();
        SyntheticCheckpoint.Shape shape = SyntheticCheckpoint.Find("tiny");
        SyntheticCheckpoint.Write(shape, a.Path, 7);
        SyntheticCheckpoint.Write(shape, b.Path, 7);
        SyntheticCheckpoint.Write(shape, other.Path, 8);
        Assert.Equal(File.ReadAllBytes(a.File("model.safetensors")), File.ReadAllBytes(b.File("model.safetensors")));
        Assert.NotEqual(File.ReadAllBytes(a.File("model.safetensors")), File.ReadAllBytes(other.File("model.safetensors")));
    }

    [Fact]
    public void ProjectionsReadingANorm_HaveHeavyOutlierInputChannels()
    {
        using var dir = new TempDirectory();
        SyntheticCheckpoint.Write(SyntheticCheckpoint.Find("tiny"), dir.Path, 1);
        using ICheckpoint checkpoint = CheckpointExtensions.Open(dir.Path);
        var w = new float[344 * 128];
        checkpoint.FindTensor(LlamaTensorNames.Gate(1))!.CopyTo(w);
        double[] columnRms = [.. Enumerable.Range(0, 128).Select(col => Math.Sqrt(Enumerable.Range(0, 344).Average(r => (double)w[r * 128 + col] * w[r * 128 + col])))];
        double median = columnRms.Order().ElementAt(64);
        Assert.InRange(columnRms.Count(v => v > 4 * median), 1, 4);

        var down = new float[128 * 344];
        checkpoint.FindTensor(LlamaTensorNames.Down(1))!.CopyTo(down);
        double[] downColumns = [.. Enumerable.Range(0, 344).Select(col => Math.Sqrt(Enumerable.Range(0, 128).Average(r => (double)down[r * 344 + col] * down[r * 344 + col])))];
        Assert.Equal(0, downColumns.Count(v => v > 4 * downColumns.Order().ElementAt(172)));
    }

    [Fact]
    public void SyntheticCheckpoint_ConvertsToAValidGlq()
    {
        using var dir = new TempDirectory();
        SyntheticCheckpoint.Write(SyntheticCheckpoint.Find("tiny"), dir.Path, 2);
        using ICheckpoint checkpoint = CheckpointExtensions.Open(dir.Path);
        using var fp = new LlamaModel(LlamaWeights.Load(checkpoint), new InferenceOptions { ContextLength = 32, Threads = 1 });
        List<int[]> calibration = CalibrationData.Generate(fp, 1, 2, 32, seed: 1);
        string output = dir.File("tiny.glq");
        ModelConverter.Convert(checkpoint, EmbeddedTokenizers.FromFile(dir.File("tokenizer.bin")), output,
            new ConversionOptions { Method = "glowq", GroupSize = 64, Rank = 16, Calibration = calibration });
        using var file = GlowQ.Format.Glq.GlqFile.Open(output);
        Assert.Equal(8, GlowQ.Format.Glq.GlqModel.Read(file).Units.Count);
    }
}
