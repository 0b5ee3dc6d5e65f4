using System.Numerics.Tensors;
using GlowQ.Engine;

namespace GlowQ.Runtime.Benchmarks;

/// <summary>What one benchmark configuration runs: prompt lengths, tokens generated after each prompt, runs.</summary>
/// <param name="PromptLengths">Prompt lengths in tokens, each ≥ 1; prompt + generated tokens must fit the context.</param>
/// <param name="GeneratedTokens">Tokens generated after each prompt, ≥ 2: the first comes from the prompt's own logits (TTFB), the rest time decoding.</param>
/// <param name="Repeats">Rounds, ≥ 1: measured runs per subject and prompt length; the statistics are over these.</param>
/// <param name="WarmupRuns">Unmeasured runs per subject and prompt length in the first round (JIT, caches, clocks), ≥ 0.</param>
public sealed record LatencySettings(IReadOnlyList<int> PromptLengths, int GeneratedTokens, int Repeats, int WarmupRuns = 1)
{
    /// <summary>The positions a model needs to run these settings.</summary>
    public int ContextNeeded => PromptLengths.Max() + GeneratedTokens;

    /// <summary>One-line error for unusable settings, or null.</summary>
    /// <param name="names">What the settings are called in the message: a command passes its option names.</param>
    public string? Problem(LatencySettingNames? names = null)
    {
        names ??= LatencySettingNames.Descriptions;
        return PromptLengths.Count == 0 ? $"no {names.PromptLengths}"
            : PromptLengths.Any(l => l < 1) ? $"{names.PromptLengths} must be ≥ 1, got {PromptLengths.First(l => l < 1)}"
            : GeneratedTokens < 2 ? $"{names.GeneratedTokens} must be ≥ 2 (the first is timed as TTFB, the rest as decoding), got {GeneratedTokens}"
            : Repeats < 1 ? $"{names.Repeats} must be ≥ 1, got {Repeats}"
            : WarmupRuns < 0 ? $"{names.WarmupRuns} must be ≥ 0, got {WarmupRuns}"
            : null;
    }
}

/// <summary>What <see cref="LatencySettings.Problem"/> calls each setting.</summary>
public sealed record LatencySettingNames(string PromptLengths, string GeneratedTokens, string Repeats, string WarmupRuns)
{
    /// <summary>Plain descriptions, for callers that are not a command line.</summary>
    public static LatencySettingNames Descriptions { get; } = new("prompt lengths", "generated tokens", "repeats", "warm-up runs");
}

/// <summary>Median, minimum and maximum of a measured quantity over the repeats.</summary>
public sealed record Spread(double Median, double Min, double Max)
{
    /// <summary>The spread of <paramref name="values"/> (at least one); an even count takes the mean of the middle two.</summary>
    public static Spread Of(IReadOnlyCollection<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0)
        {
            throw new ArgumentException("no values", nameof(values));
        }

        double[] sorted = [.. values.Order()];
        int middle = sorted.Length / 2;
        double median = sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
        return new Spread(median, sorted[0], sorted[^1]);
    }
}

/// <summary>One configuration of a benchmark: how to open its model (the benchmark disposes it) and its prompt lengths (null: the settings').</summary>
public sealed record BenchmarkSubject(Func<ILanguageModel> Open, IReadOnlyList<int>? PromptLengths = null);

/// <summary>The run about to start: its round (0-based), subject index, prompt length, and whether it is a warm-up.</summary>
public readonly record struct RunProgress(int Round, int Subject, int PromptLength, bool Warmup);

/// <summary>One run's two timed parts: prompt → first token, and the tokens after it.</summary>
internal readonly record struct RunTiming(TimeSpan FirstToken, TimeSpan Decoding);

/// <summary>One prompt length's measurements.</summary>
/// <param name="PromptTokens">The prompt's length.</param>
/// <param name="TtfbMs">Prompt submitted → first generated token available (prefill and the first token's choice), ms.</param>
/// <param name="PrefillTokensPerSecond">Prompt tokens over the TTFB.</param>
/// <param name="DecodeTokensPerSecond">Tokens after the first over the time they took (each one a single-token step).</param>
public sealed record PromptLengthResult(int PromptTokens, Spread TtfbMs, Spread PrefillTokensPerSecond, Spread DecodeTokensPerSecond);

/// <summary>
/// Latency of a model the way a user meets it: a prompt of a given length, the time to the first generated token,
/// then greedy decoding one token at a time. Greedy choice runs where the logits are (<see cref="IDeviceArgmax"/> on a
/// GPU), so the numbers include what generation really moves. The prompt is fixed pseudo-random token ids, so every
/// configuration of one run sees the same tokens; the model's cache is simply overwritten from position 0 each run.
/// </summary>
public sealed class LatencyBenchmark(TimeProvider clock)
{
    public LatencyBenchmark()
        : this(TimeProvider.System)
    {
    }

