using System.Runtime.InteropServices;

namespace GlowQ.Cli;

/// <summary>
/// A cancellation token that Ctrl+C (and, when asked, SIGTERM) cancels instead of killing the process, so a verb can
/// stop cleanly: finish its output, delete temporary files. Disposing unhooks the handlers.
/// </summary>
internal sealed class InterruptCancellation : IDisposable
{
    private readonly CancellationTokenSource _source = new();
    private readonly ConsoleCancelEventHandler _onCancelKey;
    private readonly PosixSignalRegistration? _onTerminate;

    /// <param name="notice">Written to stderr when Ctrl+C is pressed, or null.</param>
    public InterruptCancellation(TextWriter stderr, string? notice = null, bool alsoOnSigterm = false)
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
        if (alsoOnSigterm)
        {
            _onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
            {
                context.Cancel = true;
                _source.Cancel();
            });
        }
    }

    public CancellationToken Token => _source.Token;

    public void Dispose()
    {
        Console.CancelKeyPress -= _onCancelKey;
        _onTerminate?.Dispose();
        _source.Dispose();
    }
}
