using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Model;

namespace GlowQ.Runtime.Tests;

public sealed class GlqRuntimeHeadTests(Stories260KEveryMethod models) : IClassFixture<Stories260KEveryMethod>
{
    [Fact]
    public void WideningAnFp16Head_KeepsTheLogits_AndCostsTwoBytesPerHeadWeight()
    {
        string path = models.Paths["glowq"];
        var options = new InferenceOptions { ContextLength = 64, Threads = 1 };
        using GlqRuntimeModel stored = GlqRuntimeModel.Open(path, null, options);
        using GlqRuntimeModel widened = GlqRuntimeModel.Open(path, null, options, widenHalfHead: true);
        ModelConfig c = stored.Config;
        int[] prompt = [1, 45, 3, 200, 17, 9];
        float[] expected = new float[prompt.Length * c.VocabSize], actual = new float[expected.Length];
        stored.Forward(prompt, 0, expected, allPositions: true);
        widened.Forward(prompt, 0, actual, allPositions: true);

        // Both products widen each fp16 weight exactly and accumulate in fp32; only the order of additions may differ.
        double scale = expected.Max(Math.Abs);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-5 * scale, $"logit {i}: {actual[i]} vs {expected[i]}");
        }

        GlqTensorInfo head = stored.File.RequireTensor(c.TiedEmbeddings ? LlamaTensorNames.Embedding : LlamaTensorNames.OutputHead);
        GlqTensorInfo embedding = stored.File.RequireTensor(LlamaTensorNames.Embedding);
        long halfElements = (head.DType == GlqDType.F16 ? head.ElementCount : 0)
                            + (!c.TiedEmbeddings && embedding.DType == GlqDType.F16 ? embedding.ElementCount : 0);
        Assert.Equal(stored.WeightBytes + (2 * halfElements), widened.WeightBytes);
    }
}
