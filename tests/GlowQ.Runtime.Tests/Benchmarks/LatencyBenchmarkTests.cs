using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Benchmarks;
using GlowQ.TestSupport;

namespace GlowQ.Runtime.Tests.Benchmarks;

public sealed class LatencyBenchmarkTests
{
    /// <summary>A clock that moves only when the model says its work took time.</summary>
    private sealed class ManualClock : TimeProvider
    {
        public long Ticks { get; set; }

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Ticks;

        public void Advance(TimeSpan by) => Ticks += by.Ticks;
    }

    /// <summary>A model whose prompt costs <c>prefill</c> per token and whose decode step costs <c>decode</c>; its argmax is always token 7.</summary>
    private sealed class TimedModel(ManualClock clock, TimeSpan prefillPerToken, TimeSpan decodeStep) : ILanguageModel
    {
        public ModelConfig Config { get; } = new()
        {
            Architecture = "LlamaForCausalLM", Dim = 8, HiddenDim = 16, Layers = 1, Heads = 2, KvHeads = 1, HeadDim = 4, VocabSize = 32,
            MaxSequenceLength = 256, NormEps = 1e-5f, RopeTheta = 10000, RopeLayout = RopeLayout.InterleavedPairs, TiedEmbeddings = true,
        };

        public int ContextLength => 256;

        public int Threads => 1;

        public long WeightBytes => 0;

        public List<(int Tokens, int Position)> Calls { get; } = [];

        public void Forward(ReadOnlySpan<int> tokens, int startPosition, Span<float> logits, bool allPositions = false)
        {
            Calls.Add((tokens.Length, startPosition));
            clock.Advance(tokens.Length == 1 && startPosition > 0 ? decodeStep : prefillPerToken * tokens.Length);
            logits.Clear();
            logits[7] = 1;
        }

        public void Dispose()
        {
        }
    }

    [Fact]
    public void Ttfb_IsThePromptsTime_AndRatesFollowFromTheTimedSteps_WarmupsUncounted()
    {
        var clock = new ManualClock();
        var model = new TimedModel(clock, TimeSpan.FromMilliseconds(2), TimeSpan.FromMilliseconds(5));
        var settings = new LatencySettings([16, 64], GeneratedTokens: 11, Repeats: 3, WarmupRuns: 2);

        IReadOnlyList<PromptLengthResult> results = new LatencyBenchmark(clock).MeasureInRounds([new BenchmarkSubject(() => model)], settings)[0];

        Assert.Equal([16, 64], results.Select(r => r.PromptTokens));
        Assert.Equal(new Spread(32, 32, 32), results[0].TtfbMs);
        Assert.Equal(new Spread(128, 128, 128), results[1].TtfbMs);
        Assert.Equal(500, results[1].PrefillTokensPerSecond.Median, 9);
        // 10 tokens after the first, 5 ms each.
        Assert.Equal(200, results[0].DecodeTokensPerSecond.Median, 9);
        // (2 warm-up + 3 measured) runs × (1 prompt + 10 decode steps) per length; decode steps continue the prompt.
        Assert.Equal(2 * 5 * 11, model.Calls.Count);
        Assert.Equal((1, 16), model.Calls[1]);
        Assert.Equal((1, 25), model.Calls[10]);
    }

