using GlowQ.Format;
using GlowQ.TestSupport;

namespace GlowQ.Engine.Tests;

public sealed class Fp16KvCacheTests
{
    private static float[] RandomValues(Random rng, int n, float magnitude)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            x[i] = (rng.NextSingle() * 2 - 1) * magnitude;
        }

        return x;
    }

    private static float RoundedToHalf(float x) => (float)(Half)x;

    [Fact]
    public void F16Cache_ReadsBackEveryValueAsItsNearestHalf_WithinHalfARoundingStep()
    {
        const int layers = 2, kvHeads = 3, headDim = 20, context = 7;
        var cache = new KvCache(layers, kvHeads, headDim, context, KvCacheDtype.F16);
        var rng = new Random(11);
        int width = kvHeads * headDim;
        var stored = new (float[] K, float[] V)[layers, context];
        for (int l = 0; l < layers; l++)
        {
            for (int p = 0; p < context; p++)
            {
                // Magnitudes from fp16 subnormals (below 6.1e-5) to hundreds, both signs.
                float magnitude = MathF.Pow(10, -6 + (p * 10f / context));
                stored[l, p] = (RandomValues(rng, width, magnitude), RandomValues(rng, width, magnitude));
                cache.Store(l, p, stored[l, p].K, stored[l, p].V);
            }
        }

        var k = new float[width];
        var v = new float[width];
        for (int l = 0; l < layers; l++)
        {
            for (int p = 0; p < context; p++)
            {
                cache.Read(l, p, k, v);
                for (int i = 0; i < width; i++)
                {
                    foreach ((float original, float read) in new[] { (stored[l, p].K[i], k[i]), (stored[l, p].V[i], v[i]) })
                    {
                        Assert.Equal(RoundedToHalf(original), read);
                        // fp16 keeps 11 significant bits: relative error ≤ 2^−11 for normals, absolute ≤ 2^−25 below 2^−14.
                        double bound = Math.Max(Math.Abs(original) * Math.Pow(2, -11), Math.Pow(2, -25));
                        Assert.True(Math.Abs(read - original) <= bound, $"{original} read back as {read}");
                    }
                }
            }
        }

        Assert.False(cache.HoldsNonFinite(0));
    }

    [Fact]
    public void F32Cache_ReadsBackEveryValueExactly()
    {
        var cache = new KvCache(1, 2, 8, 3, KvCacheDtype.F32);
        var rng = new Random(2);
        float[] k = RandomValues(rng, 16, 1e5f), v = RandomValues(rng, 16, 1e-7f);
        cache.Store(0, 2, k, v);
        var kRead = new float[16];
        var vRead = new float[16];
        cache.Read(0, 2, kRead, vRead);
        Assert.Equal(k, kRead);
        Assert.Equal(v, vRead);
    }

    [Fact]
    public void ByteSize_OfAnF16Cache_IsHalfThatOfAnF32Cache_AndCountsEveryElement()
    {
        var f32 = new KvCache(5, 4, 8, 512, KvCacheDtype.F32);
        var f16 = new KvCache(5, 4, 8, 512, KvCacheDtype.F16);
        Assert.Equal(2L * 5 * 4 * 8 * 512 * 4, f32.ByteSize);
        Assert.Equal(f32.ByteSize / 2, f16.ByteSize);
        Assert.Throws<InvalidOperationException>(() => f16.Keys(0));
        Assert.Throws<InvalidOperationException>(() => f32.HalfValues(0));
    }

    [Theory]
    [InlineData("f16", KvCacheDtype.F16)]
    [InlineData("F32", KvCacheDtype.F32)]
    public void DtypeNames_ParseCaseInsensitively_AndRoundTrip(string name, KvCacheDtype expected)
    {
        Assert.True(KvCacheDtypes.TryParse(name, out KvCacheDtype parsed));
        Assert.Equal(expected, parsed);
        Assert.Equal(name.ToLowerInvariant(), parsed.Name());
        Assert.False(KvCacheDtypes.TryParse("bf16", out _));
    }

    /// <summary>
    /// Causal grouped-query attention in float64 over the cache's own fp16-rounded keys and values: what the fp16
    /// path must compute, up to fp32 accumulation.
    /// </summary>
    private static double[] Float64Attention(
        float[][] keys, float[][] values, float[] q, int heads, int kvHeads, int headDim, int start, int tokens, int? window)
    {
        var output = new double[tokens * heads * headDim];
        int group = heads / kvHeads;
        for (int t = 0; t < tokens; t++)
        {
            int position = start + t;
            int first = window is int w ? Math.Max(0, position - w + 1) : 0;
            for (int h = 0; h < heads; h++)
            {
                int kvHead = h / group;
                var scores = new double[position - first + 1];
                for (int p = first; p <= position; p++)
                {
                    double dot = 0;
                    for (int i = 0; i < headDim; i++)
                    {
                        dot += (double)q[(t * heads + h) * headDim + i] * RoundedToHalf(keys[p][kvHead * headDim + i]);
                    }

                    scores[p - first] = dot / Math.Sqrt(headDim);
                }

                double max = scores.Max();
                double sum = scores.Sum(s => Math.Exp(s - max));
                for (int p = first; p <= position; p++)
                {
                    double weight = Math.Exp(scores[p - first] - max) / sum;
                    for (int i = 0; i < headDim; i++)
                    {
                        output[(t * heads + h) * headDim + i] += weight * RoundedToHalf(values[p][kvHead * headDim + i]);
                    }
                }
            }
        }

        return output;
    }

    [Theory]
    // Head dims through the 16-wide and 8-wide vector steps and the scalar tail; decode and a prefill block; GQA; a window.
    [InlineData(8, 4, 2, 300, 1, null)]
    [InlineData(64, 4, 4, 700, 1, null)]
    [InlineData(24, 6, 2, 90, 5, null)]
    [InlineData(12, 2, 1, 40, 3, null)]
    [InlineData(3, 2, 2, 17, 2, null)]
    [InlineData(72, 4, 2, 200, 4, 50)]
    public void AttentionOverAnF16Cache_MatchesFloat64AttentionOverTheFp16RoundedKeysAndValues(
        int headDim, int heads, int kvHeads, int start, int tokens, int? window)
    {
        int context = start + tokens;
        var rng = new Random(headDim * 1000 + start);
        var cache = new KvCache(1, kvHeads, headDim, context, KvCacheDtype.F16);
        var keys = new float[context][];
        var values = new float[context][];
        for (int p = 0; p < context; p++)
        {
            keys[p] = RandomValues(rng, kvHeads * headDim, 3f);
            values[p] = RandomValues(rng, kvHeads * headDim, 2f);
            cache.Store(0, p, keys[p], values[p]);
        }

        float[] q = RandomValues(rng, tokens * heads * headDim, 1.5f);
        var output = new float[q.Length];
        using var pool = new WorkerPool(2);
        new Attention(pool, heads, kvHeads, headDim, context, window).Run(cache, 0, q, output, start, tokens);

        double[] expected = Float64Attention(keys, values, q, heads, kvHeads, headDim, start, tokens, window);
        // fp32 dot products of up to 72 terms of magnitude ≤ 4.5 and sums of up to 701 weighted values ≤ 2: a few fp32
        // rounding steps of the partial sums, far below 1e-5.
        for (int i = 0; i < output.Length; i++)
        {
            Assert.True(Math.Abs(output[i] - expected[i]) <= 1e-5, $"output[{i}] = {output[i]}, float64 {expected[i]}");
        }
    }

    [Fact]
    public void AttentionOverAnF16Cache_TurnsQueriesOfAnyMagnitudeIntoTheSameScores()
    {
        // The fp16 kernel carries part of the widening's 2^112 in q; a q too large to take all of it takes less.
        const int headDim = 16, span = 9;
        var rng = new Random(5);
        float[] keyValues = RandomValues(rng, span * headDim, 2f);
        Half[] keys = [.. keyValues.Select(x => (Half)x)];
        foreach (float magnitude in new[] { 1e-30f, 1f, 3e4f, 1e9f, 1e30f })
        {
            float[] q = RandomValues(rng, headDim, magnitude);
            var scores = new float[span];
            Attention.Scores(q, keys, 0.25f, scores);
            for (int s = 0; s < span; s++)
            {
                double dot = 0;
                for (int i = 0; i < headDim; i++)
                {
                    dot += (double)q[i] * (float)keys[s * headDim + i];
                }

                double expected = dot * 0.25;
                Assert.True(Math.Abs(scores[s] - expected) <= 1e-5 * magnitude * 32, $"|q| ~ {magnitude}: score {scores[s]}, float64 {expected}");
            }
        }
    }

    [Fact]
    public void AnF16Cache_KeepsInfinityAndNaN_InsteadOfWideningThemToFiniteValues()
    {
        const int headDim = 16, context = 6;
        var cache = new KvCache(1, 1, headDim, context, KvCacheDtype.F16);
        var rng = new Random(9);
        for (int p = 0; p < context; p++)
        {
            float[] v = RandomValues(rng, headDim, 1f);
            if (p == 2)
            {
                v[0] = 1e6f; // beyond fp16's 65504: stored as +infinity
                v[1] = float.NaN;
            }

            cache.Store(0, p, RandomValues(rng, headDim, 1f), v);
        }

        Assert.True(cache.HoldsNonFinite(0));
        var output = new float[headDim];
        using var pool = new WorkerPool(1);
        new Attention(pool, 1, 1, headDim, context, null).Run(cache, 0, RandomValues(rng, headDim, 1f), output, context - 1, 1);
        Assert.Equal(float.PositiveInfinity, output[0]);
        Assert.True(float.IsNaN(output[1]));
        Assert.All(output.Skip(2), x => Assert.True(float.IsFinite(x)));
    }

    [Fact]
    public void Stories260K_GreedyDecodeWithAnF16Cache_TracksTheF32CacheWithin5e2_AndPicksTheSameTokens()
    {
        using ICheckpoint bin = CheckpointExtensions.Open(SharedData.Stories260KBin);
        LlamaWeights weights = LlamaWeights.Load(bin);
        using var f32 = new LlamaModel(weights, new InferenceOptions { Threads = 2, KvCacheDtype = KvCacheDtype.F32 });
        using var f16 = new LlamaModel(weights, new InferenceOptions { Threads = 2, KvCacheDtype = KvCacheDtype.F16 });
        Assert.Equal(f32.KvCacheBytes / 2, f16.KvCacheBytes);
        Assert.Equal(KvCacheDtype.F16, f16.KvCacheDtype);

        // Greedy decode of 120 tokens, both models fed the f32 model's choices, so every step compares like with like;
        // the first 64 choices must agree (later ones could meet a near-tie that fp32 rounding alone would flip).
        const int generated = 120, agreeing = 64;
        int vocab = weights.Config.VocabSize;
        var logits32 = new float[vocab];
        var logits16 = new float[vocab];
        int[] prompt = Stories260KFixture.OnceUponATime;
        f32.Forward(prompt, 0, logits32);
        f16.Forward(prompt, 0, logits16);
        double worst = 0;
        for (int step = 0; step < generated; step++)
        {
            for (int v = 0; v < vocab; v++)
            {
                worst = Math.Max(worst, Math.Abs(logits32[v] - logits16[v]));
            }

            int token = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits32);
            Assert.True(step >= agreeing || token == System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits16), $"step {step}: the f16 cache picks a different token");
            f32.Forward([token], prompt.Length + step, logits32);
            f16.Forward([token], prompt.Length + step, logits16);
        }

        // fp16 rounds each key and value by at most 2^−11 relative; through 5 layers and 125 positions that moved logits
        // of magnitude ~10 by at most 1.9e-2 when this was written: the bound leaves room for another machine's rounding.
        Assert.True(worst < 5e-2, $"largest |f16 − f32 cache| logit difference {worst:E3}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void DecodeStepsWithAnF16Cache_AllocateNothing(int threads)
    {
        using ICheckpoint bin = CheckpointExtensions.Open(SharedData.Stories260KBin);
        using var model = new LlamaModel(LlamaWeights.Load(bin), new InferenceOptions { Threads = threads, KvCacheDtype = KvCacheDtype.F16 });
        long allocated = DecodeAllocation.OverSteps(model, new SamplingOptions { Temperature = 0.9f, TopK = 40, Seed = 3 });
        Assert.True(allocated == 0, $"decode steps allocated {allocated} bytes in steady state");
    }
}
