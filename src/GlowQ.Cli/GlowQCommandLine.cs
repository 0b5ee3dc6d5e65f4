using System.CommandLine;
using GlowQ.Cli.Hosting;
using GlowQ.Format;
using GlowQ.Tokenizers;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

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
    /// <param name="host">
    /// The process's host (<see cref="GlowQHost.Build"/>): option defaults from its configuration and its loggers. Null
    /// runs with the built-in defaults and logs to <paramref name="stderr"/>, as tests do.
    /// </param>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, TextReader? stdin, IHost? host = null)
    {
        StderrLoggerProvider logOutput;
        ILoggerFactory? ownFactory = null;
        CliDefaults defaults;
        if (host is null)
        {
            logOutput = new StderrLoggerProvider(stderr);
            ownFactory = LoggerFactory.Create(logging => logging.AddProvider(logOutput));
            defaults = new CliDefaults(new GlowQSettings(), ownFactory.CreateLogger("glowq"));
        }
        else
        {
            logOutput = host.Services.GetRequiredService<StderrLoggerProvider>();
            defaults = new CliDefaults(host.Services.GetRequiredService<GlowQSettings>(), host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("glowq"));
        }

        try
        {
            return Run(args, stdout, stderr, stdin, defaults, logOutput);
        }
        finally
        {
            ownFactory?.Dispose();
        }
    }

    private static int Run(string[] args, TextWriter stdout, TextWriter stderr, TextReader? stdin, CliDefaults defaults, StderrLoggerProvider logOutput)
    {
        var root = new RootCommand("GlowQ Edge: 4-bit LLaMA-family inference with group-shared low-rank correction, for Jetson-class GPUs and CPUs.")
        {
            GenerateCommand.Create(stdout, stderr, defaults),
            ChatCommand.Create(stdout, stderr, stdin, defaults),
            PerplexityCommand.Create(stdout, defaults),
            ConvertCommand.Create(stdout, stderr),
            EvalCommand.Create(stdout, stderr),
            SynthCommand.Create(stdout, stderr),
            BenchCommand.Create(stdout, stderr, defaults),
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

        // --quiet keeps only warnings and errors on stderr, for log lines as for the verbs' own notices.
        logOutput.Quiet = parsed.CommandResult.Command.Options.FirstOrDefault(o => o.Name == "--quiet") is Option<bool> quiet && parsed.GetValue(quiet);
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
        CliUsageException or ModelFormatException or TokenizerFormatException or ConfigurationProblemException => e.Message,
        GlowQ.Runtime.Profiles.MemoryBudgetException => e.Message,
        GlowQ.Runtime.Cuda.CudaException => e.Message,
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

/// <summary>What the verbs take from the host: option defaults (configuration) and the logger.</summary>
internal sealed record CliDefaults(GlowQSettings Settings, ILogger Log);

/// <summary>A user mistake in the command's arguments, detected after parsing (empty prompt, bad range).</summary>
public sealed class CliUsageException(string message) : Exception(message);
