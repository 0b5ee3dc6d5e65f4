using GlowQ.Engine;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Gpu;
using GlowQ.Runtime.Model;
using GlowQ.TestSupport;

namespace GlowQ.Kernels.Tests;

/// <summary>
/// Sampled generation with the GPU model's device sampler, on ILGPU's CPU accelerator through
/// <see cref="IlgpuCpuDevice"/>, against the CPU runtime sampling on the host. The two forward passes agree to about
/// 1e-3 of the largest logit, and the samplers' probabilities to a few ulps, so a draw landing that close to a
/// cumulative boundary could split the texts; the seeds are fixed, so the comparison is deterministic.
/// </summary>
[Collection(CpuAcceleratorCollectionDefinition.Name)]
public sealed class GpuGlqModelSamplingTests(CpuAcceleratorFixture accelerators)
{
    private const int Tokens = 30;

    [Theory]
    [InlineData(1f, 11UL)]
    [InlineData(1.3f, 12UL)]
    public void SampledGeneration_PicksTokensOnTheDevice_MovingOneIdPerStep_AndWritesTheCpuRuntimesText(float repeatPenalty, ulong seed)
    {
        var sampling = new SamplingOptions { Temperature = 0.8f, TopK = 40, TopP = 0.95f, RepeatPenalty = repeatPenalty, Seed = seed };
        var options = new InferenceOptions { ContextLength = 64, Threads = 1 };
        var tokenizer = GlowQ.Tokenizers.Llama2cTokenizer.Load(SharedData.Stories260KTokenizer);
        string path = GpuGlqModelTests.BundledStories260K();
        using var device = new IlgpuCpuDevice(accelerators.WithWarpSize(4));
        using GpuGlqModel gpu = GpuGlqModel.Open(GlqFile.Open(path), device, mask: null, options);
        using GlqRuntimeModel cpu = GlqRuntimeModel.Open(path, mask: null, options);
        int[] prompt = [.. tokenizer.Encode("Once upon a time", addBos: true)];

        var gpuText = new StringWriter();
        long before = device.DownloadedBytes;
        GenerationResult result = new TextGenerator(gpu, tokenizer).Generate(prompt, Tokens, sampling, gpuText);
        long downloaded = device.DownloadedBytes - before;
        var cpuText = new StringWriter();
        GenerationResult cpuResult = new TextGenerator(cpu, tokenizer).Generate(prompt, Tokens, sampling, cpuText);

        Assert.Equal(cpuText.ToString(), gpuText.ToString());
        Assert.Equal(cpuResult.GeneratedTokens, result.GeneratedTokens);
        Assert.True(result.GeneratedTokens > 10, $"only {result.GeneratedTokens} tokens came out ({result.StopReason})");
        // One model run per generated token, plus the one whose token ended the text; each returns a 4-byte id.
        int runs = result.GeneratedTokens + (result.StopReason == "end-of-sequence" ? 1 : 0);
        Assert.Equal(4L * runs, downloaded);
    }

    [Fact]
    public void TheDeviceSampler_PicksWhatTheHostSamplerPicks_FromTheSameModelsLogits()
    {
        // The same GPU model twice, once hidden behind a plain ILanguageModel so the host samples its downloaded
        // logits: this separates the sampling kernels from the forward pass's agreement with the CPU runtime.
        var sampling = new SamplingOptions { Temperature = 0.8f, TopK = 40, TopP = 0.95f, RepeatPenalty = 1.3f, Seed = 21 };
        var options = new InferenceOptions { ContextLength = 64, Threads = 1 };
        var tokenizer = GlowQ.Tokenizers.Llama2cTokenizer.Load(SharedData.Stories260KTokenizer);
        using var device = new IlgpuCpuDevice(accelerators.WithWarpSize(4));
        using GpuGlqModel gpu = GpuGlqModel.Open(GlqFile.Open(GpuGlqModelTests.BundledStories260K()), device, mask: null, options);
        int[] prompt = [.. tokenizer.Encode("Once upon a time", addBos: true)];

        var deviceText = new StringWriter();
        GenerationResult onDevice = new TextGenerator(gpu, tokenizer).Generate(prompt, Tokens, sampling, deviceText);
        var hostText = new StringWriter();
        long before = device.DownloadedBytes;
        GenerationResult onHost = new TextGenerator(new HostSampled(gpu), tokenizer).Generate(prompt, Tokens, sampling, hostText);

        Assert.Equal(hostText.ToString(), deviceText.ToString());
        Assert.Equal(onHost.GeneratedTokens, onDevice.GeneratedTokens);
        Assert.True(device.DownloadedBytes - before >= 4L * gpu.Config.VocabSize, "the host path should have downloaded logits");
    }

    [Fact]
    public void ATopKBeyondTheDevicesCap_SamplesOnTheHost_FromDownloadedLogits()
    {
        var options = new InferenceOptions { ContextLength = 64, Threads = 1 };
        var tokenizer = GlowQ.Tokenizers.Llama2cTokenizer.Load(SharedData.Stories260KTokenizer);
        using var device = new IlgpuCpuDevice(accelerators.WithWarpSize(4));
        using GpuGlqModel gpu = GpuGlqModel.Open(GlqFile.Open(GpuGlqModelTests.BundledStories260K()), device, mask: null, options);
        int[] prompt = [.. tokenizer.Encode("Once upon a time", addBos: true)];

        long before = device.DownloadedBytes;
        GenerationResult result = new TextGenerator(gpu, tokenizer).Generate(prompt, 2, new SamplingOptions { TopK = gpu.MaxTopK + 1, Seed = 5 }, new StringWriter());

        int runs = result.GeneratedTokens + (result.StopReason == "end-of-sequence" ? 1 : 0);
        Assert.Equal(runs * 4L * gpu.Config.VocabSize, device.DownloadedBytes - before);
        Assert.True(runs > 0);
    }

    /// <summary>A model seen only as <see cref="ILanguageModel"/>, so <see cref="TextGenerator"/> samples on the host.</summary>
    private sealed class HostSampled(ILanguageModel model) : ILanguageModel
    {
        public GlowQ.Format.ModelConfig Config => model.Config;

        public int ContextLength => model.ContextLength;

        public int Threads => model.Threads;

        public long WeightBytes => model.WeightBytes;

        public void Forward(ReadOnlySpan<int> tokens, int startPosition, Span<float> logits, bool allPositions = false) =>
            model.Forward(tokens, startPosition, logits, allPositions);

        public void Dispose()
        {
        }
    }
}