    /// <summary>
    /// Measures every subject at each of its prompt lengths, in rounds: each round opens every subject in turn, runs each
    /// of its prompt lengths once and disposes it, so drift in the machine's speed (clocks, neighbours on a shared host)
    /// spreads over all subjects instead of skewing their ratios. The first round adds the warm-up runs. Returns, per
    /// subject, one result per prompt length over the rounds (<see cref="LatencySettings.Repeats"/> of them).
    /// </summary>
    /// <param name="progress">Called before each run.</param>
    /// <param name="measured">Called with each subject's index and model after its runs of a round, before it is disposed.</param>
    public IReadOnlyList<PromptLengthResult>[] MeasureInRounds(
        IReadOnlyList<BenchmarkSubject> subjects,
        LatencySettings settings,
        Action<RunProgress>? progress = null,
        Action<int, ILanguageModel>? measured = null,
        CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(subjects);
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.Problem() is string problem)
        {
            throw new ArgumentException(problem, nameof(settings));
        }

        IReadOnlyList<int>[] lengths = [.. subjects.Select(s => s.PromptLengths ?? settings.PromptLengths)];
        var timings = lengths.Select(l => l.ToDictionary(length => length, _ => new List<RunTiming>())).ToArray();
        for (int round = 0; round < settings.Repeats; round++)
        {
            for (int subject = 0; subject < subjects.Count; subject++)
            {
                using ILanguageModel model = subjects[subject].Open();
                foreach (int length in lengths[subject])
                {
                    for (int run = round == 0 ? -settings.WarmupRuns : 0; run <= 0; run++)
                    {
                        progress?.Invoke(new RunProgress(round, subject, length, Warmup: run < 0));
                        RunTiming timing = RunOnce(model, length, settings.GeneratedTokens, cancellation);
                        if (run == 0)
                        {
                            timings[subject][length].Add(timing);
                        }
                    }
                }

                measured?.Invoke(subject, model);
            }
        }

        return [.. timings.Select((bySubject, subject) =>
            (IReadOnlyList<PromptLengthResult>)[.. lengths[subject].Select(l => Summarize(l, settings.GeneratedTokens, bySubject[l]))])];
    }

    /// <summary>
    /// One run: a prompt of <paramref name="promptLength"/> tokens at position 0, its first token, then
    /// <paramref name="generate"/> − 1 greedy tokens one at a time.
    /// </summary>
    private RunTiming RunOnce(ILanguageModel model, int promptLength, int generate, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfLessThan(promptLength, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(generate, 2);
        if (promptLength + generate > model.ContextLength)
        {
            throw new ArgumentException(
                $"a prompt of {promptLength} plus {generate} generated tokens needs {promptLength + generate} positions; the model's context holds {model.ContextLength}");
        }

        var logits = new float[model.Config.VocabSize];
        var history = new int[promptLength + generate];
        FillPrompt(history.AsSpan(0, promptLength), model.Config.VocabSize);
        (TimeSpan first, TimeSpan decoding) = Run(model, history, promptLength, generate, logits, cancellation);
        return new RunTiming(first, decoding);
    }

    /// <summary>The median, minimum and maximum of runs of one prompt length.</summary>
    private static PromptLengthResult Summarize(int promptLength, int generate, IReadOnlyCollection<RunTiming> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        return new PromptLengthResult(
            promptLength,
            Spread.Of([.. runs.Select(r => r.FirstToken.TotalMilliseconds)]),
            Spread.Of([.. runs.Select(r => promptLength / r.FirstToken.TotalSeconds)]),
            Spread.Of([.. runs.Select(r => (generate - 1) / r.Decoding.TotalSeconds)]));
    }

    /// <summary>One run: the prompt, then greedy tokens; returns (time to the first token, time of the rest).</summary>
    private (TimeSpan First, TimeSpan Decoding) Run(ILanguageModel model, int[] history, int promptLength, int generate, float[] logits, CancellationToken cancellation)
    {
        var argmax = model as IDeviceArgmax;
        long start = clock.GetTimestamp();
        int next = Next(model, argmax, history.AsSpan(0, promptLength), 0, logits);
        long firstToken = clock.GetTimestamp();
        int length = promptLength;
        for (int generated = 1; generated < generate; generated++)
        {
            cancellation.ThrowIfCancellationRequested();
            history[length] = next;
            next = Next(model, argmax, history.AsSpan(length, 1), length, logits);
            length++;
        }

        long end = clock.GetTimestamp();
        return (clock.GetElapsedTime(start, firstToken), clock.GetElapsedTime(firstToken, end));
    }

    private static int Next(ILanguageModel model, IDeviceArgmax? argmax, ReadOnlySpan<int> tokens, int position, float[] logits)
    {
        if (argmax is not null)
        {
            return argmax.ForwardArgmax(tokens, position);
        }

        model.Forward(tokens, position, logits);
        return TensorPrimitives.IndexOfMax(logits);
    }

    /// <summary>Deterministic pseudo-random ids (a fixed xorshift stream), avoiding the lowest ids where BOS/EOS usually sit.</summary>
    internal static void FillPrompt(Span<int> prompt, int vocab)
    {
        ulong state = 0x9E3779B97F4A7C15UL;
        int low = Math.Min(3, vocab - 1);
        for (int i = 0; i < prompt.Length; i++)
        {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            prompt[i] = low + (int)(state % (ulong)(vocab - low));
        }
    }
}
