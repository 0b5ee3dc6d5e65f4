using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.Format.Glq;
using GlowQ.TestSupport;
using GlowQ.Tokenizers;
using Xunit.Abstractions;

namespace GlowQ.Converter.Tests;

/// <summary>stories260K converted once per method (group 32, rank 8, 16 generated calibration sequences of 64 tokens).</summary>
public sealed class Stories260KConversions : IDisposable
{
    public Stories260KConversions()
    {
        Tokenizer = Llama2cTokenizer.Load(SharedData.Stories260KTokenizer);
        using ICheckpoint checkpoint = CheckpointExtensions.Open(SharedData.Stories260KBin);
        using var fp = new LlamaModel(LlamaWeights.Load(checkpoint), new InferenceOptions { Threads = 2 });
        Calibration = CalibrationData.Generate(fp, 1, 16, 64, seed: 5);
        var tokenizer = new EmbeddedTokenizer(File.ReadAllBytes(SharedData.Stories260KTokenizer), "llama2c");
        foreach (string name in (string[])[.. GlqModel.Methods, "gptq", "glowq-gptq"])
        {
            string path = Directory.File($"{name}.glq");
            ModelConverter.Convert(checkpoint, tokenizer, path, Options(name));
            Paths[name] = path;
        }

        Windows = Perplexity.PerLineWindows(Tokenizer, File.ReadAllText(SharedData.TinyStoriesSample), 512);
    }

    /// <summary>A method name, or "gptq" (GPTQ, no correction) and "glowq-gptq" (GlowQ correcting GPTQ's error).</summary>
    public ConversionOptions Options(string name) => new()
    {
        Method = name switch { "gptq" => "rtn", "glowq-gptq" => "glowq", _ => name },
        Quantizer = name.Contains("gptq", StringComparison.Ordinal) ? "gptq" : "rtn",
        GroupSize = 32,
        Rank = 8,
        Seed = 3,
        Calibration = Calibration,
    };

    public TempDirectory Directory { get; } = new();

    public Llama2cTokenizer Tokenizer { get; }

    public List<int[]> Calibration { get; }

    public Dictionary<string, string> Paths { get; } = [];

    public List<int[]> Windows { get; }

    public double Ppl(LlamaWeights weights)
    {
        using var model = new LlamaModel(weights, new InferenceOptions { ContextLength = 512, Threads = 2 });
        return Perplexity.Evaluate(model, Windows).Perplexity;
    }

    public double Ppl(string method, byte[]? mask = null)
    {
        using GlqFile file = GlqFile.Open(Paths[method]);
        return Ppl(SimulatedQuantizedModel.Load(file, mask));
    }

    public void Dispose() => Directory.Dispose();
}

public sealed class Stories260KConversionTests(Stories260KConversions c, ITestOutputHelper output) : IClassFixture<Stories260KConversions>
{
    [Fact]
    public void EveryMethod_WritesAFileThatVerifies()
    {
        foreach ((string name, string path) in c.Paths)
        {
            using GlqFile file = GlqFile.Open(path);
            GlqModel model = GlqModel.Read(file);
            foreach (GlqTensorInfo t in file.Tensors)
            {
                file.VerifyTensor(t);
            }

            string method = c.Options(name).Method;
            Assert.Equal(method, model.Method);
            Assert.Equal(c.Options(name).Quantizer, model.Quantization.BaseQuantizer);
            Assert.Equal(method switch { "glowq" => 20, "layerwise" => 35, _ => 0 }, model.Units.Count);
            Assert.Equal(File.ReadAllBytes(SharedData.Stories260KTokenizer), file.GetBytes(file.RequireTensor(model.TokenizerTensor)).ToArray());
        }
    }

    [Fact]
    public void Perplexity_GlowQAndLayerwiseImproveOnRtn_OnTinyStories()
    {
        using ICheckpoint checkpoint = CheckpointExtensions.Open(SharedData.Stories260KBin);
        double fp = c.Ppl(LlamaWeights.Load(checkpoint));
        double rtn = c.Ppl("rtn"), glowq = c.Ppl("glowq"), layerwise = c.Ppl("layerwise");
        output.WriteLine($"per-line TinyStories ppl: fp {fp:F4}, rtn {rtn:F4}, layerwise {layerwise:F4}, glowq {glowq:F4} (g32, r8)");
        Assert.Equal(5.1747, fp, 3);
        Assert.True(rtn > fp, $"rtn {rtn} should be worse than fp {fp}");
        Assert.True(glowq < rtn, $"glowq {glowq} should beat rtn {rtn}");
        Assert.True(layerwise < rtn, $"layerwise {layerwise} should beat rtn {rtn}");
    }

