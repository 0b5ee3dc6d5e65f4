using GlowQ.Runtime.Cuda;
using GlowQ.TestSupport;

namespace GlowQ.Cli.Tests;

/// <summary>
/// --backend on whatever machine runs the tests: where no CUDA device answers, auto falls back to the CPU with one
/// line saying why and cuda is an error; where one does, both run the model on it. Either way the assertions hold.
/// </summary>
public sealed class BackendOptionTests(Stories260KGlq model) : IClassFixture<Stories260KGlq>
{
    private static readonly CudaProbeResult Cuda = CudaAvailability.Probe();

    private CliRun Generate(params string[] extra) =>
        CliRun.Of(["generate", "-m", model.Path, "-p", "Once", "-n", "8", "--temperature", "0", "--context", "64", .. extra]);

    [Fact]
    public void Auto_RunsOnCudaWhenADeviceAnswers_ElseOnTheCpuWithOneLineSayingWhy()
    {
        CliRun run = Generate("--backend", "auto");
        Assert.True(run.ExitCode == 0, run.Stderr);
        if (Cuda.IsAvailable)
        {
            Assert.Contains("int4 on cuda device 0", run.Stderr, StringComparison.Ordinal);
        }
        else
        {
            Assert.Contains($"glowq: no GPU ({Cuda.Describe()}): running on the CPU\n", run.Stderr, StringComparison.Ordinal);
            Assert.Contains("int4 runtime", run.Stderr, StringComparison.Ordinal);
        }

        Assert.Equal(Generate("--backend", "cpu").Stdout, run.Stdout);
    }

    [Fact]
    public void CudaGraphs_GiveTheSameGreedyText_OnWhicheverBackendAutoPicks()
    {
        CliRun recorded = Generate("--backend", "auto", "--cuda-graphs");
        Assert.True(recorded.ExitCode == 0, recorded.Stderr);

        Assert.Equal(Generate("--backend", "auto").Stdout, recorded.Stdout);
        Assert.False(string.IsNullOrWhiteSpace(recorded.Stdout));
    }

    [Fact]
    public void Cpu_NeverProbesForAGpu()
    {
        CliRun run = Generate("--backend", "cpu");
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.DoesNotContain("GPU", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("int4 runtime", run.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Cuda_WithoutADevice_IsAOneLineErrorNamingTheReason()
    {
        CliRun run = Generate("--backend", "cuda");
        if (Cuda.IsAvailable)
        {
            Assert.True(run.ExitCode == 0, run.Stderr);
            Assert.Contains("int4 on cuda device 0", run.Stderr, StringComparison.Ordinal);
            return;
        }

        Assert.Equal(1, run.ExitCode);
        Assert.Equal($"glowq: error: --backend cuda: {Cuda.Describe()}", run.SingleErrorLine());
        Assert.Empty(run.Stdout);
    }

    [Fact]
    public void Cuda_ForACheckpointOrTheSimulation_IsRefused()
    {
        CliRun checkpoint = CliRun.Of(["generate", "-m", SharedData.Stories260KBin, "-p", "Once", "-n", "2", "--backend", "cuda"]);
        Assert.Equal(1, checkpoint.ExitCode);
        Assert.Contains("--backend cuda runs .glq models on the int4 kernels", checkpoint.SingleErrorLine(), StringComparison.Ordinal);

        CliRun simulated = Generate("--backend", "cuda", "--simulated");
        Assert.Equal(1, simulated.ExitCode);
        Assert.Contains("checkpoints and --simulated run on the CPU", simulated.SingleErrorLine(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("")]
    public void AnUnknownBackend_IsAOneLineError(string value)
    {
        CliRun run = Generate("--backend", value);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"--backend must be auto, cuda or cpu, got '{value}'", run.SingleErrorLine(), StringComparison.Ordinal);
    }
}
