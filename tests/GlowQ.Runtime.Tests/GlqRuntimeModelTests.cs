using GlowQ.Converter;
using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Model;
using GlowQ.TestSupport;
using GlowQ.Tokenizers;

namespace GlowQ.Runtime.Tests;

/// <summary>stories260K converted once per method (group 32, rank 8, 16 generated calibration sequences of 64 tokens).</summary>
public sealed class Stories260KEveryMethod : IDisposable
{
    public Stories260KEveryMethod()
    {
        using ICheckpoint checkpoint = CheckpointExtensions.Open(SharedData.Stories260KBin);
        using var fp = new LlamaModel(LlamaWeights.Load(checkpoint), new InferenceOptions { Threads = 2 });
        List<int[]> calibration = CalibrationData.Generate(fp, 1, 16, 64, seed: 5);
        var tokenizer = new EmbeddedTokenizer(File.ReadAllBytes(SharedData.Stories260KTokenizer), "llama2c");
        foreach (string method in GlqModel.Methods)
        {
            string path = Directory.File($"{method}.glq");
            ModelConverter.Convert(checkpoint, tokenizer, path, new ConversionOptions
            {
                Method = method,
                Quantizer = "rtn",
                GroupSize = 32,
                Rank = 8,
                Seed = 3,
                Calibration = calibration,
            });
            Paths[method] = path;
        }

        Tokenizer = Llama2cTokenizer.Load(SharedData.Stories260KTokenizer);
        Windows = Perplexity.PerLineWindows(Tokenizer, File.ReadAllText(SharedData.TinyStoriesSample), 512);
    }

    public TempDirectory Directory { get; } = new();

    public Dictionary<string, string> Paths { get; } = [];

    public Llama2cTokenizer Tokenizer { get; }

    public List<int[]> Windows { get; }

    public void Dispose() => Directory.Dispose();
}

public sealed class GlqRuntimeModelTests(Stories260KEveryMethod models) : IClassFixture<Stories260KEveryMethod>
{
    private const int Context = 512;

    private static InferenceOptions Options(int threads = 2) => new() { ContextLength = Context, Threads = threads };

    private static LlamaModel Simulated(string path, byte[]? mask)
    {
        using GlqFile file = GlqFile.Open(path);
        return new LlamaModel(SimulatedQuantizedModel.Load(file, mask), Options());
    }

    private static byte[] Mask(string path, string which)
    {
        using GlqFile file = GlqFile.Open(path);
        int units = GlqModel.Read(file).Units.Count;
        return which switch
        {
            "all" => [.. Enumerable.Repeat((byte)1, units)],
            "none" => new byte[units],
            _ => [.. Enumerable.Range(0, units).Select(u => (byte)(u % 2))],
        };
    }

    /// <summary>max |a − b| over the vocabulary, relative to max |b|.</summary>
    private static double RelativeError(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double diff = 0, scale = 0;
        for (int i = 0; i < b.Length; i++)
        {
            diff = Math.Max(diff, Math.Abs(a[i] - b[i]));
            scale = Math.Max(scale, Math.Abs(b[i]));
        }

        return diff / scale;
    }

    [Theory]
    [InlineData("glowq", "all")]
    [InlineData("glowq", "none")]
    [InlineData("glowq", "half")]
    [InlineData("layerwise", "all")]
    [InlineData("layerwise", "half")]
    [InlineData("rtn", "none")]
    public void Logits_MatchTheSimulatedModel_InPrefillAndDecode(string method, string maskName)
    {
        string path = models.Paths[method];
        byte[] mask = Mask(path, maskName);
        using GlqRuntimeModel runtime = GlqRuntimeModel.Open(path, mask, Options());
        using LlamaModel simulated = Simulated(path, mask);
        int vocab = runtime.Config.VocabSize;
        int[] tokens = models.Windows[0][..24];

        // Prefill of 16 tokens through the matrix–matrix path, every position's logits.
        const int Prefill = 16;
        var actual = new float[Prefill * vocab];
        var expected = new float[Prefill * vocab];
        runtime.Forward(tokens.AsSpan(0, Prefill), 0, actual, allPositions: true);
        simulated.Forward(tokens.AsSpan(0, Prefill), 0, expected, allPositions: true);
        foreach (int position in (int[])[0, 1, 7, 15])
        {
            double error = RelativeError(actual.AsSpan(position * vocab, vocab), expected.AsSpan(position * vocab, vocab));
            Assert.True(error <= 1e-3, $"prefill position {position}: relative error {error:E2}");
        }

        // Then one token at a time (the decode path) on top of the prefilled cache.
        for (int position = Prefill; position < tokens.Length; position++)
        {
            runtime.Forward(tokens.AsSpan(position, 1), position, actual);
            simulated.Forward(tokens.AsSpan(position, 1), position, expected);
            double error = RelativeError(actual.AsSpan(0, vocab), expected.AsSpan(0, vocab));
            Assert.True(error <= 1e-3, $"decode position {position}: relative error {error:E2}");
        }
    }

