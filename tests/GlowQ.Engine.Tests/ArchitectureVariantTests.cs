using GlowQ.Format;
using GlowQ.TestSupport;

namespace GlowQ.Engine.Tests;

/// <summary>Each architecture feature the engine honours, checked end to end against the float64 HF reference.</summary>
public sealed class ArchitectureVariantTests
{
    public static TheoryData<string, SyntheticHfCheckpoint.Shape> Variants => new()
    {
        { "Qwen2: q/k/v biases, GQA 6/2, tied, rope_theta 1e6", new("Qwen2ForCausalLM", 48, 80, 2, 6, 2, 97, ExtraConfig: ",\"rope_theta\":1000000.0") },
        {
            "Llama-3: rope_scaling llama3, head_dim ≠ dim/heads, separate head, BF16",
            new("LlamaForCausalLM", 40, 64, 2, 4, 2, 61, HeadDim: 16, Tied: false, DType: "BF16",
                ExtraConfig: ",\"rope_theta\":500000.0,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":16}")
        },
        { "Mistral: sliding window 5, F16 (kept as fp16 in memory)", new("MistralForCausalLM", 32, 72, 2, 4, 1, 53, DType: "F16", ExtraConfig: ",\"sliding_window\":5") },
        { "Llama: multi-head attention (kv heads = heads), separate head", new("LlamaForCausalLM", 32, 48, 1, 4, 4, 29, Tied: false) },
    };

    [Theory]
    [MemberData(nameof(Variants))]
    public void Logits_MatchTheFloat64HfReference(string description, SyntheticHfCheckpoint.Shape shape)
    {
        using var dir = new TempDirectory();
        SyntheticHfCheckpoint.Write(dir.Path, shape);
        int[] tokens = [.. Enumerable.Range(0, 14).Select(i => (i * 7 + 3) % shape.Vocab)];
        double[][] expected = new Float64HfLlama(dir.Path).Logits(tokens);

        using ICheckpoint checkpoint = CheckpointExtensions.Open(dir.Path);
        var weights = LlamaWeights.Load(checkpoint);
        Assert.Equal(shape.DType == "F16", weights.Layers[0].Query.F16 is not null);
        using var model = new LlamaModel(weights, new InferenceOptions { PrefillChunk = 5, Threads = 2 });
        var logits = new float[tokens.Length * shape.Vocab];
        model.Forward(tokens, 0, logits, allPositions: true);

        double worst = 0;
        for (int t = 0; t < tokens.Length; t++)
        {
            for (int v = 0; v < shape.Vocab; v++)
            {
                worst = Math.Max(worst, Math.Abs(expected[t][v] - logits[t * shape.Vocab + v]));
            }
        }

        Assert.True(worst < 1e-4, $"{description}: largest logit difference {worst:E3}");
    }

    [Fact]
    public void SlidingWindow_ChangesLogitsOnlyBeyondTheWindow()
    {
        // Guards the reference comparison above: with a window of 5 the first 5 positions equal full attention.
        using var windowed = new TempDirectory();
        using var full = new TempDirectory();
        var shape = new SyntheticHfCheckpoint.Shape("MistralForCausalLM", 32, 72, 2, 4, 1, 53, ExtraConfig: ",\"sliding_window\":5");
        SyntheticHfCheckpoint.Write(windowed.Path, shape);
        SyntheticHfCheckpoint.Write(full.Path, shape with { ExtraConfig = ",\"sliding_window\":null" });
        int[] tokens = [.. Enumerable.Range(0, 10).Select(i => i * 5 % 53)];
        double[][] a = new Float64HfLlama(windowed.Path).Logits(tokens);
        double[][] b = new Float64HfLlama(full.Path).Logits(tokens);
        for (int t = 0; t < 5; t++)
        {
            Assert.Equal(a[t], b[t]);
        }

        Assert.NotEqual(a[9], b[9]);
    }
}
