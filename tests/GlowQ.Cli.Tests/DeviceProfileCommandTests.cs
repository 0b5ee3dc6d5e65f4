using GlowQ.TestSupport;

namespace GlowQ.Cli.Tests;

public sealed class DeviceProfileCommandTests(Stories260KGlq model) : IClassFixture<Stories260KGlq>
{
    [Fact]
    public void NamedProfile_SetsTheRestoreFraction_WhenRestoreIsNotGiven()
    {
        // orin-nano-8gb restores half of the units; --restore overrides it.
        CliRun run = CliRun.Of("generate", "-m", model.Path, "-p", "Once", "-n", "4", "--temperature", "0", "--profile", "orin-nano-8gb");
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("10/20 units restored", run.Stderr);
        CliRun all = CliRun.Of("generate", "-m", model.Path, "-p", "Once", "-n", "4", "--temperature", "0", "--profile", "orin-nano-8gb", "--restore", "all");
        Assert.Contains("20/20 units restored", all.Stderr);
    }

    [Fact]
    public void ProfileTooSmallForTheModel_IsRefusedBeforeLoading_WithWhatIsNeededAndWhatHelps()
    {
        using var dir = new TempDirectory();
        string profile = dir.File("tiny.json");
        File.WriteAllText(profile, """{ "name": "tiny", "backend": "cpu", "memory_gib": 0.0001, "reserved_gib": 0 }""");
        CliRun run = CliRun.Of("generate", "-m", model.Path, "-p", "Once", "-n", "4", "--profile", profile);
        Assert.Equal(1, run.ExitCode);
        string error = run.SingleErrorLine();
        Assert.Contains("the model needs", error);
        Assert.Contains("profile 'tiny' allows 0.00 GiB", error);
        Assert.Contains("a smaller --restore fraction", error);
        Assert.Empty(run.Stdout);
    }

    [Theory]
    [InlineData("orin-mega", "unknown device profile 'orin-mega'")]
    [InlineData("/nonexistent/p.json", "device profile not found")]
    public void UnknownProfile_IsOneLineError(string profile, string expected)
    {
        CliRun run = CliRun.Of("generate", "-m", model.Path, "-p", "Once", "-n", "4", "--profile", profile);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains(expected, run.SingleErrorLine());
    }
}