    [Theory]
    [InlineData("none")]
    [InlineData("all")]
    public void GreedyGeneration_IsTheSimulatedModelsText(string maskName)
    {
        string path = models.Paths["glowq"];
        byte[] mask = Mask(path, maskName);
        int[] prompt = models.Tokenizer.Encode("Once upon a time", addBos: true);
        var sampling = new SamplingOptions { Temperature = 0 };

        using GlqRuntimeModel runtime = GlqRuntimeModel.Open(path, mask, Options());
        var runtimeText = new StringWriter();
        GenerationResult result = new TextGenerator(runtime, models.Tokenizer).Generate(prompt, 40, sampling, runtimeText);

        using LlamaModel simulated = Simulated(path, mask);
        var simulatedText = new StringWriter();
        new TextGenerator(simulated, models.Tokenizer).Generate(prompt, 40, sampling, simulatedText);

        Assert.Equal(simulatedText.ToString(), runtimeText.ToString());
        Assert.True(result.GeneratedTokens > 10, $"only {result.GeneratedTokens} tokens: {runtimeText}");
    }

    [Theory]
    [InlineData("glowq")]
    [InlineData("layerwise")]
    [InlineData("rtn")]
    public void PerLinePerplexity_AgreesWithTheSimulatedModel(string method)
    {
        string path = models.Paths[method];
        using GlqRuntimeModel runtime = GlqRuntimeModel.Open(path, null, Options());
        using LlamaModel simulated = Simulated(path, null);
        double actual = Perplexity.Evaluate(runtime, models.Windows).Perplexity;
        double expected = Perplexity.Evaluate(simulated, models.Windows).Perplexity;
        Assert.True(Math.Abs(actual - expected) <= 1e-3 * expected, $"{method}: runtime ppl {actual}, simulated {expected}");
    }

    [Fact]
    public void WithoutAMask_TheFilesDefaultMaskIsUsed()
    {
        string path = models.Paths["glowq"];
        using GlqRuntimeModel runtime = GlqRuntimeModel.Open(path, null, Options());
        Assert.Equal(runtime.Glq.DefaultMask, runtime.Mask);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void DecodeSteps_AllocateNothing(int threads)
    {
        using GlqRuntimeModel model = GlqRuntimeModel.Open(models.Paths["glowq"], Mask(models.Paths["glowq"], "half"), Options(threads));
        long allocated = DecodeAllocation.OverSteps(model, new SamplingOptions { Temperature = 0.9f, TopK = 40, Seed = 3 });
        Assert.True(allocated == 0, $"decode steps allocated {allocated} bytes in steady state");
    }

    [Fact]
    public void AMaskOfTheWrongLength_IsRefusedWithOneLine()
    {
        var e = Assert.Throws<ArgumentException>(() => GlqRuntimeModel.Open(models.Paths["glowq"], new byte[3], Options()));
        Assert.Contains("mask has 3 entries, the file has 20 units", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("model.layers.1.mlp.down_proj.scales")]
    [InlineData("glowq.l0.qkv.B")]
    [InlineData("model.layers.0.input_layernorm.weight")]
    public void AFileWithAMissingTensor_IsRefusedWithOneLineNamingIt(string tensor)
    {
        using var dir = new TempDirectory();
        string path = TinyGlqModel.Create().RemoveTensor(tensor).Write(dir.File("broken.glq"));
        var e = Assert.Throws<ModelFormatException>(() => GlqRuntimeModel.Open(path, null, Options()));
        Assert.Contains(tensor, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void TheTinyTestVector_RunsLikeItsSimulation()
    {
        using var dir = new TempDirectory();
        foreach (string method in GlqModel.Methods)
        {
            string path = TinyGlqModel.WriteFile(dir.File($"{method}.glq"), new TinyGlqOptions { Method = method, QkvBias = true, TiedEmbeddings = false });
            using GlqRuntimeModel runtime = GlqRuntimeModel.Open(path, null, new InferenceOptions { ContextLength = 16, Threads = 1 });
            using GlqFile file = GlqFile.Open(path);
            using var simulated = new LlamaModel(SimulatedQuantizedModel.Load(file), new InferenceOptions { ContextLength = 16, Threads = 1 });
            int[] tokens = [1, 5, 9, 3, 7, 2];
            var actual = new float[tokens.Length * TinyGlqModel.VocabSize];
            var expected = new float[tokens.Length * TinyGlqModel.VocabSize];
            runtime.Forward(tokens, 0, actual, allPositions: true);
            simulated.Forward(tokens, 0, expected, allPositions: true);
            double error = RelativeError(actual, expected);
            Assert.True(error <= 1e-3, $"{method}: relative error {error:E2}");
        }
    }
}