    [Fact]
    public void Rounds_RunEverySubjectOncePerRound_WarmupsOnlyInTheFirst_AndSubjectsKeepTheirOwnLengthsAndTimes()
    {
        var clock = new ManualClock();
        var fast = new TimedModel(clock, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(2));
        var slow = new TimedModel(clock, TimeSpan.FromMilliseconds(3), TimeSpan.FromMilliseconds(6));
        var order = new List<(int Round, int Subject, int Length, bool Warmup)>();
        var opened = new List<int>();

        IReadOnlyList<PromptLengthResult>[] results = new LatencyBenchmark(clock).MeasureInRounds(
            [new BenchmarkSubject(() => { opened.Add(0); return fast; }), new BenchmarkSubject(() => { opened.Add(1); return slow; }, [8])],
            new LatencySettings([4, 8], GeneratedTokens: 3, Repeats: 3, WarmupRuns: 1),
            run => order.Add((run.Round, run.Subject, run.PromptLength, run.Warmup)));

        Assert.Equal([0, 1, 0, 1, 0, 1], opened);
        Assert.Equal(
            [(0, 0, 4, true), (0, 0, 4, false), (0, 0, 8, true), (0, 0, 8, false), (0, 1, 8, true), (0, 1, 8, false),
             (1, 0, 4, false), (1, 0, 8, false), (1, 1, 8, false), (2, 0, 4, false), (2, 0, 8, false), (2, 1, 8, false)],
            order);
        Assert.Equal([4, 8], results[0].Select(r => r.PromptTokens));
        Assert.Equal(new Spread(8, 8, 8), results[0][1].TtfbMs);
        Assert.Equal([8], results[1].Select(r => r.PromptTokens));
        Assert.Equal(new Spread(24, 24, 24), results[1][0].TtfbMs);
        Assert.Equal(1000.0 / 6, results[1][0].DecodeTokensPerSecond.Median, 9);
    }

    [Theory]
    [InlineData(new double[] { 3, 1, 2 }, 2, 1, 3)]
    [InlineData(new double[] { 4, 1, 3, 2 }, 2.5, 1, 4)]
    [InlineData(new double[] { 7 }, 7, 7, 7)]
    public void Spread_IsTheMedianMinimumAndMaximum(double[] values, double median, double min, double max) =>
        Assert.Equal(new Spread(median, min, max), Spread.Of(values));

    [Theory]
    [InlineData(new[] { 16 }, 1, 1, 0, "generated tokens must be ≥ 2")]
    [InlineData(new[] { 0 }, 4, 1, 0, "prompt lengths must be ≥ 1, got 0")]
    [InlineData(new[] { 16 }, 4, 0, 0, "repeats must be ≥ 1, got 0")]
    [InlineData(new int[0], 4, 1, 0, "no prompt lengths")]
    public void UnusableSettings_AreNamed(int[] lengths, int generated, int repeats, int warmup, string expected) =>
        Assert.StartsWith(expected, new LatencySettings(lengths, generated, repeats, warmup).Problem());

