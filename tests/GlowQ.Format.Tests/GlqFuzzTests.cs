using System.Globalization;
using GlowQ.Format.Glq;
using GlowQ.GlqFuzz;
using GlowQ.TestSupport;
using Xunit.Abstractions;

namespace GlowQ.Format.Tests;

/// <summary>
/// Seeded mutation fuzzing of the .glq reader, time-boxed for CI. Every input is opened, every tensor read and
/// verified, every metadata value read through every getter; only ModelFormatException (one line, naming the file)
/// may come out. A failure prints the seed and iteration; replay it with
/// <c>dotnet run -c Release --project benchmarks/GlowQ.Benchmarks.GlqFuzz -- --seed S --replay I --mode M</c>.
/// Longer runs: that project with <c>--inputs N</c>, or GLQ_FUZZ_SECONDS / GLQ_FUZZ_SEED here.
/// </summary>
public sealed class GlqFuzzTests(ITestOutputHelper output)
{
    private static readonly ulong Seed = ulong.TryParse(Environment.GetEnvironmentVariable("GLQ_FUZZ_SEED"), CultureInfo.InvariantCulture, out ulong s) ? s : 20261124;

    private static readonly double Scale = double.TryParse(Environment.GetEnvironmentVariable("GLQ_FUZZ_SECONDS"), CultureInfo.InvariantCulture, out double seconds) ? seconds / 10 : 1;

    private static byte[][] Seeds(TempDirectory dir) => [GlqSamples.WriteSample(dir.File("sample.glq")), GlqSamples.WriteMinimal(dir.File("minimal.glq"))];

    private void Fuzz(GlqFuzzMode mode, double seconds, long maxInputs)
    {
        using var dir = new TempDirectory();
        var fuzzer = new GlqFuzzer(Seeds(dir), dir.File("input.glq"));
        TimeSpan budget = TimeSpan.FromSeconds(seconds * Scale);

        // The loop runs on its own thread so that a hang in the reader fails the test instead of stalling the run.
        var run = Task.Factory.StartNew(() => fuzzer.Run(Seed, (long)(maxInputs * Scale), budget, mode), TaskCreationOptions.LongRunning);
        Assert.True(run.Wait(budget + TimeSpan.FromSeconds(60)), $"fuzz input hangs: seed {Seed} iteration {fuzzer.CurrentIteration} mode {mode}");
        GlqFuzzResult result = run.Result;

        output.WriteLine($"{mode}, seed {Seed}: {GlqFuzzer.Summary(result)}");
        foreach (GlqFuzzFailure failure in result.Failures)
        {
            output.WriteLine(failure.ToString());
        }

        Assert.True(result.Failures.Count == 0, string.Join(Environment.NewLine, result.Failures));
        Assert.True(result.Inputs >= 200, $"only {result.Inputs} inputs ran in {result.Elapsed}");
    }

    [Fact]
    public void Fuzz_RawMutations_OnlyModelFormatExceptionEscapes() => Fuzz(GlqFuzzMode.Raw, 3, 30_000);

    [Fact]
    public void Fuzz_MutationsWithHeaderChecksumRecomputed_OnlyModelFormatExceptionEscapes() => Fuzz(GlqFuzzMode.Resigned, 7, 60_000);

    [Fact]
    public void Fuzz_SameSeedAndIteration_GiveTheSameInput()
    {
        using var dir = new TempDirectory();
        byte[][] seeds = Seeds(dir);
        var a = new GlqFuzzer(seeds, dir.File("a.glq"));
        var b = new GlqFuzzer(seeds, dir.File("b.glq"));
        for (long i = 0; i < 50; i++)
        {
            Assert.Equal(a.Input(Seed, i, GlqFuzzMode.Mixed).Input, b.Input(Seed, i, GlqFuzzMode.Mixed).Input);
        }

        Assert.NotEqual(a.Input(Seed, 1, GlqFuzzMode.Mixed).Input, a.Input(Seed + 1, 1, GlqFuzzMode.Mixed).Input);
    }

    /// <summary>Guards the fuzzer itself: re-signed mutations must get past the checksum into every later check.</summary>
    [Fact]
    public void Fuzz_ResignedMutations_ReachMetadataDirectoryAndTensorChecks()
    {
        using var dir = new TempDirectory();
        var fuzzer = new GlqFuzzer(Seeds(dir), dir.File("input.glq"));
        var reached = new Dictionary<string, int>();
        void Count(string what) => reached[what] = reached.GetValueOrDefault(what) + 1;
        for (long i = 0; i < 3000; i++)
        {
            byte[] input = fuzzer.Input(Seed, i, GlqFuzzMode.Resigned).Input;
            string path = dir.File("probe.glq");
            File.WriteAllBytes(path, input);
            try
            {
                using var file = GlqFile.Open(path);
                Count("opened");
                foreach (GlqTensorInfo t in file.Tensors)
                {
                    try
                    {
                        file.VerifyTensor(t);
                    }
                    catch (ModelFormatException)
                    {
                        Count("tensor checksum");
                    }
                }
            }
            catch (ModelFormatException e)
            {
                string what = e.Message["probe.glq: ".Length..];
                Count(what.StartsWith("metadata:", StringComparison.Ordinal) ? "metadata"
                    : what.StartsWith("directory:", StringComparison.Ordinal) ? "directory"
                    : what.StartsWith("header.checksum", StringComparison.Ordinal) ? "header.checksum"
                    : "header layout");
            }
        }

        output.WriteLine(string.Join(", ", reached.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}: {p.Value}")));
        foreach (string what in new[] { "opened", "tensor checksum", "metadata", "directory", "header layout" })
        {
            Assert.True(reached.GetValueOrDefault(what) >= 30, $"only {reached.GetValueOrDefault(what)} of 3000 re-signed inputs reached '{what}'");
        }
    }
}