    [Fact]
    public void Perplexity_GptqImprovesOnRtn_AndGlowQImprovesOnGptq()
    {
        double rtn = c.Ppl("rtn"), gptq = c.Ppl("gptq"), glowqGptq = c.Ppl("glowq-gptq");
        output.WriteLine($"per-line TinyStories ppl: rtn {rtn:F4}, gptq {gptq:F4}, glowq on gptq {glowqGptq:F4} (g32, r8)");
        Assert.True(gptq < rtn, $"gptq {gptq} should beat rtn {rtn}");
        Assert.True(glowqGptq < gptq, $"glowq on gptq {glowqGptq} should beat gptq {gptq}");
    }

    [Fact]
    public void SequentialCalibration_IsRecorded_AndStillBeatsRtn()
    {
        using ICheckpoint checkpoint = CheckpointExtensions.Open(SharedData.Stories260KBin);
        string path = c.Directory.File("glowq-sequential.glq");
        ModelConverter.Convert(checkpoint, new EmbeddedTokenizer(File.ReadAllBytes(SharedData.Stories260KTokenizer), "llama2c"), path,
            c.Options("glowq") with { CalibrationMode = "sequential" });
        double sequential;
        using (GlqFile file = GlqFile.Open(path))
        {
            Assert.Equal("sequential", file.Metadata.GetString("glowq.calib.mode"));
            sequential = c.Ppl(SimulatedQuantizedModel.Load(file));
        }

        double fp = c.Ppl("glowq"), rtn = c.Ppl("rtn");
        output.WriteLine($"per-line TinyStories ppl: glowq fp-mode calibration {fp:F4}, sequential {sequential:F4}, rtn {rtn:F4}");
        Assert.True(sequential < rtn, $"sequential {sequential} vs rtn {rtn}");
        Assert.True(Math.Abs(sequential - fp) < 0.02 * fp, "both calibration modes fit the same errors to about the same quality");
    }

    [Fact]
    public void EmptyMask_RunsThePlainInt4Model_WhichIsTheRtnModel()
    {
        using GlqFile glowq = GlqFile.Open(c.Paths["glowq"]);
        using GlqFile rtn = GlqFile.Open(c.Paths["rtn"]);
        LlamaWeights none = SimulatedQuantizedModel.Load(glowq, new byte[20]);
        LlamaWeights plain = SimulatedQuantizedModel.Load(rtn);
        for (int l = 0; l < none.Layers.Count; l++)
        {
            Assert.Equal(plain.Layers[l].Query.F32, none.Layers[l].Query.F32);
            Assert.Equal(plain.Layers[l].Down.F32, none.Layers[l].Down.F32);
        }
    }

    [Fact]
    public void Conversion_IsDeterministic()
    {
        using ICheckpoint checkpoint = CheckpointExtensions.Open(SharedData.Stories260KBin);
        string again = c.Directory.File("glowq-again.glq");
        ModelConverter.Convert(checkpoint, new EmbeddedTokenizer(File.ReadAllBytes(SharedData.Stories260KTokenizer), "llama2c"), again, c.Options("glowq"));
        Assert.Equal(File.ReadAllBytes(c.Paths["glowq"]), File.ReadAllBytes(again));
    }

    [Fact]
    public void DefaultMask_RestoresTheRequestedFractionByTheChosenMetric()
    {
        using ICheckpoint checkpoint = CheckpointExtensions.Open(SharedData.Stories260KBin);
        string half = c.Directory.File("glowq-half.glq");
        ModelConverter.Convert(checkpoint, new EmbeddedTokenizer(File.ReadAllBytes(SharedData.Stories260KTokenizer), "llama2c"), half,
            c.Options("glowq") with { RestoreFraction = 0.5, MaskMetric = "norm_error" });
        using GlqFile file = GlqFile.Open(half);
        GlqModel model = GlqModel.Read(file);
        Assert.Equal(10, model.DefaultMask.Count(b => b == 1));
        float[] scores = model.Scores["norm_error"];
        float lowestRestored = Enumerable.Range(0, 20).Where(i => model.DefaultMask[i] == 1).Min(i => scores[i]);
        float highestSkipped = Enumerable.Range(0, 20).Where(i => model.DefaultMask[i] == 0).Max(i => scores[i]);
        Assert.True(lowestRestored >= highestSkipped);
    }
}
