using GlowQ.Engine;
using ILGPU;
using ILGPU.Runtime;

namespace GlowQ.Kernels.Tests;

/// <summary>
/// The device sampler (repetition penalty, then partial and final sampling launches) must pick the CPU sampler's token
/// for the same logits, settings, history and seed.
/// <para>
/// Tolerance: the device's probabilities come from another exponential and a chunk-by-chunk normaliser, so they equal
/// the CPU's only to a few ulps. A draw (or a min-p / top-p threshold) within ~1e-6 of a cumulative boundary could in
/// principle land on the neighbouring token. The cases here are seeded, so the outcome is deterministic; a mismatch
/// is only accepted when <see cref="NearABoundary"/> shows the CPU's own numbers put it that close, and such cases must
/// stay rare. Anything else fails.
/// </para>
/// </summary>
[Collection(CpuAcceleratorCollectionDefinition.Name)]
public sealed class SamplingKernelsTests(CpuAcceleratorFixture accelerators)
{
    private const float BoundaryMargin = 1e-5f;

    private static readonly float[] Temperatures = [0.3f, 0.7f, 1f, 1.5f];
    private static readonly int[] TopKs = [1, 5, 40, 64];
    private static readonly float[] TopPs = [0.5f, 0.9f, 1f];
    private static readonly float[] MinPs = [0f, 0.05f];
    private static readonly float[] Penalties = [1f, 1.3f];

    [Theory]
    [InlineData(1, 256)]
    [InlineData(7, 256)]
    [InlineData(7, 3)]
    [InlineData(512, 256)]
    [InlineData(512, 37)]
    [InlineData(3000, 256)]
    [InlineData(3000, 100)]
    public void Random_logits_under_every_setting_give_the_cpu_samplers_token(int vocab, int chunkLength)
    {
        Accelerator accelerator = accelerators.WithWarpSize(32);
        var random = new Random((vocab * 31) + chunkLength);
        int cases = 0;
        var nearBoundary = new List<string>();
        foreach (float temperature in Temperatures)
        {
            foreach (int topK in TopKs)
            {
                foreach (float topP in TopPs)
                {
                    foreach (float minP in MinPs)
                    {
                        foreach (float penalty in Penalties)
                        {
                            var options = new SamplingOptions
                            {
                                Temperature = temperature,
                                TopK = topK,
                                TopP = topP,
                                MinP = minP,
                                RepeatPenalty = penalty,
                                RepeatLastN = 64,
                                Seed = (ulong)random.NextInt64(1, long.MaxValue),
                            };
                            float[] logits = DeviceData.Floats(random, vocab, 8f);
                            // Drawn from a few ids, so the window holds many repeats; longer than RepeatLastN, so its cut matters.
                            int[] history = [.. Enumerable.Range(0, 90).Select(_ => random.Next(Math.Min(vocab, 24)))];

                            (int expected, int actual, float uniform) = SampleBoth(accelerator, logits, history, options, chunkLength);
                            cases++;
                            if (expected != actual)
                            {
                                string where = $"T={temperature} k={topK} p={topP} min-p={minP} penalty={penalty}: cpu {expected}, device {actual}";
                                Assert.True(NearABoundary(logits, history, options, uniform), $"{where}, and no cumulative boundary is near the draw");
                                nearBoundary.Add(where);
                            }
                        }
                    }
                }
            }
        }

        Assert.Equal(Temperatures.Length * TopKs.Length * TopPs.Length * MinPs.Length * Penalties.Length, cases);
        Assert.True(nearBoundary.Count <= cases / 100, $"{nearBoundary.Count} near-boundary mismatches: {string.Join("; ", nearBoundary)}");
    }

    [Fact]
    public void Equal_logits_tie_to_the_lowest_ids_as_on_the_cpu()
    {
        Accelerator accelerator = accelerators.WithWarpSize(4);
        float[] logits = [.. Enumerable.Repeat(2.5f, 300)];
        var seen = new HashSet<int>();
        for (ulong seed = 1; seed <= 60; seed++)
        {
            var options = new SamplingOptions { Temperature = 0.9f, TopK = 5, TopP = 1, MinP = 0, Seed = seed };

            (int expected, int actual, _) = SampleBoth(accelerator, logits, [], options, chunkLength: 64);

            Assert.Equal(expected, actual);
            Assert.InRange(actual, 0, 4);
            seen.Add(actual);
        }

        Assert.Equal(5, seen.Count);
    }

    [Theory]
    [InlineData(5, 300)]
    [InlineData(64, 40)]
    [InlineData(64, 300)]
    public void A_nan_logit_gives_the_cpu_samplers_token(int topK, int vocab)
    {
        Accelerator accelerator = accelerators.WithWarpSize(32);
        float[] logits = DeviceData.Floats(new Random(41), vocab, 8f);
        logits[vocab / 2] = float.NaN;
        foreach (float topP in TopPs)
        {
            var options = new SamplingOptions { Temperature = 0.8f, TopK = topK, TopP = topP, MinP = 0.05f, Seed = 77 };

            (int expected, int actual, _) = SampleBoth(accelerator, logits, [], options, chunkLength: 64);

            Assert.Equal(expected, actual);
        }
    }