    [Fact]
    public void APromptThatDoesNotFitTheContextWithTheGeneratedTokens_IsRefusedWithTheNumbers()
    {
        var clock = new ManualClock();
        var model = new TimedModel(clock, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(1));
        var e = Assert.Throws<ArgumentException>(() => new LatencyBenchmark(clock).MeasureInRounds([new BenchmarkSubject(() => model)], new LatencySettings([250], 10, 1)));
        Assert.Contains("needs 260 positions; the model's context holds 256", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DecodeTraffic_CountsProjectionsHeadAndNorms_PlusOnlyTheRestoredFactors()
    {
        using var dir = new TempDirectory();
        string path = TinyGlqModel.WriteFile(dir.File("glowq.glq"), new TinyGlqOptions { Method = "glowq", TiedEmbeddings = false });
        using GlqFile file = GlqFile.Open(path);
        GlqModel glq = GlqModel.Read(file);
        byte[] none = new byte[glq.Units.Count];
        byte[] all = [.. Enumerable.Repeat((byte)1, glq.Units.Count)];

        long expectedNone = file.Tensors
            .Where(t => t.Name.EndsWith(".qweight", StringComparison.Ordinal) || t.Name.EndsWith(".scales", StringComparison.Ordinal)
                || t.Name.EndsWith(".zeros", StringComparison.Ordinal) || t.Name.EndsWith(".bias", StringComparison.Ordinal)
                || t.Name.EndsWith("norm.weight", StringComparison.Ordinal) || t.Name == LlamaTensorNames.OutputHead)
            .Sum(t => (long)t.Length);

        Assert.Equal(expectedNone, DecodeTraffic.WeightBytes(file, glq, none));
        Assert.Equal(expectedNone + glq.CorrectionBytes(file, all), DecodeTraffic.WeightBytes(file, glq, all));
        // Keys and values, every layer, positions 0..9.
        Assert.Equal(2L * glq.Config.Layers * glq.Config.KvDim * 2 * 10, DecodeTraffic.KvBytes(glq.Config, 2, 9));
    }

    [Fact]
    public void Comparisons_AreGlowQAndGlowQSAgainstFullyRestoredLayerwise_AtTheLongestPrompt()
    {
        static BenchmarkConfiguration Config(string method, string restore, int restored, double decode, double ttfb) => new(
            "m.glq", method, restore, restored, 10, "cpu", 1, 0, 0, 0, null, 0, null,
            [
                new PromptLengthResult(16, new Spread(1, 1, 1), new Spread(1, 1, 1), new Spread(1, 1, 1)),
                new PromptLengthResult(128, new Spread(ttfb, ttfb, ttfb), new Spread(1, 1, 1), new Spread(decode, decode, decode)),
            ]);

        IReadOnlyList<BenchmarkComparison> comparisons = BenchmarkReport.Compare(
        [
            Config("layerwise", "all", 10, decode: 100, ttfb: 50),
            Config("glowq", "all", 10, decode: 110, ttfb: 47.5),
            Config("glowq", "0.5", 5, decode: 125, ttfb: 40),
            Config("glowq", "none", 0, decode: 150, ttfb: 30),
            Config("rtn", "none", 0, decode: 160, ttfb: 29),
        ]);

        Assert.Equal(4, comparisons.Count);
        Assert.All(comparisons, c => Assert.Equal(("layerwise restore all", 128), (c.Baseline, c.PromptTokens)));
        Assert.Equal(10, comparisons.Single(c => c.Subject == "glowq restore all" && c.Quantity == "decode tokens/s").DeltaPercent, 9);
        Assert.Equal(-5, comparisons.Single(c => c.Subject == "glowq restore all" && c.Quantity == "TTFB").DeltaPercent, 9);
        Assert.Equal(25, comparisons.Single(c => c.Subject == "glowq restore 0.5" && c.Quantity == "decode tokens/s").DeltaPercent, 9);
        Assert.Empty(BenchmarkReport.Compare([Config("glowq", "all", 10, 1, 1)]));
    }

    [Fact]
    public void ThePrompt_IsTheXorshiftStreamThePyTorchScriptRecreates()
    {
        // benchmarks/pytorch-side-by-side.py --print-prompt 12 --vocab 512 recomputes the stream independently (Python
        // integers masked to 64 bits); its output is pinned here so the two runtimes time the same prompt.
        var prompt = new int[12];
        LatencyBenchmark.FillPrompt(prompt, 512);
        Assert.Equal(PythonPrompt, prompt);
        Assert.All(prompt, t => Assert.InRange(t, 3, 511));
    }

    private static readonly int[] PythonPrompt = [340, 150, 359, 118, 173, 115, 471, 461, 140, 320, 117, 276];

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    [InlineData(1000)]
    [InlineData(4099)]
    public void TheBandwidthProbesSum_IsExact_OnWholeVectorsAndTails(int length)
    {
        float[] values = [.. Enumerable.Range(0, length).Select(i => (float)(i % 17))];
        Assert.Equal(values.Sum(v => (double)v), HostMemoryBandwidth.StreamingSum(values));
    }

    [Fact]
    public void TheCpuRuntimesWeightBytes_CountOnlyTheRestoredUnitsFactors_AsDecodeTrafficDoes()
    {
        using var dir = new TempDirectory();
        string path = TinyGlqModel.WriteFile(dir.File("glowq.glq"), new TinyGlqOptions { Method = "glowq" });
        long correction;
        byte[] all, none;
        using (GlqFile file = GlqFile.Open(path))
        {
            GlqModel glq = GlqModel.Read(file);
            all = [.. Enumerable.Repeat((byte)1, glq.Units.Count)];
            none = new byte[glq.Units.Count];
            correction = glq.CorrectionBytes(file, all);
        }

        using var restored = GlowQ.Runtime.Model.GlqRuntimeModel.Open(path, all, new InferenceOptions { ContextLength = 16, Threads = 1 });
        using var plain = GlowQ.Runtime.Model.GlqRuntimeModel.Open(path, none, new InferenceOptions { ContextLength = 16, Threads = 1 });
        Assert.True(correction > 0);
        Assert.Equal(correction, restored.WeightBytes - plain.WeightBytes);
    }
}
