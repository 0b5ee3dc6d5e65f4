namespace GlowQ.Cli.Tests;

/// <summary>Runs the glowq command line in-process, capturing stdout, stderr and the exit code.</summary>
internal sealed record CliRun(int ExitCode, string Stdout, string Stderr)
{
    public static CliRun Of(params string[] args) => WithStdin(null, args);

    /// <summary>Runs with <paramref name="stdin"/> as standard input (for <c>glowq chat</c>).</summary>
    public static CliRun WithStdin(TextReader? stdin, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = stdin is null ? GlowQCommandLine.Run(args, stdout, stderr) : GlowQCommandLine.Run(args, stdout, stderr, stdin);
        return new CliRun(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>The error line, asserting it is the only thing on stderr that reports an error and that no stack trace leaked.</summary>
    public string SingleErrorLine()
    {
        string[] errors = Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("glowq: error:", StringComparison.Ordinal)).ToArray();
        Assert.Single(errors);
        Assert.DoesNotContain("   at ", Stderr);
        Assert.DoesNotContain("Exception", Stderr);
        return errors[0];
    }
}
