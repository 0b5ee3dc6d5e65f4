using System.Text.Json;
using GlowQ.Runtime.Benchmarks;
using GlowQ.TestSupport;

namespace GlowQ.Cli.Tests;

public sealed class BenchCommandTests(Stories260KGlq glowq) : IClassFixture<Stories260KGlq>
{
    private static readonly string[] Tiny = ["--prompt-lengths", "8,24", "--gen", "4", "--repeats", "2", "--warmup", "0", "--backend", "cpu", "--threads", "1", "--bandwidth-gbs", "10"];

    [Fact]
    public void OneRun_MeasuresEveryFileAndRestoration_WritesMarkdownAndJson_AndComparesGlowQWithLayerwise()
    {
        using var dir = new TempDirectory();
        string layerwise = dir.File("layerwise.glq");
        CliRun convert = CliRun.Of("convert", "-m", SharedData.Stories260KBin, "-o", layerwise, "--method", "layerwise", "--group-size", "32", "--rank", "8",
            "--calib-generate", "8", "--calib-seq-len", "32", "-q");
        Assert.True(convert.ExitCode == 0, convert.Stderr);
        string output = dir.File("report");

        CliRun run = CliRun.Of(["bench", "-m", glowq.Path, "-m", layerwise, "--restore", "none,all,0.5", "--out", output, .. Tiny]);

        Assert.True(run.ExitCode == 0, run.Stderr);
        BenchmarkReport report = BenchmarkReport.FromJson(File.ReadAllText(Path.Combine(output, "report.json")));
        Assert.Equal(File.ReadAllText(Path.Combine(output, "report.md")), run.Stdout);
        Assert.Equal(6, report.Configurations.Count);
        Assert.Equal(["glowq", "glowq", "glowq", "layerwise", "layerwise", "layerwise"], report.Configurations.Select(c => c.Method));
        // Half of 35 layerwise units rounds to 18.
        Assert.Equal([0, 20, 10, 0, 35, 18], report.Configurations.Select(c => c.UnitsRestored));
        Assert.All(report.Configurations, c =>
        {
            Assert.Equal([8, 24], c.Prompts.Select(p => p.PromptTokens));
            Assert.All(c.Prompts, p => Assert.True(p.TtfbMs.Min > 0 && p.TtfbMs.Min <= p.TtfbMs.Median && p.TtfbMs.Median <= p.TtfbMs.Max));
            Assert.All(c.Prompts, p => Assert.True(p.DecodeTokensPerSecond.Median > 0));
            Assert.Equal(c.AchievedBandwidthGbs / 10, c.RooflineFraction!.Value, 9);
            Assert.Equal("cpu", c.Backend);
        });
        // Restoring more units reads more factor bytes per token.
        Assert.True(report.Configurations[1].WeightBytesPerToken > report.Configurations[2].WeightBytesPerToken);
        Assert.True(report.Configurations[2].WeightBytesPerToken > report.Configurations[0].WeightBytesPerToken);
        // glowq all and glowq 0.5 against layerwise all: decode and TTFB each.
        Assert.Equal(4, report.Comparisons.Count);
        Assert.Equal("--bandwidth-gbs", report.MemoryBandwidthSource);
        Assert.Contains("| compared | against |", run.Stdout, StringComparison.Ordinal);
        byte[] pngSignature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];
        foreach (string plot in new[] { "decode.png", "ttfb.png", "roofline.png" })
        {
            byte[] bytes = File.ReadAllBytes(Path.Combine(output, plot));
            Assert.True(bytes.Length > 1000 && bytes.AsSpan(0, 8).SequenceEqual(pngSignature), $"{plot} is not a PNG image");
        }

        // Rounds interleave the configurations: round 2 starts only after round 1 has run every file, layerwise included.
        int lastOfRoundOne = run.Stderr.LastIndexOf("round 1/2: layerwise.glq", StringComparison.Ordinal);
        int firstOfRoundTwo = run.Stderr.IndexOf("round 2/2: s.glq glowq restore none", StringComparison.Ordinal);
        Assert.True(lastOfRoundOne > 0 && firstOfRoundTwo > lastOfRoundOne, run.Stderr);
    }

    [Fact]
    public void WithoutAModel_TheBundledOneIsMeasured_AndPromptsPastItsContextAreSkippedWithANotice()
    {
        CliRun run = CliRun.Of(["bench", "--restore", "all", "--prompt-lengths", "8,600", "--gen", "4", "--repeats", "1", "--warmup", "0",
            "--backend", "cpu", "--bandwidth-gbs", "10"]);

        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Contains("skipping prompt lengths 600", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("| stories260K.glq | glowq | all (20/20) | cpu | 8 |", run.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("| 600 |", run.Stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--gen", "1", "--gen must be ≥ 2")]
    [InlineData("--prompt-lengths", "16,x", "--prompt-lengths: 'x' is not a valid entry")]
    [InlineData("--restore", "all,1.5", "--restore: '1.5' is not a valid entry")]
    [InlineData("--repeats", "0", "--repeats must be ≥ 1")]
    [InlineData("--warmup", "-1", "--warmup must be ≥ 0")]
    [InlineData("--bandwidth-gbs", "-3", "--bandwidth-gbs must be > 0")]
    [InlineData("--prompt-lengths", "5000", "no prompt length fits its context of 512 tokens")]
    public void BadSettings_AreOneLineErrors(string option, string value, string expected)
    {
        var args = new List<string> { "bench", option, value, "--backend", "cpu", "-q" };
        foreach ((string name, string fallback) in new[] { ("--repeats", "1"), ("--gen", "4") })
        {
            if (name != option)
            {
                args.AddRange([name, fallback]);
            }
        }

        CliRun run = CliRun.Of([.. args]);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains(expected, run.SingleErrorLine(), StringComparison.Ordinal);
    }

    [Fact]
    public void AModelThatDoesNotFitTheProfilesMemory_IsRefusedBeforeLoading()
    {
        using var dir = new TempDirectory();
        string profile = dir.Write("small.json", """{ "name": "small", "backend": "cpu", "memory_gib": 0.0001, "reserved_gib": 0 }""");
        CliRun run = CliRun.Of(["bench", "--profile", profile, "--out", dir.File("out"), .. Tiny]);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("small", run.SingleErrorLine(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(dir.File("out")));
    }

    [Fact]
    public void TheJsonReport_NamesWhatRanWhere()
    {
        using var dir = new TempDirectory();
        CliRun run = CliRun.Of(["bench", "--restore", "none", "--out", dir.Path, .. Tiny]);
        Assert.True(run.ExitCode == 0, run.Stderr);
        using JsonDocument json = JsonDocument.Parse(File.ReadAllText(dir.File("report.json")));
        JsonElement root = json.RootElement;
        foreach (string key in new[] { "date", "command", "version", "machine", "cores", "os", "device", "profile", "memory_bandwidth_gbs", "configurations" })
        {
            Assert.True(root.TryGetProperty(key, out _), $"report.json lacks '{key}'");
        }

        Assert.StartsWith("glowq bench --restore none", root.GetProperty("command").GetString(), StringComparison.Ordinal);
        Assert.Equal(Environment.ProcessorCount, root.GetProperty("cores").GetInt32());
    }
}
