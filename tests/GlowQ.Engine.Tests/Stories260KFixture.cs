using GlowQ.Format;
using GlowQ.TestSupport;

namespace GlowQ.Engine.Tests;

/// <summary>The real stories260K model loaded once per test class, from the llama2.c and the HF checkpoint.</summary>
public sealed class Stories260KFixture : IDisposable
{
    public Stories260KFixture()
    {
        using ICheckpoint bin = CheckpointExtensions.Open(SharedData.Stories260KBin);
        using ICheckpoint hf = CheckpointExtensions.Open(SharedData.Stories260KHf);
        Llama2c = new LlamaModel(LlamaWeights.Load(bin), new InferenceOptions { Threads = 2 });
        Hf = new LlamaModel(LlamaWeights.Load(hf), new InferenceOptions { Threads = 2 });
        Reference = new Float64Llama2c(SharedData.Stories260KBin);
    }

    public LlamaModel Llama2c { get; }

    public LlamaModel Hf { get; }

    public Float64Llama2c Reference { get; }

    /// <summary>"Once upon a time" as llama2.c encodes it with tok512.bin.</summary>
    public static readonly int[] OnceUponATime = [1, 403, 407, 261, 378];

    public void Dispose()
    {
        Llama2c.Dispose();
        Hf.Dispose();
    }
}
