using Microsoft.Extensions.Logging;

namespace GlowQ.Cli.Hosting;

/// <summary>
/// Log lines on stderr in the CLI's own style (<c>glowq: …</c>, <c>glowq: warning: …</c>, <c>glowq: debug: …</c>),
/// written synchronously so they stay in order with the rest of stderr (the console logger queues on a thread).
/// <see cref="Quiet"/> (the verbs' --quiet) keeps only warnings and errors.
/// </summary>
public sealed class StderrLoggerProvider(TextWriter stderr) : ILoggerProvider
{
    private readonly Lock _gate = new();
    private readonly TextWriter _stderr = stderr;

    public bool Quiet { get; set; }

    public ILogger CreateLogger(string categoryName) => new StderrLogger(this);

    public void Dispose()
    {
    }

    private sealed class StderrLogger(StderrLoggerProvider owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None && (!owner.Quiet || logLevel >= LogLevel.Warning);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            string level = logLevel switch
            {
                LogLevel.Trace => "trace: ",
                LogLevel.Debug => "debug: ",
                LogLevel.Warning => "warning: ",
                LogLevel.Error or LogLevel.Critical => "error: ",
                _ => "",
            };
            lock (owner._gate)
            {
                owner._stderr.WriteLine($"glowq: {level}{formatter(state, exception)}");
            }
        }
    }
}
