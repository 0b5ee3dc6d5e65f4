using System.Text;
using System.Text.RegularExpressions;

namespace GlowQ.Cli.Tests.EndToEnd;

/// <summary>
/// <c>glowq chat</c> as a user meets it: the real binary (see <see cref="GlowQProcess"/>), driven through stdin, stdout,
/// stderr and signals. Greedy decoding of stories260K makes every reply deterministic.
/// </summary>
public sealed partial class ChatEndToEndTests
{
    private const int Interrupted = 130;
    private const string ReplyInterrupted = "glowq: reply interrupted";

    // A reply that cannot finish before a signal arrives, even with the AOT binary on a fast machine. A repeat
    // "penalty" below 1 rewards recent tokens, so greedy decoding settles into a loop and never picks end-of-sequence
    // (without it, this prompt ends after about 3,000 tokens, under 2 s); the whole run would take about 40 s.
    private const int LongReplyTokens = 16000;
    private const string LongContext = "16384";
    private const string RepetitionReward = "0.5";

    // Prompts whose 20-token greedy replies hold no newline, so that stdout is one line per reply.
    private const string OnceUponATime = "Once upon a time";
    private const string TheCatSat = "The cat sat";
    private const string TheDogRan = "The dog ran";

    private static GlowQProcess Chat(params string[] extra) => Chat(20, extra);

    private static GlowQProcess Chat(int maxTokens, params string[] extra) =>
        GlowQProcess.Start(["chat", "-m", GlowQProcess.Stories260K, "--temperature", "0", "-n", $"{maxTokens}", .. extra]);

    private static int NewLines(string text) => text.Count(c => c == '\n');

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    [GeneratedRegex(@"generated (\d+) \((?<reason>[a-z-]+)\)")]
    private static partial Regex StatsLine();

    /// <summary>Sends one turn and waits for its reply (one line, as these prompts' replies are).</summary>
    private static string Ask(GlowQProcess chat, string turn)
    {
        int before = NewLines(chat.Stdout);
        chat.WriteLine(turn);
        string stdout = chat.WaitForStdout(s => NewLines(s) > before, $"the reply to '{turn}'");
        return Lines(stdout)[^1];
    }

    /// <summary>Asks for /stats and returns the line, waiting for the <paramref name="count"/>-th such line on stderr.</summary>
    private static Match Stats(GlowQProcess chat, int count)
    {
        chat.WriteLine("/stats");
        string stderr = chat.WaitForStderr(s => StatsLine().Count(s) >= count, $"stats line {count}");
        return StatsLine().Matches(stderr)[count - 1];
    }

    /// <summary>What <c>glowq generate</c> writes for <paramref name="prompt"/>: a one-turn plain chat must write the same.</summary>
    private static string Generate(string prompt)
    {
        using var generate = GlowQProcess.Start("generate", "-m", GlowQProcess.Stories260K, "-p", prompt, "--temperature", "0", "-n", "20", "-q");
        Assert.True(generate.WaitForExit() == 0, generate.Transcript);
        return generate.Stdout;
    }

    [Fact]
    public void MultiTurn_EachReplyStreamsAsALine_AndTheSessionGoesOnUntilEndOfInput()
    {
        using var chat = Chat("-q");
        string first = Ask(chat, OnceUponATime);
        string second = Ask(chat, TheCatSat);
        Assert.StartsWith(", there was a little girl named Lily.", first, StringComparison.Ordinal);
        Assert.NotEqual("", second.Trim());
        Assert.NotEqual(first, second);
        chat.CloseInput();
        Assert.True(chat.WaitForExit() == 0, chat.Transcript);
        Assert.Equal($"{first}\n{second}\n", chat.Stdout);
        Assert.Equal("", chat.Stderr);
    }

