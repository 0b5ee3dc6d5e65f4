namespace GlowQ.Engine.Tests;

public sealed class SamplerTests
{
    private static float[] Logits(params float[] values) => values;

    [Fact]
    public void TemperatureZero_PicksTheArgmax_LowestIdOnTies()
    {
        var s = new Sampler(5, new SamplingOptions { Temperature = 0 });
        Assert.Equal(3, s.Sample(Logits(0, 1, 2, 5, 4), []));
        Assert.Equal(1, s.Sample(Logits(0, 7, 2, 7, 4), []));
    }

    [Fact]
    public void SameSeed_GivesTheSameDraws()
    {
        var options = new SamplingOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0, Seed = 42 };
        int[] Draw()
        {
            var s = new Sampler(4, options);
            return [.. Enumerable.Range(0, 50).Select(_ => s.Sample(Logits(1, 1, 1, 1), []))];
        }

        Assert.Equal(Draw(), Draw());
    }

    [Fact]
    public void TemperatureOne_DrawsInProportionToSoftmax()
    {
        // p = softmax(log [0.5, 0.3, 0.2]) = [0.5, 0.3, 0.2]; 20,000 draws: each frequency within 4 standard errors.
        var s = new Sampler(3, new SamplingOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0, Seed = 7 });
        double[] p = [0.5, 0.3, 0.2];
        var counts = new int[3];
        const int N = 20000;
        for (int i = 0; i < N; i++)
        {
            counts[s.Sample(Logits(MathF.Log(0.5f), MathF.Log(0.3f), MathF.Log(0.2f)), [])]++;
        }

        for (int k = 0; k < 3; k++)
        {
            double se = Math.Sqrt(p[k] * (1 - p[k]) / N);
            Assert.True(Math.Abs(counts[k] / (double)N - p[k]) < 4 * se, $"token {k}: {counts[k]} of {N}");
        }
    }

    [Fact]
    public void TopK_NeverDrawsOutsideTheKMostLikely()
    {
        var s = new Sampler(6, new SamplingOptions { Temperature = 5, TopK = 2, TopP = 1, MinP = 0, Seed = 3 });
        for (int i = 0; i < 500; i++)
        {
            Assert.Contains(s.Sample(Logits(0, 3, 1, 2.9f, 0, 0), []), new[] { 1, 3 });
        }
    }

    [Fact]
    public void TopP_KeepsTheSmallestSetReachingP()
    {
        // p ≈ [0.6, 0.3, 0.1]: top-p 0.8 keeps {0, 1}; 0.5 keeps {0}.
        float[] l = [MathF.Log(0.6f), MathF.Log(0.3f), MathF.Log(0.1f)];
        var wide = new Sampler(3, new SamplingOptions { Temperature = 1, TopK = 0, TopP = 0.8f, MinP = 0, Seed = 5 });
        var narrow = new Sampler(3, new SamplingOptions { Temperature = 1, TopK = 0, TopP = 0.5f, MinP = 0, Seed = 5 });
        var seen = new HashSet<int>();
        for (int i = 0; i < 500; i++)
        {
            seen.Add(wide.Sample((float[])l.Clone(), []));
            Assert.Equal(0, narrow.Sample((float[])l.Clone(), []));
        }

        Assert.Equal(new HashSet<int> { 0, 1 }, seen);
    }

    [Fact]
    public void MinP_DropsTokensFarLessLikelyThanTheTop()
    {
        float[] l = [MathF.Log(0.6f), MathF.Log(0.35f), MathF.Log(0.05f)];
        var s = new Sampler(3, new SamplingOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0.1f, Seed = 9 });
        for (int i = 0; i < 1000; i++)
        {
            Assert.NotEqual(2, s.Sample((float[])l.Clone(), []));
        }
    }

    [Fact]
    public void RepeatPenalty_DividesPositiveAndMultipliesNegativeLogitsOfRecentTokens()
    {
        var s = new Sampler(3, new SamplingOptions { Temperature = 0, RepeatPenalty = 2, RepeatLastN = 2 });
        float[] l = [3, 2.5f, -1];
        // Token 0 was seen twice in the window (penalised once), token 2 is outside the last two.
        Assert.Equal(1, s.Sample(l, [2, 0, 0]));
        Assert.Equal([1.5f, 2.5f, -1f], l);
    }

    [Theory]
    [InlineData(0.8f, 40, 64, true)]
    [InlineData(0.8f, 64, 64, true)]
    [InlineData(0.8f, 1, 64, true)]
    [InlineData(0.8f, 65, 64, false)]
    [InlineData(0.8f, 0, 64, false)]
    [InlineData(0f, 40, 64, false)]
    public void CanSampleOnDevice_NeedsATemperatureAndATopKWithinTheDevicesCap(float temperature, int topK, int maxTopK, bool expected)
    {
        var s = new Sampler(100, new SamplingOptions { Temperature = temperature, TopK = topK, RepeatPenalty = 1.3f });
        Assert.Equal(expected, s.CanSampleOnDevice(maxTopK));
    }

    [Fact]
    public void PenalisedTokens_AreTheDistinctInVocabularyIdsOfTheLastN_InFirstSeenOrder()
    {
        var s = new Sampler(10, new SamplingOptions { RepeatPenalty = 1.3f, RepeatLastN = 6 });

        // 9 and 2 fall outside the last six; 42 and −1 are outside the vocabulary.
        Assert.Equal([4, 7, 1], s.PenalisedTokens([9, 2, 4, 7, 4, 42, 1, -1]).ToArray());
        // The sampler's scratch marks are cleared, so a second call sees the same ids again.
        Assert.Equal([4, 7, 1], s.PenalisedTokens([9, 2, 4, 7, 4, 42, 1, -1]).ToArray());
    }

    [Theory]
    [InlineData(1f, 64)]
    [InlineData(1.3f, 0)]
    public void PenalisedTokens_AreEmptyWhenThePenaltyIsOff(float penalty, int lastN)
    {
        var s = new Sampler(10, new SamplingOptions { RepeatPenalty = penalty, RepeatLastN = lastN });
        Assert.True(s.PenalisedTokens([1, 2, 3]).IsEmpty);
    }

    [Fact]
    public void PenalisedTokens_AreTheIdsSamplePenalises()
    {
        var options = new SamplingOptions { Temperature = 0, RepeatPenalty = 2, RepeatLastN = 4 };
        int[] history = [5, 0, 3, 3, 1, 0];
        float[] logits = [4, -2, 6, 8, 1, 10];
        float[] penalised = (float[])logits.Clone();

        new Sampler(6, options).Sample(penalised, history);
        int[] ids = new Sampler(6, options).PenalisedTokens(history).ToArray();

        for (int i = 0; i < logits.Length; i++)
        {
            Assert.Equal(ids.Contains(i), penalised[i] != logits[i]);
        }
    }

    [Fact]
    public void NextUniform_IsTheDrawSampleTakes_OnePerToken()
    {
        // 256 equal logits: every probability is exactly 1/256 and every running sum exact, so Sample returns ⌊u · 256⌋
        // for its draw u. A twin sampler's NextUniform must produce those draws in the same order.
        var options = new SamplingOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0, Seed = 1234 };
        var sampler = new Sampler(256, options);
        var twin = new Sampler(256, options);
        var tokens = new List<int>();
        for (int i = 0; i < 200; i++)
        {
            int token = sampler.Sample(new float[256], []);
            float u = twin.NextUniform();
            Assert.InRange(u, 0f, 1f - (1f / 16777216f));
            Assert.Equal((int)(u * 256), token);
            tokens.Add(token);
        }

        Assert.True(tokens.Distinct().Count() > 100, "the draws should spread over the vocabulary");
    }

    [Theory]
    [InlineData(-1f, 40, 0.9f, 0f, 1f)]
    [InlineData(1f, -1, 0.9f, 0f, 1f)]
    [InlineData(1f, 40, 0f, 0f, 1f)]
    [InlineData(1f, 40, 0.9f, 1f, 1f)]
    [InlineData(1f, 40, 0.9f, 0f, 0f)]
    public void OutOfRangeOptions_AreReported(float temperature, int topK, float topP, float minP, float penalty)
    {
        var o = new SamplingOptions { Temperature = temperature, TopK = topK, TopP = topP, MinP = minP, RepeatPenalty = penalty };
        Assert.NotNull(o.Problem());
    }
}
