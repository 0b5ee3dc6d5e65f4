using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Gpu;
using GlowQ.Runtime.Model;
using GlowQ.TestSupport;
using ILGPU.Runtime;

namespace GlowQ.Kernels.Tests;

/// <summary>
/// The GPU model, run on ILGPU's CPU accelerator through <see cref="IlgpuCpuDevice"/> (the launches decoded from the
/// bytes CUDA would get), against the CPU int4 runtime on the same file and mask. Both accumulate in fp32 in different
/// orders, so logits agree to a relative error (max |Δ| / max |logit|) of 1e-4 on the tiny models and 1e-3 on
/// stories260K, whose 5 layers compound more rounding; greedy tokens must agree exactly.
/// </summary>
[Collection(CpuAcceleratorCollectionDefinition.Name)]
public sealed class GpuGlqModelTests(CpuAcceleratorFixture accelerators) : IDisposable
{
    private readonly TempDirectory _directory = new();

    /// <summary>Method, mask, KV cache, warp size, and prefill block: 64 runs the prompt as one block, 3 and 5 in blocks that start mid-prompt.</summary>
    public static TheoryData<string, string, string, int, int> TinyCases => new()
    {
        { "glowq", "all", "f32", 4, 64 },
        { "glowq", "none", "f32", 32, 3 },
        { "glowq", "alternate", "f16", 32, 3 },
        { "layerwise", "all", "f16", 4, 64 },
        { "layerwise", "alternate", "f32", 32, 3 },
        { "rtn", "none", "f32", 4, 5 },
    };

    [Theory]
    [MemberData(nameof(TinyCases))]
    public void Logits_MatchTheCpuRuntime_InPrefillAndDecode_ForEveryMethodMaskAndCacheType(string method, string maskName, string kvCache, int warpSize, int prefillBlock)
    {
        string path = TinyGlqModel.WriteFile(_directory.File($"{method}.glq"), new TinyGlqOptions { Method = method, QkvBias = true, TiedEmbeddings = false });
        byte[] mask = Mask(path, maskName);
        var options = new InferenceOptions
        {
            ContextLength = 32,
            Threads = 1,
            KvCacheDtype = kvCache == "f16" ? KvCacheDtype.F16 : KvCacheDtype.F32,
            PrefillChunk = prefillBlock,
        };
        using var device = new IlgpuCpuDevice(accelerators.WithWarpSize(warpSize));
        using GpuGlqModel gpu = GpuGlqModel.Open(GlqFile.Open(path), device, mask, options);
        using GlqRuntimeModel cpu = GlqRuntimeModel.Open(path, mask, options);
        const int Vocab = TinyGlqModel.VocabSize;
        int[] tokens = [1, 5, 9, 30, 2, 17, 4, 4, 11, 31, 0, 8];

        // A prompt of 8 tokens with every position's logits, then one token at a time on top of its cache.
        const int Prompt = 8;
        var actual = new float[Prompt * Vocab];
        var expected = new float[Prompt * Vocab];
        gpu.Forward(tokens.AsSpan(0, Prompt), 0, actual, allPositions: true);
        cpu.Forward(tokens.AsSpan(0, Prompt), 0, expected, allPositions: true);
        for (int position = 0; position < Prompt; position++)
        {
            AssertClose(actual.AsSpan(position * Vocab, Vocab), expected.AsSpan(position * Vocab, Vocab), 1e-4, $"prompt position {position}");
        }

        for (int position = Prompt; position < tokens.Length; position++)
        {
            gpu.Forward(tokens.AsSpan(position, 1), position, actual);
            cpu.Forward(tokens.AsSpan(position, 1), position, expected);
            AssertClose(actual.AsSpan(0, Vocab), expected.AsSpan(0, Vocab), 1e-4, $"decode position {position}");
        }

        Assert.True(device.Launches > tokens.Length * 10, $"only {device.Launches} launches ran on the device");
    }

    [Fact]
    public void Stories260K_GreedyTokens_EqualTheCpuRuntimes_AndLogitsAgreeAtEveryStep()
    {
        string path = BundledStories260K();
        var options = new InferenceOptions { ContextLength = 64, Threads = 1 };
        using var device = new IlgpuCpuDevice(accelerators.WithWarpSize(4));
        using GpuGlqModel gpu = GpuGlqModel.Open(GlqFile.Open(path), device, mask: null, options);
        using GlqRuntimeModel cpu = GlqRuntimeModel.Open(path, mask: null, options);
        int vocab = gpu.Config.VocabSize;
        var gpuLogits = new float[vocab];
        var cpuLogits = new float[vocab];

        // "Once upon a time" in tok512 ids would tie this test to the tokenizer; BOS and greedy decoding need nothing else.
        int gpuToken = 1, cpuToken = 1;
        var gpuTokens = new List<int>();
        var cpuTokens = new List<int>();
        for (int position = 0; position < 40; position++)
        {
            gpu.Forward([gpuToken], position, gpuLogits);
            cpu.Forward([cpuToken], position, cpuLogits);
            AssertClose(gpuLogits, cpuLogits, 1e-3, $"step {position}");
            gpuToken = ArgMax(gpuLogits);
            cpuToken = ArgMax(cpuLogits);
            gpuTokens.Add(gpuToken);
            cpuTokens.Add(cpuToken);
        }

        Assert.Equal(cpuTokens, gpuTokens);
        Assert.True(gpuTokens.Distinct().Count() > 10, "greedy decoding from BOS should produce a varied story");
    }