    [Fact]
    public void AfterReset_TheReplyEqualsAFreshSessionsReply()
    {
        using var fresh = Chat("-q");
        string freshReply = Ask(fresh, TheDogRan);

        using var continued = Chat("-q");
        Ask(continued, TheCatSat);
        Ask(continued, OnceUponATime);
        string withHistory = Ask(continued, TheDogRan);

        using var reset = Chat("-q");
        Ask(reset, TheCatSat);
        Ask(reset, OnceUponATime);
        reset.WriteLine("/reset");
        string afterReset = Ask(reset, TheDogRan);
        reset.CloseInput();
        Assert.True(reset.WaitForExit() == 0, reset.Transcript); // stderr is read on its own pipe: complete only at exit

        // Without /reset the earlier turns change the reply, so the equality below is the reset's doing.
        Assert.NotEqual(freshReply, withHistory);
        Assert.Equal(freshReply, afterReset);
        Assert.Contains("glowq: conversation cleared", reset.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void EndOfInput_ExitsZero_AfterReplyingToAnUnterminatedLastLine()
    {
        using var chat = Chat("-q");
        chat.Write(Encoding.UTF8.GetBytes(OnceUponATime));
        chat.CloseInput();
        Assert.True(chat.WaitForExit() == 0, chat.Transcript);
        Assert.Equal(Generate(OnceUponATime), chat.Stdout);
        Assert.Equal("", chat.Stderr);

        using var silent = Chat("-q");
        silent.CloseInput();
        Assert.True(silent.WaitForExit() == 0, silent.Transcript);
        Assert.Equal("", silent.Stdout);
        Assert.Equal("", silent.Stderr);
    }

    [Fact]
    public void Piped_StdoutHoldsOnlyTheReplies_AndEverythingElseGoesToStderr()
    {
        using var chat = Chat(); // not quiet: the banner and notices must all land on stderr
        chat.WriteLine(OnceUponATime);
        chat.WriteLine("/stats");
        chat.WriteLine("/bogus");
        chat.WriteLine("/reset");
        chat.WriteLine("/quit");
        chat.WriteLine(TheCatSat); // after /quit: never answered
        Assert.True(chat.WaitForExit() == 0, chat.Transcript);

        Assert.Equal(Generate(OnceUponATime), chat.Stdout);
        Assert.Contains("chat format plain", chat.Stderr, StringComparison.Ordinal);
        Assert.Contains("generated 20 (max-tokens)", chat.Stderr, StringComparison.Ordinal);
        Assert.Contains("unknown command '/bogus'", chat.Stderr, StringComparison.Ordinal);
        Assert.Contains("conversation cleared", chat.Stderr, StringComparison.Ordinal);
        Assert.DoesNotMatch("(^|\n)> ", chat.Stderr); // no prompt marker when stdin is not a terminal
    }

    [Fact]
    public void OnATerminal_ThePromptMarkerIsShownBeforeEachTurn()
    {
        using var chat = GlowQProcess.StartOnATerminal("chat", "-m", GlowQProcess.Stories260K, "--temperature", "0", "-n", "20", "-q");
        chat.WaitForStdout(s => s.Contains("> ", StringComparison.Ordinal), "the first prompt marker");
        chat.WriteLine(OnceUponATime);
        chat.WaitForStdout(s => s.Contains(", there was a little girl named Lily.", StringComparison.Ordinal), "the reply");
        chat.WaitForStdout(s => s.Split("> ").Length - 1 >= 2, "the prompt marker after the reply");
        chat.WriteLine("/quit");
        Assert.True(chat.WaitForExit() == 0, chat.Transcript);
    }

    [Fact]
    public void EmptyAndBlankLines_AreIgnored()
    {
        using var chat = Chat("-q");
        chat.Write("\n\n   \n\t\r\n"u8);
        chat.WriteLine(OnceUponATime);
        chat.Write("\n\n"u8);
        chat.CloseInput();
        Assert.True(chat.WaitForExit() == 0, chat.Transcript);
        Assert.Equal(Generate(OnceUponATime), chat.Stdout);
        Assert.Equal("", chat.Stderr);
    }

    [Fact]
    public void InvalidUtf8OnStdin_GetsAReply_AndTheSessionGoesOn()
    {
        using var chat = Chat("-q");
        chat.Write([0xC3, 0x28, 0xFF, 0xFE, 0xED, 0xA0, 0x80, .. " the dog\n"u8]);
        string reply = chat.WaitForStdout(s => NewLines(s) >= 1, "the reply to invalid UTF-8");
        string second = Ask(chat, OnceUponATime);
        chat.CloseInput();
        Assert.True(chat.WaitForExit() == 0, chat.Transcript);
        Assert.NotEqual("", reply.Trim());
        Assert.NotEqual("", second.Trim());
        Assert.Equal(chat.Stdout, new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(chat.StdoutBytes)); // valid UTF-8 out
        Assert.Equal("", chat.Stderr);
    }

    [Fact]
    public void ALineLongerThanTheContext_IsSkippedWithAMessage_AndTheSessionGoesOn()
    {
        using var chat = Chat("-q"); // stories260K's context: 512 tokens
        chat.WriteLine(string.Join(' ', Enumerable.Repeat(OnceUponATime, 3000))); // 50 kB, 12,000 tokens
        chat.WaitForStderr(s => s.Contains("skipped", StringComparison.Ordinal), "the notice that the line was skipped");
        chat.WriteLine(OnceUponATime);
        chat.CloseInput();
        Assert.True(chat.WaitForExit() == 0, chat.Transcript);
        Assert.Equal(Generate(OnceUponATime), chat.Stdout);
        Assert.Matches(@"^glowq: that message is \d+ tokens .* the context holds 512; skipped\n$", chat.Stderr);
    }

    [Fact]
    public void ContextOverflow_DropsTheOldestTurns_SaysSoOnStderr_AndKeepsReplying()
    {
        using var chat = Chat("-q", "--context", "64");
        string[] turns = [OnceUponATime, TheCatSat, TheDogRan, "Lily was happy", "The sun was hot"];
        for (int i = 0; i < turns.Length; i++)
        {
            chat.WriteLine(turns[i]);
            Match stats = Stats(chat, i + 1);
            Assert.True(int.Parse(stats.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) > 0, chat.Transcript);
        }

        chat.CloseInput();
        Assert.True(chat.WaitForExit() == 0, chat.Transcript);
        Assert.Contains("glowq: context full (64 tokens): dropped the oldest", chat.Stderr, StringComparison.Ordinal);
        Assert.Matches(@"context used \d+/64 tokens, [12] turn\(s\)\n$", chat.Stderr);
        Assert.DoesNotContain("context full", chat.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void InterruptDuringAReply_StopsThatReply_AndTheNextTurnIsAnswered_ThenInterruptAtThePromptExitsWith130()
    {
        // Greedy stories260K runs on for thousands of tokens after this prompt (see LongReplyTokens); the shorter context
        // bounds the second, uninterrupted reply to a few seconds.
        using var chat = Chat(LongReplyTokens, "-q", "--context", "2048", "--repeat-penalty", RepetitionReward);
        chat.WriteLine("Lily and Lily and Lily");
        chat.WaitForStdout(s => s.Length >= 20, "the long reply to start");
        chat.Interrupt();
        chat.WaitForStderr(s => s.Contains(ReplyInterrupted, StringComparison.Ordinal), "the reply to stop");
        Match stopped = Stats(chat, 1);
        Assert.True(stopped.Groups["reason"].Value == "cancelled", chat.Transcript);
        Assert.EndsWith("\n", chat.Stdout, StringComparison.Ordinal);
        int stoppedLength = chat.Stdout.Length;

        chat.WriteLine(OnceUponATime);
        Match next = Stats(chat, 2);
        Assert.True(next.Groups["reason"].Value != "cancelled", chat.Transcript);
        Assert.True(chat.Stdout.Length > stoppedLength + 1, chat.Transcript);
        Assert.EndsWith("\n", chat.Stdout, StringComparison.Ordinal);

        chat.Interrupt();
        Assert.True(chat.WaitForExit() == Interrupted, chat.Transcript);
        Assert.EndsWith("glowq: interrupted\n", chat.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void SecondInterruptDuringAReply_ExitsWith130()
    {
        using var chat = Chat(LongReplyTokens, "-q", "--context", LongContext, "--repeat-penalty", RepetitionReward);
        chat.WriteLine("Lily and Lily and Lily");
        chat.WaitForStdout(s => s.Length >= 20, "the long reply to start");
        chat.Interrupt();
        chat.WaitForStderr(s => s.Contains(ReplyInterrupted, StringComparison.Ordinal), "the reply to stop");
        chat.Interrupt();
        Assert.True(chat.WaitForExit() == Interrupted, chat.Transcript);
        Assert.Contains("glowq: interrupted", chat.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void InterruptAtThePrompt_ExitsWith130_KeepingTheRepliesSoFar()
    {
        using var chat = Chat("-q");
        string reply = Ask(chat, OnceUponATime);
        chat.Interrupt();
        Assert.True(chat.WaitForExit() == Interrupted, chat.Transcript);
        Assert.Equal(reply + "\n", chat.Stdout);
    }

    [Fact]
    public void TerminateDuringAReply_EndsTheSessionGracefully_WithTheReplySoFarOnStdout()
    {
        using var chat = Chat(LongReplyTokens, "-q", "--context", LongContext, "--repeat-penalty", RepetitionReward);
        chat.WriteLine("Lily and Lily and Lily");
        chat.WaitForStdout(s => s.Length >= 20, "the long reply to start");
        chat.Terminate();
        Assert.True(chat.WaitForExit() == Interrupted, chat.Transcript);
        Assert.Contains("glowq: terminated", chat.Stderr, StringComparison.Ordinal);
        Assert.True(chat.Stdout.Length >= 20, chat.Transcript);
    }

    [Fact]
    public void TerminateDuringGenerate_StopsAndExitsWith130()
    {
        using var generate = GlowQProcess.Start(
            ["generate", "-m", GlowQProcess.Stories260K, "-p", "Lily and Lily and Lily", "--temperature", "0", "-n", $"{LongReplyTokens}", "--context", LongContext, "--repeat-penalty", RepetitionReward]);
        generate.WaitForStdout(s => s.Length >= 20, "the generation to start");
        generate.Terminate();
        Assert.True(generate.WaitForExit() == Interrupted, generate.Transcript);
        Assert.Contains("generated (cancelled)", generate.Stderr, StringComparison.Ordinal);
    }
}
