using System.Text.Json;
using GlowQ.TestSupport;

namespace GlowQ.Cli.Tests;

public sealed class ConvertCommandTests
{
    private static CliRun Convert(string output, params string[] extra) =>
        CliRun.Of(["convert", "-m", SharedData.Stories260KBin, "-o", output, "--group-size", "32", "--rank", "4", "-q", .. extra]);

    [Fact]
    public void ConvertGlowQ_ThenVerifyPplAndGenerate_WorkOnTheFile()
    {
        using var dir = new TempDirectory();
        string path = dir.File("s.glq");
        CliRun convert = Convert(path, "--calib-generate", "4", "--calib-seq-len", "32", "--restore", "0.5", "--metric", "norm_error");
        Assert.Equal(0, convert.ExitCode);
        Assert.Contains("method glowq, 20 units, 10 restored", convert.Stdout);

        Assert.Equal(0, CliRun.Of("verify", path).ExitCode);
        CliRun ppl = CliRun.Of("ppl", "-m", path, "--text", SharedData.TinyStoriesSample, "--per-line", "--json", "-q");
        Assert.Equal(0, ppl.ExitCode);
        double value = JsonDocument.Parse(ppl.Stdout).RootElement.GetProperty("ppl").GetDouble();
        Assert.InRange(value, 5.1747, 7.0); // no better than full precision, not broken
        CliRun generate = CliRun.Of("generate", "-m", path, "-p", "Once upon a time", "--temperature", "0", "-n", "10", "-q");
        Assert.Equal(0, generate.ExitCode);
        Assert.StartsWith(",", generate.Stdout); // the embedded tokenizer decodes the continuation
    }

    [Fact]
    public void ConvertRtn_NeedsNoCalibration()
    {
        using var dir = new TempDirectory();
        CliRun run = Convert(dir.File("r.glq"), "--method", "rtn");
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("method rtn, 0 units", run.Stdout);
    }

    [Theory]
    [InlineData("needs calibration", "--method", "glowq")]
    [InlineData("--calib-generate must be", "--calib-generate=0")]
    [InlineData("--restore must be", "--restore", "1.5", "--method", "rtn")]
    [InlineData("not both", "--calib", "x.txt", "--calib-generate", "2")]
    [InlineData("calibration text not found", "--calib", "/nonexistent/calib.txt")]
    public void BadArguments_GiveOneLineErrors_AndWriteNothing(string expected, params string[] extra)
    {
        using var dir = new TempDirectory();
        string path = dir.File("bad.glq");
        CliRun run = Convert(path, extra);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains(expected, run.SingleErrorLine());
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Synth_WritesACheckpointThatGenerateAndConvertAccept()
    {
        using var dir = new TempDirectory();
        string model = Path.Combine(dir.Path, "tiny");
        CliRun synth = CliRun.Of("synth", "--shape", "tiny", "-o", model, "--seed", "5");
        Assert.Equal(0, synth.ExitCode);
        Assert.Contains("tiny shape", synth.Stdout);
        Assert.Contains("layer 2/2", synth.Stderr);
        Assert.Equal(0, CliRun.Of("generate", "-m", model, "-p", "hello", "-n", "5", "--temperature", "0", "-q").ExitCode);
        Assert.Equal(0, CliRun.Of("convert", "-m", model, "-o", dir.File("t.glq"), "--method", "rtn", "-q").ExitCode);
        Assert.Equal(2, CliRun.Of("synth", "--shape", "gpt-9", "-o", model).ExitCode);
    }

    [Fact]
    public void GroupSizeNotAMultipleOf8_IsRefused()
    {
        using var dir = new TempDirectory();
        CliRun run = CliRun.Of("convert", "-m", SharedData.Stories260KBin, "-o", dir.File("g.glq"), "--method", "rtn", "--group-size", "12");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("--group-size must be a multiple of 8", run.SingleErrorLine());
    }

    [Fact]
    public void FailedConversion_LeavesAnExistingOutputUntouched()
    {
        using var dir = new TempDirectory();
        string path = dir.File("keep.glq");
        File.WriteAllText(path, "previous contents");
        CliRun run = Convert(path, "--calib", "/nonexistent/calib.txt");
        Assert.Equal(1, run.ExitCode);
        Assert.Equal("previous contents", File.ReadAllText(path));
        Assert.Single(Directory.GetFiles(dir.Path));
    }
}