    [Fact]
    public void GreedyGeneration_PicksTokensOnTheDevice_MovingOneIdPerStep_AndWritesTheCpuRuntimesText()
    {
        string path = BundledStories260K();
        var options = new InferenceOptions { ContextLength = 64, Threads = 1 };
        var tokenizer = GlowQ.Tokenizers.Llama2cTokenizer.Load(SharedData.Stories260KTokenizer);
        using var device = new IlgpuCpuDevice(accelerators.WithWarpSize(4));
        using GpuGlqModel gpu = GpuGlqModel.Open(GlqFile.Open(path), device, mask: null, options);
        using GlqRuntimeModel cpu = GlqRuntimeModel.Open(path, mask: null, options);
        int[] prompt = [.. tokenizer.Encode("Once upon a time", addBos: true)];
        var greedy = new SamplingOptions { Temperature = 0 };
        const int Tokens = 30;

        var gpuText = new StringWriter();
        long before = device.DownloadedBytes;
        GenerationResult result = new TextGenerator(gpu, tokenizer).Generate(prompt, Tokens, greedy, gpuText);
        long downloaded = device.DownloadedBytes - before;
        var cpuText = new StringWriter();
        new TextGenerator(cpu, tokenizer).Generate(prompt, Tokens, greedy, cpuText);

        Assert.Equal(cpuText.ToString(), gpuText.ToString());
        Assert.Equal(Tokens, result.GeneratedTokens);
        // One 4-byte token id per model run (the prompt, then each token but the last), never a logits row.
        Assert.Equal(4L * Tokens, downloaded);

        // With a repetition penalty the host needs the logits, so they come back instead.
        before = device.DownloadedBytes;
        new TextGenerator(gpu, tokenizer).Generate(prompt, 2, greedy with { RepeatPenalty = 1.3f }, new StringWriter());
        Assert.Equal(2L * 4 * gpu.Config.VocabSize, device.DownloadedBytes - before);
    }

    [Fact]
    public void MaskedOffUnits_UploadNoCorrectionFactors()
    {
        string path = TinyGlqModel.WriteFile(_directory.File("glowq.glq"), new TinyGlqOptions { Method = "glowq" });
        var options = new InferenceOptions { ContextLength = 16, Threads = 1 };
        using var file = GlqFile.Open(path);
        GlqModel glq = GlqModel.Read(file);
        byte[] all = [.. Enumerable.Repeat((byte)1, glq.Units.Count)];
        byte[] none = new byte[glq.Units.Count];

        long withAll = WeightBytes(path, all, options);
        long withNone = WeightBytes(path, none, options);

        Assert.Equal(glq.CorrectionBytes(file, all), withAll - withNone);
        Assert.True(glq.CorrectionBytes(file, all) > 0);
    }

    [Fact]
    public void ARestorationMaskOfTheWrongLength_IsRefusedWithTheCounts()
    {
        string path = TinyGlqModel.WriteFile(_directory.File("glowq.glq"), new TinyGlqOptions { Method = "glowq" });
        using var device = new IlgpuCpuDevice(accelerators.WithWarpSize(4));
        using var file = GlqFile.Open(path);
        var error = Assert.Throws<ArgumentException>(() => GpuGlqModel.Open(file, device, [1]));
        Assert.Contains("the restoration mask has 1 entries", error.Message, StringComparison.Ordinal);
    }

    public void Dispose() => _directory.Dispose();

    private long WeightBytes(string path, byte[] mask, InferenceOptions options)
    {
        using var device = new IlgpuCpuDevice(accelerators.WithWarpSize(4));
        using GpuGlqModel model = GpuGlqModel.Open(GlqFile.Open(path), device, mask, options);
        return model.WeightBytes;
    }

    private static byte[] Mask(string path, string name)
    {
        using var file = GlqFile.Open(path);
        int units = GlqModel.Read(file).Units.Count;
        return name switch
        {
            "all" => [.. Enumerable.Repeat((byte)1, units)],
            "none" => new byte[units],
            "alternate" => [.. Enumerable.Range(0, units).Select(u => (byte)(u % 2))],
            _ => throw new ArgumentOutOfRangeException(nameof(name)),
        };
    }

    internal static void AssertClose(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double tolerance, string where)
    {
        double diff = 0, scale = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(float.IsFinite(actual[i]), $"{where}: logit {i} is {actual[i]}");
            diff = Math.Max(diff, Math.Abs(actual[i] - expected[i]));
            scale = Math.Max(scale, Math.Abs(expected[i]));
        }

        Assert.True(diff <= tolerance * scale, $"{where}: max |Δ| {diff:E2} over max |logit| {scale:E2} exceeds {tolerance:E0}");
    }

    private static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
            {
                best = i;
            }
        }

        return best;
    }

    /// <summary>The product's bundled model, models/stories260K/stories260K.glq in the repository.</summary>
    internal static string BundledStories260K()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            string candidate = Path.Combine(directory.FullName, "models", "stories260K", "stories260K.glq");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException("models/stories260K/stories260K.glq not found above " + AppContext.BaseDirectory);
    }
}
