using System.Text;
using System.Text.RegularExpressions;
using GlowQ.TestSupport;
using GlowQ.Tokenizers;

namespace GlowQ.Cli.Tests;

public sealed partial class ChatCommandTests
{
    private static CliRun Chat(string input, params string[] extra) =>
        CliRun.WithStdin(new StringReader(input), ["chat", "-m", SharedData.Stories260KBin, "--temperature", "0", "-n", "20", "-q", .. extra]);

    private static string[] Lines(string stdout) => stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    [GeneratedRegex(@"prompt tokens (\d+) \(prefilled (\d+), turn (\d+)\)")]
    private static partial Regex StatsLine();

    [Fact]
    public void OneTurn_Greedy_IsWhatGenerateWrites()
    {
        CliRun chat = Chat("Once upon a time\n");
        CliRun generate = CliRun.Of("generate", "-m", SharedData.Stories260KBin, "-p", "Once upon a time", "--temperature", "0", "-n", "20", "-q");
        Assert.True(chat.ExitCode == 0, chat.Stderr);
        Assert.Equal(0, generate.ExitCode);
        Assert.True(chat.Stdout.Length > 20, chat.Stdout);
        Assert.Equal(generate.Stdout, chat.Stdout);
    }

    [Fact]
    public void SecondTurn_PrefillsOnlyItsOwnTokens()
    {
        CliRun run = Chat("Once upon a time\nThe cat sat\n/stats\n");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Match stats = StatsLine().Match(run.Stderr);
        Assert.True(stats.Success, run.Stderr);
        int prompt = int.Parse(stats.Groups[1].Value), prefilled = int.Parse(stats.Groups[2].Value), turn = int.Parse(stats.Groups[3].Value);
        int ownTokens = TokenizerLoader.Load(SharedData.Stories260KTokenizer).Encode("The cat sat", addBos: false).Length;
        Assert.Equal(ownTokens, turn);
        // Plus, at most, the first reply's last token: sampled, shown, but not yet run through the model.
        Assert.InRange(prefilled - turn, 0, 1);
        Assert.True(prompt > prefilled + 20, run.Stderr);
    }

    [Fact]
    public void Reset_ThenTheSameTurn_ReproducesTheFirstReply()
    {
        CliRun run = Chat("Once upon a time\nThe cat sat\n/reset\nOnce upon a time\n");
        Assert.True(run.ExitCode == 0, run.Stderr);
        string[] replies = Lines(run.Stdout);
        Assert.Equal(3, replies.Length);
        Assert.Equal(replies[0], replies[2]);
        Assert.NotEqual(replies[0], replies[1]);
    }

    [Fact]
    public void EndOfInput_AndQuit_ExitZero_AndStatsGoToStderrOnly()
    {
        CliRun eof = Chat("Once upon a time\n/stats");
        Assert.True(eof.ExitCode == 0, eof.Stderr);
        Assert.Single(Lines(eof.Stdout));
        Assert.DoesNotContain("prompt tokens", eof.Stdout, StringComparison.Ordinal);
        Assert.Contains("prompt tokens", eof.Stderr, StringComparison.Ordinal);

        CliRun quit = Chat("/quit\nOnce upon a time\n");
        Assert.True(quit.ExitCode == 0, quit.Stderr);
        Assert.Equal("", quit.Stdout);

        CliRun empty = Chat("");
        Assert.Equal(0, empty.ExitCode);
        Assert.Equal("", empty.Stdout);
    }

    [Fact]
    public void InvalidUtf8_AndEmptyLines_DoNotEndTheSession()
    {
        byte[] input = [.. "\n\n   \n"u8, 0xC3, 0x28, 0xFF, .. " the dog\n\nOnce upon a time\n"u8];
        CliRun run = CliRun.WithStdin(new StreamReader(new MemoryStream(input), new UTF8Encoding(false, false)),
            "chat", "-m", SharedData.Stories260KBin, "--temperature", "0", "-n", "10", "-q");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Equal(2, Lines(run.Stdout).Length);
    }

    [Fact]
    public void ContextOverflow_DropsTheOldestTurns_AndGoesOn()
    {
        CliRun run = Chat("Once upon a time\nThe cat sat\nThe dog ran\nLily was happy\nThe sun was hot\n/stats\n", "--context", "64");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.True(Lines(run.Stdout).Length >= 5, run.Stdout); // a reply may hold newlines of its own
        Assert.Contains("context full (64 tokens): dropped the oldest", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("/64 tokens", run.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void ALineLongerThanTheContext_IsSkippedWithANotice()
    {
        string longLine = string.Join(' ', Enumerable.Repeat("Once upon a time", 40));
        CliRun run = Chat($"{longLine}\nOnce upon a time\n", "--context", "64");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Single(Lines(run.Stdout));
        Assert.Contains("skipped", run.Stderr, StringComparison.Ordinal);
    }
}
