using GlowQ.Format;

namespace GlowQ.Engine.Tests;

public sealed class Stories260KForwardTests(Stories260KFixture model) : IClassFixture<Stories260KFixture>
{
    // A fixed token sequence long enough to exercise attention over many positions.
    private static readonly int[] Sequence = [.. Stories260KFixture.OnceUponATime, 261, 400, 310, 1000 % 512, 270, 300, 420, 500, 260, 290, 330, 360, 12, 99, 450, 480];

    private float[] LogitsOf(LlamaModel m, int[] tokens)
    {
        var logits = new float[tokens.Length * m.Config.VocabSize];
        m.Forward(tokens, 0, logits, allPositions: true);
        return logits;
    }

    [Fact]
    public void Llama2cCheckpoint_ReadsHeaderAsStories260K()
    {
        ModelConfig c = model.Llama2c.Config;
        Assert.Equal((64, 172, 5, 8, 4, 512, 512, true), (c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KvHeads, c.VocabSize, c.MaxSequenceLength, c.TiedEmbeddings));
        Assert.Equal(RopeLayout.InterleavedPairs, c.RopeLayout);
        Assert.Equal(RopeLayout.RotateHalf, model.Hf.Config.RopeLayout);
    }

    [Fact]
    public void Logits_MatchFloat64ReferenceWithin1e4()
    {
        double[][] expected = model.Reference.Logits(Sequence);
        float[] actual = LogitsOf(model.Llama2c, Sequence);
        int vocab = model.Llama2c.Config.VocabSize;
        double worst = 0;
        for (int t = 0; t < Sequence.Length; t++)
        {
            for (int v = 0; v < vocab; v++)
            {
                worst = Math.Max(worst, Math.Abs(expected[t][v] - actual[t * vocab + v]));
            }
        }

        Assert.True(worst < 1e-4, $"largest |fp32 − float64| logit difference {worst:E3}");
    }

    [Fact]
    public void Logits_Llama2cAndHfCheckpointsAgreeWithin1e4()
    {
        float[] fromBin = LogitsOf(model.Llama2c, Sequence);
        float[] fromHf = LogitsOf(model.Hf, Sequence);
        double worst = 0;
        for (int i = 0; i < fromBin.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(fromBin[i] - fromHf[i]));
        }

        Assert.True(worst < 1e-4, $"largest logit difference between llama2.c and HF checkpoints {worst:E3}");
    }

    [Fact]
    public void Prefill_GivesTheSameLogitsAsDecodingOneTokenAtATime()
    {
        LlamaModel m = model.Llama2c;
        int vocab = m.Config.VocabSize;
        float[] batched = LogitsOf(m, Sequence);
        var single = new float[vocab];
        double worst = 0;
        for (int t = 0; t < Sequence.Length; t++)
        {
            m.Forward(Sequence.AsSpan(t, 1), t, single);
            for (int v = 0; v < vocab; v++)
            {
                worst = Math.Max(worst, Math.Abs(single[v] - batched[t * vocab + v]));
            }
        }

        Assert.True(worst < 1e-5, $"prefill and decode logits differ by {worst:E3}");
    }

    [Fact]
    public void Prefill_LongerThanOneChunk_EqualsAllAtOnce()
    {
        using ICheckpoint bin = CheckpointExtensions.Open(TestSupport.SharedData.Stories260KBin);
        using var chunked = new LlamaModel(LlamaWeights.Load(bin), new InferenceOptions { PrefillChunk = 3, Threads = 1 });
        float[] expected = LogitsOf(model.Llama2c, Sequence);
        float[] actual = LogitsOf(chunked, Sequence);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) < 1e-5, $"logit {i}: {expected[i]} vs {actual[i]}");
        }
    }

    [Fact]
    public void Forward_BeyondContext_Throws()
    {
        var logits = new float[model.Llama2c.Config.VocabSize];
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => model.Llama2c.Forward([5, 6], model.Llama2c.ContextLength - 1, logits));
        Assert.Contains("context length", e.Message);
    }
}
