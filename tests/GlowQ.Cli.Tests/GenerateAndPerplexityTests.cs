using System.Text.Json;
using GlowQ.TestSupport;

namespace GlowQ.Cli.Tests;

public sealed class GenerateAndPerplexityTests
{
    private const string Continuation =
        ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.";

    [Fact]
    public void Generate_WithTheLlama2cCheckpoint_StreamsOnlyTheGreedyContinuationToStdout()
    {
        CliRun run = CliRun.Of("generate", "-m", SharedData.Stories260KBin, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "40");
        Assert.Equal(0, run.ExitCode);
        Assert.StartsWith(Continuation, run.Stdout);
        Assert.DoesNotContain("glowq:", run.Stdout);
        Assert.Contains("stories260K.bin", run.Stderr);
        Assert.Contains("40 generated", run.Stderr);
    }

    [Fact]
    public void Generate_HfCheckpointWithExplicitTokenizer_GivesTheSameText()
    {
        CliRun run = CliRun.Of("generate", "-m", SharedData.Stories260KHf, "--tokenizer", SharedData.Stories260KTokenizer,
            "-p", "Once upon a time", "--temperature", "0", "-n", "40", "-q");
        Assert.Equal(0, run.ExitCode);
        Assert.StartsWith(Continuation, run.Stdout);
        Assert.Equal("", run.Stderr);
    }

    [Fact]
    public void Ppl_PerLineJson_MatchesTheFloat64Figure()
    {
        CliRun run = CliRun.Of("ppl", "--model", SharedData.Stories260KBin, "--text", SharedData.TinyStoriesSample, "--per-line", "--json", "-q");
        Assert.Equal(0, run.ExitCode);
        using var json = JsonDocument.Parse(run.Stdout);
        Assert.Equal(5.1747, json.RootElement.GetProperty("ppl").GetDouble(), 3);
        Assert.Equal(Math.Exp(json.RootElement.GetProperty("nll").GetDouble()), json.RootElement.GetProperty("ppl").GetDouble(), 9);
        Assert.Equal(9136, json.RootElement.GetProperty("tokens").GetInt64());
    }

    [Fact]
    public void Ppl_ContiguousWindows_ScoreFewerTokensThanTheStreamHas()
    {
        CliRun run = CliRun.Of("ppl", "--text", SharedData.TinyStoriesSample, "--seq-len", "128", "--json", "-q");
        Assert.Equal(0, run.ExitCode);
        using var json = JsonDocument.Parse(run.Stdout);
        long windows = json.RootElement.GetProperty("windows").GetInt64();
        Assert.Equal(128, json.RootElement.GetProperty("seq_len").GetInt32());
        Assert.InRange(json.RootElement.GetProperty("ppl").GetDouble(), 3, 12);
        Assert.True(windows > 10, $"{windows} windows");
    }

    [Theory]
    [InlineData("generate")]
    [InlineData("ppl")]
    public void EveryVerb_HasHelp(string verb)
    {
        CliRun run = CliRun.Of(verb, "--help");
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("Usage:", run.Stdout);
        Assert.Contains("--model", run.Stdout);
    }

    [Fact]
    public void RootHelp_ListsTheVerbs()
    {
        CliRun run = CliRun.Of("--help");
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("generate", run.Stdout);
        Assert.Contains("ppl", run.Stdout);
    }
}
