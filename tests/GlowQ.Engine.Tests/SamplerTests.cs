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
