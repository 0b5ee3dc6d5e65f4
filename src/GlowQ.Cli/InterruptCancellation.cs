using System.Runtime.InteropServices;

namespace GlowQ.Cli;

/// <summary>
/// A cancellation token that Ctrl+C (and, for verbs that write files, SIGTERM) cancels instead of killing the
/// process, so a verb can stop cleanly: finish its output, delete temporary files. Verbs that write files also
/// survive SIGXFSZ (a file-size limit, `ulimit -f`): the write then fails with an error the verb reports and cleans
/// up after, instead of the process dying with a temporary file left behind. Disposing unhooks the handlers.
/// </summary>
internal sealed class InterruptCancellation : IDisposable
{
    private readonly CancellationTokenSource _source = new();
    private readonly ConsoleCancelEventHandler _onCancelKey;
    private readonly PosixSignalRegistration? _onTerminate;
    private readonly nint? _previousFileSizeAction;

    // SIGXFSZ is 25 on every Linux architecture the product ships for (x64, arm64). PosixSignalRegistration cannot
    // stop its default action (the runtime re-raises it), so the disposition is set to "ignore" through libc.
    private const int SigXfsz = 25;
    private const nint SigIgn = 1;

    /// <param name="notice">Written to stderr when Ctrl+C is pressed, or null.</param>
    public InterruptCancellation(TextWriter stderr, string? notice = null, bool writesFiles = false)
    {
        _onCancelKey = (_, e) =>
        {
            e.Cancel = true;
            _source.Cancel();
            if (notice is not null)
            {
                stderr.WriteLine(notice);
            }
        };
        Console.CancelKeyPress += _onCancelKey;
        if (writesFiles)
        {
            _onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
            {
                context.Cancel = true;
                _source.Cancel();
            });
            if (OperatingSystem.IsLinux())
            {
                _previousFileSizeAction = SetSignalAction(SigXfsz, SigIgn);
            }
        }
    }

    public CancellationToken Token => _source.Token;

    public void Dispose()
    {
        Console.CancelKeyPress -= _onCancelKey;
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
