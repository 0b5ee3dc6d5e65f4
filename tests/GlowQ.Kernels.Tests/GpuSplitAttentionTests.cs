using GlowQ.Engine;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Gpu;
using GlowQ.Runtime.Model;
using GlowQ.TestSupport;

namespace GlowQ.Kernels.Tests;

/// <summary>
/// Decode attention split over the sequence inside the whole GPU model: with chunks of a few positions every decoded
/// token past the first chunk takes the split path, and the logits must stay within the 1e-4 relative bound of
/// <see cref="GpuGlqModelTests"/> against the CPU runtime.
/// </summary>
[Collection(CpuAcceleratorCollectionDefinition.Name)]
public sealed class GpuSplitAttentionTests(CpuAcceleratorFixture accelerators) : IDisposable
{
    private readonly TempDirectory _directory = new();

    [Theory]
    [InlineData(KvCacheDtype.F32, 3)]
    [InlineData(KvCacheDtype.F16, 4)]
    [InlineData(KvCacheDtype.F32, 1)]
    public void DecodedTokens_AttendingInChunks_GiveTheCpuRuntimesLogits(KvCacheDtype kvCache, int attentionChunk)
    {
        string path = TinyGlqModel.WriteFile(_directory.File("glowq.glq"), new TinyGlqOptions { Method = "glowq" });
        var options = new InferenceOptions { ContextLength = 32, Threads = 1, KvCacheDtype = kvCache, AttentionChunk = attentionChunk };
        using var device = new IlgpuCpuDevice(accelerators.WithWarpSize(4));
        using GpuGlqModel gpu = GpuGlqModel.Open(GlqFile.Open(path), device, mask: null, options);
        using GlqRuntimeModel cpu = GlqRuntimeModel.Open(path, mask: null, options);
        const int Vocab = TinyGlqModel.VocabSize;
        int[] tokens = [4, 8, 15, 16, 23, 31, 2, 7, 1, 9, 12, 0, 5, 30];
        var actual = new float[Vocab];
        var expected = new float[Vocab];

        // Every token decoded one at a time, so spans 1…14 cross 1 to 14 chunk boundaries.
        for (int position = 0; position < tokens.Length; position++)
        {
            gpu.Forward(tokens.AsSpan(position, 1), position, actual);
            cpu.Forward(tokens.AsSpan(position, 1), position, expected);
            GpuGlqModelTests.AssertClose(actual, expected, 1e-4, $"position {position}");
        }
    }

    [Fact]
    public void AnAttentionChunkBelowOne_IsRefused()
    {
        string path = TinyGlqModel.WriteFile(_directory.File("rtn.glq"), new TinyGlqOptions { Method = "rtn" });
        using var device = new IlgpuCpuDevice(accelerators.WithWarpSize(4));
        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
            GpuGlqModel.Open(GlqFile.Open(path), device, mask: null, new InferenceOptions { ContextLength = 16, Threads = 1, AttentionChunk = 0 }));
        Assert.Contains("attention chunk", error.Message, StringComparison.Ordinal);
    }

    public void Dispose() => _directory.Dispose();
}
