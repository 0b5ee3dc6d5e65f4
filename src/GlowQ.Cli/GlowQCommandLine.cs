using System.CommandLine;
using GlowQ.Format;
using GlowQ.Tokenizers;

namespace GlowQ.Cli;

/// <summary>The <c>glowq</c> command tree and its error policy: a problem with the user's input is one line on stderr and exit code 1.</summary>
public static class GlowQCommandLine
{
    public const int ExitOk = 0;
    public const int ExitError = 1;
    public const int ExitUsage = 2;
    public const int ExitInterrupted = 130;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr) => Run(args, stdout, stderr, stdin: null);

    /// <param name="stdin">What <c>glowq chat</c> reads user turns from; null reads the console.</param>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, TextReader? stdin)
    {
        var root = new RootCommand("GlowQ Edge: 4-bit LLaMA-family inference with group-shared low-rank correction, for Jetson-class GPUs and CPUs.")
        {
            GenerateCommand.Create(stdout, stderr),
            ChatCommand.Create(stdout, stderr, stdin),
            PerplexityCommand.Create(stdout, stderr),
            ConvertCommand.Create(stdout, stderr),
            EvalCommand.Create(stdout, stderr),
            SynthCommand.Create(stdout, stderr),
            InspectCommand.Create(stdout),
            VerifyCommand.Create(stdout, stderr),
        };

        ParseResult parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var error in parsed.Errors)
            {
                stderr.WriteLine($"glowq: {error.Message}");
            }

            stderr.WriteLine("Run 'glowq --help' (or 'glowq VERB --help') for usage.");
            return ExitUsage;
        }

        try
        {
            return parsed.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (Describe(e) is string message)
        {
            stderr.WriteLine($"glowq: error: {message}");
            if (Environment.GetEnvironmentVariable("GLOWQ_DEBUG") == "1")
            {
                stderr.WriteLine(e);
            }

            return e is OperationCanceledException ? ExitInterrupted : ExitError;
        }
    }

    /// <summary>The one-line message for an exception a user can act on; null for programming errors.</summary>
    internal static string? Describe(Exception e) => e switch
    {
        CliUsageException or ModelFormatException or TokenizerFormatException => e.Message,
        GlowQ.Runtime.Profiles.MemoryBudgetException => e.Message,
        FileNotFoundException or DirectoryNotFoundException => e.Message,
        UnauthorizedAccessException => e.Message,
        IOException => e.Message,
        ArgumentException => e.Message,
        OutOfMemoryException => "out of memory loading or running the model (try a smaller --context or a smaller model)",
        OperationCanceledException => "interrupted",
        AggregateException { InnerException: { } inner } => Describe(inner),
        _ => $"internal error ({e.GetType().Name}: {e.Message}); set GLOWQ_DEBUG=1 for details",
    };
}

/// <summary>A user mistake in the command's arguments, detected after parsing (empty prompt, bad range).</summary>
public sealed class CliUsageException(string message) : Exception(message);
