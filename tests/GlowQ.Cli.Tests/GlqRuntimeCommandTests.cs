using System.Text.Json;
using GlowQ.TestSupport;

namespace GlowQ.Cli.Tests;

/// <summary>stories260K converted once by the CLI, as the README's quick start does (glowq, group 32, rank 8).</summary>
public sealed class Stories260KGlq : IDisposable
{
    public Stories260KGlq()
    {
        Path = Directory.File("s.glq");
        CliRun convert = CliRun.Of("convert", "-m", SharedData.Stories260KBin, "-o", Path, "--group-size", "32", "--rank", "8",
            "--calib-generate", "16", "--calib-seq-len", "64", "-q");
        Assert.Equal(0, convert.ExitCode);
    }

    public TempDirectory Directory { get; } = new();

    public string Path { get; }

    public void Dispose() => Directory.Dispose();
}

public sealed class GlqRuntimeCommandTests(Stories260KGlq model) : IClassFixture<Stories260KGlq>
{
    private CliRun Generate(params string[] extra) =>
        CliRun.Of(["generate", "-m", model.Path, "-p", "Once upon a time", "--temperature", "0", "-n", "40", .. extra]);

    private double Ppl(params string[] extra)
    {
        CliRun run = CliRun.Of(["ppl", "-m", model.Path, "--text", SharedData.TinyStoriesSample, "--per-line", "--json", "-q", .. extra]);
        Assert.True(run.ExitCode == 0, run.Stderr);
        return JsonDocument.Parse(run.Stdout).RootElement.GetProperty("ppl").GetDouble();
    }

    [Fact]
    public void Generate_OnAGlqFile_RunsTheInt4RuntimeByDefault()
    {
        CliRun run = Generate();
        Assert.Equal(0, run.ExitCode);
        Assert.Contains(".glq glowq, int4 runtime, ", run.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("simulated", run.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("none")]
    [InlineData("all")]
    [InlineData("0.5")]
    public void GreedyText_OfTheRuntime_IsTheSimulationsText(string restore)
    {
        CliRun runtime = Generate("--restore", restore);
        CliRun simulated = Generate("--restore", restore, "--simulated");
        Assert.True(runtime.ExitCode == 0, runtime.Stderr);
        Assert.True(simulated.ExitCode == 0, simulated.Stderr);
        Assert.Contains("simulated int4", simulated.Stderr, StringComparison.Ordinal);
        Assert.True(runtime.Stdout.Length > 40, runtime.Stdout);
        Assert.Equal(simulated.Stdout, runtime.Stdout);
    }

    [Fact]
    public void PerLinePerplexity_OfTheRuntime_AgreesWithTheSimulation()
    {
        double runtime = Ppl();
        double simulated = Ppl("--simulated");
        Assert.True(Math.Abs(runtime - simulated) <= 1e-3 * simulated, $"runtime {runtime}, simulated {simulated}");
    }

    [Fact]
    public void RestoringEveryUnit_ScoresBetterThanRestoringNone()
    {
        double all = Ppl("--restore", "all");
        double none = Ppl("--restore", "none");
        double byMetric = Ppl("--restore", "0.5", "--metric", "norm_error");
        Assert.True(all < none, $"all {all}, none {none}");
        Assert.InRange(byMetric, all * 0.98, none * 1.02);
    }

    [Fact]
    public void RestoreReportsHowManyUnitsRun()
    {
        CliRun Restore(string value) => CliRun.Of("generate", "-m", model.Path, "-p", "Once", "-n", "1", "--restore", value);
        Assert.Contains("10/20 units restored", Restore("0.5").Stderr, StringComparison.Ordinal);
        Assert.Contains("0/20 units restored", Restore("none").Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--restore", "1.5", "--restore must be a fraction in [0, 1]")]
    [InlineData("--restore", "half", "--restore must be a fraction in [0, 1]")]
    [InlineData("--metric", "gsvd", "give --restore too")]
    public void ABadRestoreChoice_IsOneErrorLine(string option, string value, string expected)
    {
        CliRun run = Generate(option, value);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains(expected, run.SingleErrorLine(), StringComparison.Ordinal);
    }

    [Fact]
    public void AnUnknownMetric_IsOneErrorLineListingTheStoredOnes()
    {
        CliRun run = Generate("--restore", "0.5", "--metric", "nope");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("no 'nope' scores; it stores", run.SingleErrorLine(), StringComparison.Ordinal);
    }

    [Fact]
    public void GlqOptions_OnAFullPrecisionModel_AreOneErrorLine()
    {
        CliRun run = CliRun.Of("generate", "-m", SharedData.Stories260KBin, "--tokenizer", SharedData.Stories260KTokenizer, "-p", "hi", "--simulated");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("apply to .glq models only", run.SingleErrorLine(), StringComparison.Ordinal);
    }

    [Fact]
    public void AGlqFileWithAMissingTensor_IsOneErrorLine()
    {
        using var dir = new TempDirectory();
        string path = TinyGlqModel.Create().RemoveTensor("model.layers.1.post_attention_layernorm.weight").Write(dir.File("broken.glq"));
        CliRun run = CliRun.Of("generate", "-m", path, "-p", "a", "-n", "2");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("model.layers.1.post_attention_layernorm.weight", run.SingleErrorLine(), StringComparison.Ordinal);
    }

    [Fact]
    public void RtnAndLayerwiseFiles_RunOnTheCommandLine()
    {
        foreach (string method in (string[])["rtn", "layerwise"])
        {
            string path = model.Directory.File($"{method}.glq");
            CliRun convert = CliRun.Of("convert", "-m", SharedData.Stories260KBin, "-o", path, "--method", method, "--group-size", "32", "--rank", "8",
                "--calib-generate", "4", "--calib-seq-len", "32", "-q");
            Assert.True(convert.ExitCode == 0, convert.Stderr);
            CliRun runtime = CliRun.Of("generate", "-m", path, "-p", "Once upon a time", "--temperature", "0", "-n", "20");
            CliRun simulated = CliRun.Of("generate", "-m", path, "-p", "Once upon a time", "--temperature", "0", "-n", "20", "--simulated");
            Assert.True(runtime.ExitCode == 0, runtime.Stderr);
            Assert.Contains($".glq {method}, int4 runtime", runtime.Stderr, StringComparison.Ordinal);
            Assert.Equal(simulated.Stdout, runtime.Stdout);
        }
    }
}