    [Fact]
    public void Negative_infinity_logits_and_a_chunk_of_nothing_else_give_the_cpu_samplers_token()
    {
        Accelerator accelerator = accelerators.WithWarpSize(32);
        float[] logits = DeviceData.Floats(new Random(43), 200, 8f);
        Array.Fill(logits, float.NegativeInfinity, 64, 64);
        logits[3] = float.NegativeInfinity;
        for (ulong seed = 1; seed <= 20; seed++)
        {
            var options = new SamplingOptions { Temperature = 1.2f, TopK = 40, TopP = 0.95f, MinP = 0, Seed = seed };

            (int expected, int actual, _) = SampleBoth(accelerator, logits, [], options, chunkLength: 64);

            Assert.Equal(expected, actual);
            Assert.False(actual is 3 or (>= 64 and < 128), $"token {actual} has no probability");
        }
    }

    [Fact]
    public void A_vocabulary_smaller_than_top_k_keeps_the_cpus_top_p_floor()
    {
        // Seven equal logits and top-p 0.01: each share 1/7 is below the CPU's floor (1 − 0.01)/6, so it keeps only its
        // IndexOfMax, id 0, whatever the draw.
        Accelerator accelerator = accelerators.WithWarpSize(4);
        float[] logits = [.. Enumerable.Repeat(1f, 7)];
        for (ulong seed = 1; seed <= 20; seed++)
        {
            var options = new SamplingOptions { Temperature = 1f, TopK = 64, TopP = 0.01f, MinP = 0, Seed = seed };

            (int expected, int actual, _) = SampleBoth(accelerator, logits, [], options, chunkLength: 3);

            Assert.Equal(expected, actual);
            Assert.Equal(0, actual);
        }
    }

    /// <summary>The CPU sampler's token and the device's for the same seed; the device takes the twin sampler's draw.</summary>
    private static (int Expected, int Actual, float Uniform) SampleBoth(
        Accelerator accelerator, float[] logits, int[] history, SamplingOptions options, int chunkLength)
    {
        int expected = new Sampler(logits.Length, options).Sample((float[])logits.Clone(), history);
        var twin = new Sampler(logits.Length, options);
        int[] penalised = twin.PenalisedTokens(history).ToArray();
        float uniform = twin.NextUniform();
        return (expected, RunOnDevice(accelerator, logits, penalised, options, uniform, chunkLength), uniform);
    }

    private static int RunOnDevice(Accelerator accelerator, float[] logits, int[] penalised, SamplingOptions options, float uniform, int chunkLength)
    {
        int length = logits.Length;
        int chunks = (length + chunkLength - 1) / chunkLength;
        using var logitBuffer = accelerator.Upload(logits);
        using var tokens = accelerator.Upload(penalised.Length == 0 ? new[] { 0 } : penalised);
        using var scores = accelerator.Zeros<float>(chunks * options.TopK);
        using var ids = accelerator.Zeros<int>(chunks * options.TopK);
        using var maxima = accelerator.Zeros<float>(chunks);
        using var sums = accelerator.Zeros<float>(chunks);
        using var result = accelerator.Zeros<int>(1);
        var penalty = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, float>(SamplingKernels.RepeatPenalty);
        var partial = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int, int, int, float>(
            SamplingKernels.SamplePartial);
        var final = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, int, int, float, float, float>(
            SamplingKernels.SampleFinal);

        if (penalised.Length > 0)
        {
            penalty(penalised.Length, logitBuffer.View, tokens.View, options.RepeatPenalty);
        }

        partial(chunks, logitBuffer.View, scores.View, ids.View, maxima.View, sums.View, length, chunkLength, options.TopK, 1f / options.Temperature);
        final(1, scores.View, ids.View, maxima.View, sums.View, result.View, length, chunkLength, options.TopK, options.TopP, options.MinP, uniform);
        return accelerator.Download(result)[0];
    }

    /// <summary>
    /// Whether, in the CPU's own probabilities, the draw or a min-p / top-p cut lies within <see cref="BoundaryMargin"/>
    /// of a cumulative sum or candidate probability, where a few ulps of difference may change the token.
    /// </summary>
    private static bool NearABoundary(float[] logits, int[] history, SamplingOptions options, float uniform)
    {
        float[] penalised = (float[])logits.Clone();
        var twin = new Sampler(logits.Length, options);
        foreach (int token in twin.PenalisedTokens(history))
        {
            penalised[token] = penalised[token] > 0 ? penalised[token] / options.RepeatPenalty : penalised[token] * options.RepeatPenalty;
        }

        float[] p = [.. penalised.Select(l => l * (1f / options.Temperature))];
        VectorMath.Softmax(p);
        int[] order = [.. Enumerable.Range(0, p.Length).OrderByDescending(i => p[i]).ThenBy(i => i).Take(options.TopK)];
        float top = p[order[0]];
        float cumulative = 0;
        var prefixSums = new List<float>();
        foreach (int id in order)
        {
            if (Math.Abs(p[id] - (options.MinP * top)) <= BoundaryMargin || Math.Abs(cumulative + p[id] - options.TopP) <= BoundaryMargin)
            {
                return true;
            }

            cumulative += p[id];
            prefixSums.Add(cumulative);
        }

        // The draw scales with whichever prefix the cut keeps, so compare it against every prefix sum under every cut.
        foreach (float kept in prefixSums)
        {
            float draw = uniform * kept;
            if (prefixSums.Any(running => Math.Abs(draw - running) <= BoundaryMargin))
            {
                return true;
            }
        }

        return false;
    }
}
