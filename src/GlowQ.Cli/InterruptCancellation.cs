using System.Runtime.InteropServices;

namespace GlowQ.Cli;

/// <summary>
/// The one owner of Ctrl+C (SIGINT) and SIGTERM in the CLI. Either cancels a token instead of killing the process, so a
/// verb shuts down gracefully: it finishes its output, deletes temporary files and exits with
/// <see cref="GlowQCommandLine.ExitInterrupted"/>. A service manager's SIGTERM thus ends a run as Ctrl+C does. Verbs that
/// write files also survive SIGXFSZ (a file-size limit, `ulimit -f`): the write then fails with an error the verb
/// reports and cleans up after, instead of the process dying with a temporary file left behind. A session made with
/// <see cref="ForSession"/> (chat) has two levels: Ctrl+C during a step (<see cref="BeginStep"/>) cancels only that
/// step; a second press in the same step, or one between steps (where the session may be blocked reading its input),
/// ends the process with <see cref="GlowQCommandLine.ExitInterrupted"/>, stdout flushed; SIGTERM ends the session at
/// once in the same way. Disposing unhooks the handlers.
/// </summary>
internal sealed class InterruptCancellation : IDisposable
{
    private readonly CancellationTokenSource _source = new();
    private readonly Lock _gate = new();
    private readonly ConsoleCancelEventHandler _onCancelKey;
    private readonly PosixSignalRegistration? _onTerminate;
    private readonly nint? _previousFileSizeAction;
    private CancellationTokenSource? _step;

    // SIGXFSZ is 25 on every Linux architecture the product ships for (x64, arm64). PosixSignalRegistration cannot
    // stop its default action (the runtime re-raises it), so the disposition is set to "ignore" through libc.
    private const int SigXfsz = 25;
    private const nint SigIgn = 1;

    /// <param name="notice">Written to stderr when Ctrl+C is pressed, or null.</param>
    public InterruptCancellation(TextWriter stderr, string? notice = null, bool writesFiles = false)
        : this(stderr, notice, writesFiles, session: null)
    {
    }

    private InterruptCancellation(TextWriter stderr, string? notice, bool writesFiles, TextWriter? session)
    {
        // A session's input may be a blocking read that no token can interrupt, so ending it ends the process.
        void EndSession(TextWriter stdout, string why)
        {
            stdout.Flush();
            stderr.WriteLine();
            stderr.WriteLine($"glowq: {why}");
            Environment.Exit(GlowQCommandLine.ExitInterrupted);
        }

        _onCancelKey = (_, e) =>
        {
            e.Cancel = true;
            lock (_gate)
            {
                if (_step is { IsCancellationRequested: false } step)
                {
                    step.Cancel();
                    if (notice is not null)
                    {
                        stderr.WriteLine();
                        stderr.WriteLine(notice);
                    }

                    return;
                }
            }

            if (session is not null)
            {
                EndSession(session, "interrupted");
            }

            _source.Cancel();
            if (notice is not null)
            {
                stderr.WriteLine(notice);
            }
        };
        Console.CancelKeyPress += _onCancelKey;
        _onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            if (session is not null)
            {
                lock (_gate)
                {
                    _step?.Cancel();
                }

                EndSession(session, "terminated");
            }

            _source.Cancel();
        });
        if (writesFiles)
        {
            if (OperatingSystem.IsLinux())
            {
                _previousFileSizeAction = SetSignalAction(SigXfsz, SigIgn);
            }
        }
    }

    /// <summary>A two-level handler for an interactive session; <paramref name="stdout"/> is flushed before exiting.</summary>
    /// <param name="stepNotice">Written to stderr when Ctrl+C cancels a step.</param>
    public static InterruptCancellation ForSession(TextWriter stdout, TextWriter stderr, string stepNotice) =>
        new(stderr, stepNotice, writesFiles: false, session: stdout);

    public CancellationToken Token => _source.Token;

    /// <summary>Starts a step that the next Ctrl+C cancels (alone); returns its token.</summary>
    public CancellationToken BeginStep()
    {
        lock (_gate)
        {
            _step?.Dispose();
            _step = new CancellationTokenSource();
            return _step.Token;
        }
    }

    /// <summary>Ends the step: until the next one, Ctrl+C acts on the whole run again.</summary>
    public void EndStep()
    {
        lock (_gate)
        {
            _step?.Dispose();
            _step = null;
        }
    }

    public void Dispose()
    {
        Console.CancelKeyPress -= _onCancelKey;
        EndStep();
        _onTerminate?.Dispose();
        if (_previousFileSizeAction is nint previous)
        {
            SetSignalAction(SigXfsz, previous);
        }
        _source.Dispose();
    }

    // DllImport rather than LibraryImport: both arguments are blittable, so no marshalling code (and no unsafe
    // block) is needed, and Native AOT binds it directly.
    [DllImport("libc", EntryPoint = "signal")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern nint SetSignalAction(int signal, nint action);
}
