using GlowQ.Cli.Hosting;
using GlowQ.TestSupport;
using Microsoft.Extensions.Hosting;

namespace GlowQ.Cli.Tests;

/// <summary>
/// Option defaults come from appsettings.json beside the binary, then GLOWQ_ environment variables, then the command
/// line, each overriding the one before; log lines go to stderr at the configured level.
/// </summary>
[Collection(SharedProcessEnvironment.Name)]
public sealed class ConfigurationTests
{
    private static CliRun RunHosted(string directory, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        using IHost host = GlowQHost.Build(directory, stderr);
        int code = GlowQCommandLine.Run(args, stdout, stderr, stdin: null, host);
        return new CliRun(code, stdout.ToString(), stderr.ToString());
    }

    private static string[] Generate(params string[] extra) => ["generate", "-m", SharedData.Stories260KBin, "-p", "Once upon a time", .. extra];

    [Fact]
    public void AppSettingsBesideTheBinary_SetTheDefaults()
    {
        using var dir = new TempDirectory();
        dir.Write(GlowQSettings.FileName, """{ "Generation": { "MaxTokens": 7, "Temperature": 0 } }""");
        CliRun run = RunHosted(dir.Path, Generate());
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("7 generated", run.Stderr);
        Assert.Equal(", there was a little gir", run.Stdout.TrimEnd());
    }

    [Fact]
    public void EnvironmentVariables_OverrideAppSettings_AndTheCommandLineOverridesBoth()
    {
        using var dir = new TempDirectory();
        dir.Write(GlowQSettings.FileName, """{ "Generation": { "MaxTokens": 7, "Temperature": 0 } }""");
        using (new EnvironmentVariable("GLOWQ_GENERATION__MAXTOKENS", "5"))
        {
            Assert.Contains("5 generated", RunHosted(dir.Path, Generate()).Stderr);
            Assert.Contains("3 generated", RunHosted(dir.Path, Generate("-n", "3")).Stderr);
        }

        Assert.Contains("7 generated", RunHosted(dir.Path, Generate()).Stderr);
    }

    [Fact]
    public void ChatDefaults_ComeFromTheirOwnSection()
    {
        using var dir = new TempDirectory();
        dir.Write(GlowQSettings.FileName, """{ "Generation": { "MaxTokens": 7, "Temperature": 0 }, "Chat": { "MaxTokens": 4 } }""");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        using IHost host = GlowQHost.Build(dir.Path, stderr);
        int code = GlowQCommandLine.Run(["chat", "-m", SharedData.Stories260KBin], stdout, stderr, new StringReader("Once upon a time\n/stats\n"), host);
        Assert.Equal(0, code);
        Assert.Contains("generated 4 (max-tokens)", stderr.ToString());
    }

    [Fact]
    public void ModelDefaults_ApplyToGlqModelsWithoutBreakingCheckpoints()
    {
        using var dir = new TempDirectory();
        dir.Write(GlowQSettings.FileName, """{ "Model": { "Restore": "none", "Threads": 1 }, "Generation": { "MaxTokens": 4, "Temperature": 0 } }""");
        CliRun bundled = RunHosted(dir.Path, "generate", "-p", "Once upon a time");
        Assert.Equal(0, bundled.ExitCode);
        Assert.Contains("0/20 units restored", bundled.Stderr);
        Assert.Contains("1 threads", bundled.Stderr);

        // A configured --restore is a default for .glq files, not a command-line misuse on a checkpoint.
        CliRun checkpoint = RunHosted(dir.Path, Generate());
        Assert.Equal(0, checkpoint.ExitCode);
    }

    [Fact]
    public void LogLevel_FromConfiguration_ShowsDebugLines_AndQuietKeepsOnlyWarnings()
    {
        using var dir = new TempDirectory();
        dir.Write(GlowQSettings.FileName, """{ "Logging": { "LogLevel": { "Default": "Debug" } }, "Generation": { "MaxTokens": 2 } }""");
        CliRun debug = RunHosted(dir.Path, "generate", "-p", "Once");
        Assert.Contains("glowq: debug: profile cpu: budget", debug.Stderr);
        Assert.Contains("glowq: stories260K.glq (bundled)", debug.Stderr);

        CliRun quiet = RunHosted(dir.Path, "generate", "-p", "Once", "-q");
        Assert.Equal(0, quiet.ExitCode);
        Assert.Equal("", quiet.Stderr);

        using var plain = new TempDirectory();
        CliRun info = RunHosted(plain.Path, "generate", "-p", "Once", "-n", "2");
        Assert.DoesNotContain("debug:", info.Stderr);
        Assert.Contains("glowq: stories260K.glq (bundled)", info.Stderr);
    }

    [Theory]
    [InlineData("""{ "Generation": { "Temperature": "hot" } }""", "Generation:Temperature must be a number, got 'hot'")]
    [InlineData("""{ "Generation": { "MaxTokens": -1 } }""", "Generation:MaxTokens must be ≥ 0, got -1")]
    [InlineData("""{ "Generation": { "TopP": 0 } }""", "Generation:TopP must be in (0, 1], got 0")]
    [InlineData("""{ "Model": { "Threads": "many" } }""", "Model:Threads must be a whole number, got 'many'")]
    [InlineData("""{ "Model": { "Backend": "tpu" } }""", "Model:Backend must be auto, cuda or cpu, got 'tpu'")]
    public void UnusableSettings_AreOneLineNamingTheKey(string json, string expected)
    {
        using var dir = new TempDirectory();
        dir.Write(GlowQSettings.FileName, json);
        var e = Assert.Throws<ConfigurationProblemException>(() => GlowQHost.Build(dir.Path, TextWriter.Null));
        Assert.Equal($"configuration (appsettings.json or GLOWQ_* environment): {expected}", e.Message);
    }

    [Fact]
    public void MalformedAppSettings_IsOneLineNamingTheFile()
    {
        using var dir = new TempDirectory();
        string path = dir.Write(GlowQSettings.FileName, """{ "Generation": { """);
        Exception e = Assert.ThrowsAny<Exception>(() => GlowQHost.Build(dir.Path, TextWriter.Null));
        string? message = GlowQHost.DescribeLoadFailure(e);
        Assert.NotNull(message);
        Assert.StartsWith($"{path}: not valid settings JSON: ", message);
        Assert.DoesNotContain('\n', message);
    }

    [Fact]
    public void WithoutAppSettings_TheBuiltInDefaultsApply()
    {
        using var dir = new TempDirectory();
        using IHost host = GlowQHost.Build(dir.Path, TextWriter.Null);
        var settings = (GlowQSettings)host.Services.GetService(typeof(GlowQSettings))!;
        Assert.Equal(256, settings.Generation.MaxTokens);
        Assert.Equal(0.8f, settings.Generation.Temperature);
        Assert.Null(settings.Model.Path);
    }
}

/// <summary>Tests that set process environment variables run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SharedProcessEnvironment
{
    public const string Name = "process environment";
}

/// <summary>Sets an environment variable for the lifetime of the object.</summary>
internal sealed class EnvironmentVariable : IDisposable
{
    private readonly string _name;
    private readonly string? _previous;

    public EnvironmentVariable(string name, string value)
    {
        _name = name;
        _previous = Environment.GetEnvironmentVariable(name);
        Environment.SetEnvironmentVariable(name, value);
    }

    public void Dispose() => Environment.SetEnvironmentVariable(_name, _previous);
}
