using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace GlowQ.Cli.Tests.EndToEnd;

/// <summary>
/// A running <c>glowq</c> process driven through its standard streams: the real binary (GLOWQ_BINARY, e.g. the Native-AOT
/// build, else the framework-dependent build beside the tests), fed bytes on stdin, its stdout and stderr collected as
/// they arrive. Every wait has a timeout; disposing kills the process if it is still running, so a failed test leaves
/// nothing behind.
/// </summary>
internal sealed class GlowQProcess : IDisposable
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    private const int SigInt = 2;
    private const int SigTerm = 15;

    private readonly Process _process;
    private readonly Stream _stdin;
    private readonly Collected _stdout = new();
    private readonly Collected _stderr = new();
    private readonly Task _readers;

    private GlowQProcess(ProcessStartInfo start)
    {
        start.RedirectStandardInput = true;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        _process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {start.FileName}");
        _stdin = _process.StandardInput.BaseStream;
        _readers = Task.WhenAll(
            Task.Run(() => Pump(_process.StandardOutput.BaseStream, _stdout)),
            Task.Run(() => Pump(_process.StandardError.BaseStream, _stderr)));
    }

    /// <summary>Starts <c>glowq</c> with <paramref name="args"/>, its streams piped.</summary>
    public static GlowQProcess Start(params string[] args)
    {
        (string fileName, string[] prefix) = Binary();
        var start = new ProcessStartInfo(fileName);
        foreach (string arg in prefix.Concat(args))
        {
            start.ArgumentList.Add(arg);
        }

        ShareTheTestsRuntime(start);
        return new GlowQProcess(start);
    }

    /// <summary>
    /// Starts <c>glowq</c> with <paramref name="args"/> inside <c>script</c>, which gives it a pseudo-terminal for its
    /// stdin, stdout and stderr; what it writes to either comes back as this process's stdout.
    /// </summary>
    public static GlowQProcess StartOnATerminal(params string[] args)
    {
        (string fileName, string[] prefix) = Binary();
        string command = "exec " + string.Join(' ', prefix.Concat(args).Prepend(fileName).Select(ShellQuote));
        var start = new ProcessStartInfo("script");
        foreach (string arg in new[] { "--quiet", "--flush", "--return", "--command", command, "/dev/null" })
        {
            start.ArgumentList.Add(arg);
        }

        ShareTheTestsRuntime(start);
        return new GlowQProcess(start);
    }

    /// <summary>The stories260K model in the repository (not the CLI's bundled default, which may change).</summary>
    public static string Stories260K { get; } = Path.Combine(RepositoryRoot(), "models", "stories260K", "stories260K.bin");

    public int Id => _process.Id;

    public string Stdout => _stdout.Text;

    public string Stderr => _stderr.Text;

    public byte[] StdoutBytes => _stdout.Bytes;

    /// <summary>Both streams, for assertion messages.</summary>
    public string Transcript => $"--- stdout ---\n{Stdout}\n--- stderr ---\n{Stderr}\n--------------";

    public void WriteLine(string line) => Write(Encoding.UTF8.GetBytes(line + "\n"));

    public void Write(ReadOnlySpan<byte> bytes)
    {
        _stdin.Write(bytes);
        _stdin.Flush();
    }

    /// <summary>Closes stdin: the process sees end of input.</summary>
    public void CloseInput() => _stdin.Close();

    /// <summary>Sends SIGINT, as Ctrl+C on a terminal does.</summary>
    public void Interrupt() => Signal(SigInt, "SIGINT");

    /// <summary>Sends SIGTERM, as a service manager or <c>kill</c> does to stop a program.</summary>
    public void Terminate() => Signal(SigTerm, "SIGTERM");

    private void Signal(int signal, string name)
    {
        if (Kill(_process.Id, signal) != 0)
        {
            throw new InvalidOperationException($"kill({_process.Id}, {name}) failed with errno {Marshal.GetLastPInvokeError()}\n{Transcript}");
        }
    }

    /// <summary>Waits until stdout satisfies <paramref name="condition"/>; fails the test with the transcript on timeout.</summary>
    public string WaitForStdout(Func<string, bool> condition, string what, TimeSpan? timeout = null) =>
        WaitFor(_stdout, condition, what, timeout);

    /// <summary>Waits until stderr satisfies <paramref name="condition"/>; fails the test with the transcript on timeout.</summary>
    public string WaitForStderr(Func<string, bool> condition, string what, TimeSpan? timeout = null) =>
        WaitFor(_stderr, condition, what, timeout);

    /// <summary>Waits for the process to end and for its output to be read; returns the exit code.</summary>
    public int WaitForExit(TimeSpan? timeout = null)
    {
        TimeSpan limit = timeout ?? DefaultTimeout;
        if (!_process.WaitForExit(limit) || !_readers.Wait(limit))
        {
            KillIfRunning();
            Assert.Fail($"glowq did not exit within {limit.TotalSeconds:F0} s\n{Transcript}");
        }

        return _process.ExitCode;
    }

    public void Dispose()
    {
        KillIfRunning();
        try
        {
            _stdin.Dispose();
        }
        catch (IOException)
        {
            // The process is gone and the pipe broken: nothing left to close cleanly.
        }

        _readers.Wait(TimeSpan.FromSeconds(5));
        _process.Dispose();
    }

    private string WaitFor(Collected stream, Func<string, bool> condition, string what, TimeSpan? timeout)
    {
        TimeSpan limit = timeout ?? DefaultTimeout;
        if (stream.WaitUntil(condition, limit) is string text)
        {
            return text;
        }

        string problem = _process.HasExited
            ? $"glowq exited with {_process.ExitCode} before {what}"
            : $"timed out after {limit.TotalSeconds:F0} s waiting for {what}";
        KillIfRunning();
        Assert.Fail($"{problem}\n{Transcript}");
        return "";
    }

    private void KillIfRunning()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
            // It exited between the check and the kill.
        }
    }

    private static async Task Pump(Stream source, Collected destination)
    {
        var buffer = new byte[4096];
        try
        {
            int read;
            while ((read = await source.ReadAsync(buffer).ConfigureAwait(false)) > 0)
            {
                destination.Append(buffer.AsSpan(0, read));
            }
        }
        catch (IOException)
        {
            // The pipe broke because the process was killed; what arrived before stays collected.
        }
        finally
        {
            destination.Close();
        }
    }

    /// <summary>GLOWQ_BINARY when set, else the framework-dependent glowq that the test project builds beside itself.</summary>
    private static (string FileName, string[] Prefix) Binary()
    {
        string? configured = Environment.GetEnvironmentVariable("GLOWQ_BINARY");
        if (!string.IsNullOrEmpty(configured))
        {
            return File.Exists(configured)
                ? (Path.GetFullPath(configured), [])
                : throw new FileNotFoundException($"GLOWQ_BINARY is {configured}, which does not exist", configured);
        }

        string appHost = Path.Combine(AppContext.BaseDirectory, OperatingSystem.IsWindows() ? "glowq.exe" : "glowq");
        if (File.Exists(appHost))
        {
            return (appHost, []);
        }

        string assembly = Path.Combine(AppContext.BaseDirectory, "glowq.dll");
        return File.Exists(assembly)
            ? (Path.Combine(DotnetRoot(), "dotnet"), [assembly])
            : throw new FileNotFoundException($"neither {appHost} nor {assembly} exists; build tests/GlowQ.Cli.Tests first");
    }

    /// <summary>Lets the framework-dependent apphost find the runtime the tests run on, wherever it is installed.</summary>
    private static void ShareTheTestsRuntime(ProcessStartInfo start)
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("DOTNET_ROOT")))
        {
            start.Environment["DOTNET_ROOT"] = DotnetRoot();
        }
    }

    /// <summary>The .NET installation running the tests: the runtime directory is ROOT/shared/Microsoft.NETCore.App/VERSION/.</summary>
    private static string DotnetRoot() =>
        Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "GlowQ.Edge.sln")))
            {
                return directory.FullName;
            }
        }

        throw new DirectoryNotFoundException($"no GlowQ.Edge.sln above {AppContext.BaseDirectory}");
    }

    private static string ShellQuote(string argument) => "'" + argument.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    // DllImport, not LibraryImport: the arguments are blittable, and LibraryImport would need unsafe code in this project.
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int Kill(int pid, int signal);

    /// <summary>One output stream's bytes so far, with a way to wait for them to satisfy a condition.</summary>
    private sealed class Collected
    {
        private readonly object _gate = new(); // a Monitor, for Wait and PulseAll
        private readonly List<byte> _bytes = [];
        private bool _closed;

        public byte[] Bytes
        {
            get
            {
                lock (_gate)
                {
                    return [.. _bytes];
                }
            }
        }

        public string Text => Encoding.UTF8.GetString(Bytes);

        public void Append(ReadOnlySpan<byte> bytes)
        {
            lock (_gate)
            {
                _bytes.AddRange(bytes);
                Monitor.PulseAll(_gate);
            }
        }

        public void Close()
        {
            lock (_gate)
            {
                _closed = true;
                Monitor.PulseAll(_gate);
            }
        }

        /// <summary>The text once it satisfies <paramref name="condition"/>; null on timeout or when the stream ended without.</summary>
        public string? WaitUntil(Func<string, bool> condition, TimeSpan timeout)
        {
            var clock = Stopwatch.StartNew();
            lock (_gate)
            {
                while (true)
                {
                    string text = Encoding.UTF8.GetString(CollectionsMarshal.AsSpan(_bytes));
                    if (condition(text))
                    {
                        return text;
                    }

                    TimeSpan left = timeout - clock.Elapsed;
                    if (_closed || left <= TimeSpan.Zero)
                    {
                        return null;
                    }

                    Monitor.Wait(_gate, left);
                }
            }
        }
    }
}
