using GlowQ.Engine;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Gpu;
using GlowQ.TestSupport;

namespace GlowQ.Kernels.Tests;

/// <summary>
/// Decode steps recorded as graphs (<see cref="InferenceOptions.DecodeGraphs"/>) on the recording CPU-accelerator
/// device: a recorded step may only launch kernels (a copy or wait inside it throws, as it would break a CUDA capture),
/// runs the same kernels with the same arguments, so its logits equal the unrecorded step's bit for bit, and needs a
/// new graph only when the kernel sequence changes (the attention path), not when positions or tokens do.
/// </summary>
[Collection(CpuAcceleratorCollectionDefinition.Name)]
public sealed class GpuDecodeGraphTests(CpuAcceleratorFixture accelerators) : IDisposable
{
    private readonly TempDirectory _directory = new();

    [Theory]
    [InlineData("glowq", KvCacheDtype.F32)]
    [InlineData("layerwise", KvCacheDtype.F16)]
    public void RecordedDecodeSteps_GiveTheSameLogits_WithOneGraphPerAttentionPath(string method, KvCacheDtype kvCache)
    {
        string path = TinyGlqModel.WriteFile(_directory.File($"{method}.glq"), new TinyGlqOptions { Method = method, QkvBias = true });
        var options = new InferenceOptions { ContextLength = 32, Threads = 1, KvCacheDtype = kvCache, AttentionChunk = 4 };
        using var plainDevice = new IlgpuCpuDevice(accelerators.WithWarpSize(4));
        using var graphDevice = new IlgpuCpuDevice(accelerators.WithWarpSize(4));
        using GpuGlqModel plain = GpuGlqModel.Open(GlqFile.Open(path), plainDevice, mask: null, options);
        using GpuGlqModel graphed = GpuGlqModel.Open(GlqFile.Open(path), graphDevice, mask: null, options with { DecodeGraphs = true });
        const int Vocab = TinyGlqModel.VocabSize, Prompt = 3;
        int[] tokens = [1, 2, 3, 30, 12, 5, 9, 22, 0, 17];
        var expected = new float[Vocab];
        var actual = new float[Vocab];

        // The prompt is a block (not recorded); then single tokens, whose spans cross the 4-position attention chunk.
        plain.Forward(tokens.AsSpan(0, Prompt), 0, expected);
        graphed.Forward(tokens.AsSpan(0, Prompt), 0, actual);
        Assert.Equal(0, graphDevice.GraphLaunches);
        for (int position = Prompt; position < tokens.Length; position++)
        {
            plain.Forward(tokens.AsSpan(position, 1), position, expected);
            graphed.Forward(tokens.AsSpan(position, 1), position, actual);
            Assert.Equal(expected, actual);
        }

        Assert.Equal(tokens.Length - Prompt, graphDevice.GraphLaunches);
        Assert.Equal(2, graphDevice.GraphsBuilt);
        Assert.Equal(0, plainDevice.GraphLaunches);
    }

    [Fact]
    public void GreedyGeneration_WithRecordedSteps_PicksTheSameTokens()
    {
        string path = TinyGlqModel.WriteFile(_directory.File("glowq.glq"), new TinyGlqOptions { Method = "glowq" });
        var options = new InferenceOptions { ContextLength = 32, Threads = 1 };
        using var plainDevice = new IlgpuCpuDevice(accelerators.WithWarpSize(4));
        using var graphDevice = new IlgpuCpuDevice(accelerators.WithWarpSize(4));
        using GpuGlqModel plain = GpuGlqModel.Open(GlqFile.Open(path), plainDevice, mask: null, options);
        using GpuGlqModel graphed = GpuGlqModel.Open(GlqFile.Open(path), graphDevice, mask: null, options with { DecodeGraphs = true });
        int[] prompt = [1, 7, 3];

        int[] Greedy(GpuGlqModel model)
        {
            var chosen = new List<int> { model.ForwardArgmax(prompt, 0) };
            for (int position = prompt.Length; chosen.Count < 12; position++)
            {
                chosen.Add(model.ForwardArgmax([chosen[^1]], position));
            }

            return [.. chosen];
        }

        Assert.Equal(Greedy(plain), Greedy(graphed));
        Assert.Equal(11, graphDevice.GraphLaunches);
    }

    public void Dispose() => _directory.Dispose();
}
