using System.Diagnostics;
using System.Globalization;
using System.Text;
using GlowQ.Converter;

namespace GlowQ.Cli;

/// <summary>
/// Stage progress on stderr: on a terminal, one bar per stage redrawn in place with elapsed time and an ETA; when
/// stderr is redirected, one plain line per step (a log file should not fill with carriage returns).
/// </summary>
internal sealed class ProgressDisplay(TextWriter stderr, string prefix, bool interactive, bool quiet, Func<TimeSpan>? clock = null) : IConversionProgress
{
    private const int BarWidth = 28;
    private static readonly TimeSpan RedrawInterval = TimeSpan.FromMilliseconds(100);

    private readonly Func<TimeSpan> _clock = clock ?? ElapsedSince(Stopwatch.StartNew());
    private string _stage = "";
    private int _total;
    private int _done;
    private string? _detail;
    private TimeSpan _stageStart;
    private TimeSpan _lastDraw = TimeSpan.MinValue;
    private bool _barShown;

    private static Func<TimeSpan> ElapsedSince(Stopwatch watch) => () => watch.Elapsed;

    /// <summary>Whether stderr is the process's own, not redirected, terminal.</summary>
    public static bool IsTerminal(TextWriter stderr) => ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected;

    public void BeginStage(string name, int total)
    {
        if (quiet)
        {
            return;
        }

        FinishBar();
        _stage = name;
        _total = Math.Max(0, total);
        _done = 0;
        _detail = null;
        _stageStart = _clock();
        _lastDraw = TimeSpan.MinValue;
        if (interactive)
        {
            Draw(_stageStart);
        }
    }

    public void Advance(int done, string? detail = null)
    {
        if (quiet)
        {
            return;
        }

        _done = Math.Clamp(done, 0, Math.Max(_total, done));
        _detail = detail;
        TimeSpan now = _clock();
        if (!interactive)
        {
            stderr.WriteLine($"{prefix}: {Describe(now)}");
            return;
        }

        if (_done >= _total || now - _lastDraw >= RedrawInterval)
        {
            Draw(now);
        }

        if (_done >= _total)
        {
            FinishBar();
        }
    }

    public void Notice(string message)
    {
        if (quiet)
        {
            return;
        }

        if (_barShown)
        {
            stderr.Write("\r\u001b[2K");
        }

        stderr.WriteLine($"{prefix}: {message}");
        if (_barShown)
        {
            Draw(_clock());
        }
    }

    /// <summary>"quantise layers 3/16 [bar] 12 s, ETA 31 s" — the bar only on a terminal.</summary>
    internal string Describe(TimeSpan now)
    {
        var line = new StringBuilder(_stage);
        if (interactive)
        {
            int filled = _total > 0 ? (int)((long)BarWidth * Math.Min(_done, _total) / _total) : BarWidth;
            line.Append(" [").Append('#', filled).Append('.', BarWidth - filled).Append(']');
        }

        line.Append(CultureInfo.InvariantCulture, $" {_done}/{_total}");
        if (_detail is not null)
        {
            line.Append(" (").Append(_detail).Append(')');
        }

        TimeSpan elapsed = now - _stageStart;
        line.Append(", ").Append(Format(elapsed));
        if (_done > 0 && _done < _total)
        {
            TimeSpan eta = elapsed * ((double)(_total - _done) / _done);
            line.Append(", ETA ").Append(Format(eta));
        }

        return line.ToString();
    }

    internal static string Format(TimeSpan t) => t.TotalSeconds switch
    {
        < 60 => string.Create(CultureInfo.InvariantCulture, $"{t.TotalSeconds:F1} s"),
        < 3600 => string.Create(CultureInfo.InvariantCulture, $"{(int)t.TotalMinutes} min {t.Seconds:D2} s"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{(int)t.TotalHours} h {t.Minutes:D2} min"),
    };

    private void Draw(TimeSpan now)
    {
        stderr.Write($"\r\u001b[2K{prefix}: {Describe(now)}");
        stderr.Flush();
        _barShown = true;
        _lastDraw = now;
    }

    private void FinishBar()
    {
        if (_barShown)
        {
            stderr.WriteLine();
            _barShown = false;
        }
    }
}
