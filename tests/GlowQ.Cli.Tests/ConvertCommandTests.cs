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
        Assert.Contains("method glowq, quantizer rtn, 20 units, 10 restored", convert.Stdout);

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
        Assert.Contains("method rtn, quantizer rtn, 0 units", run.Stdout);
    }

    [Fact]
    public void ConvertGptq_WritesAGptqBaseFile_AndReportsProgressPerLayerOnRedirectedStderr()
    {
        using var dir = new TempDirectory();
        string path = dir.File("gptq.glq");
        CliRun run = CliRun.Of("convert", "-m", SharedData.Stories260KBin, "-o", path, "--group-size", "32", "--method", "rtn",
            "--quantizer", "gptq", "--calib-generate", "2", "--calib-seq-len", "32");
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("method rtn, quantizer gptq, 0 units", run.Stdout);
        // Redirected stderr gets plain lines, one per step, never carriage returns.
        Assert.Contains("glowq convert: sample calibration 2/2", run.Stderr);
        Assert.Contains("glowq convert: quantise layers 5/5 (layer 5/5)", run.Stderr);
        Assert.DoesNotContain("\r", run.Stderr);
        CliRun inspect = CliRun.Of("inspect", path);
        Assert.Contains("base gptq", inspect.Stdout);
    }

    [Fact]
    public void RankAboveWhatAUnitAllows_IsClampedWithANotice()
    {
        using var dir = new TempDirectory();
        // stories260K's k/v inputs are 64 wide: rank 100 cannot be had by any unit.
        CliRun run = CliRun.Of("convert", "-m", SharedData.Stories260KBin, "-o", dir.File("r.glq"), "--group-size", "32", "--rank", "100",
            "--calib-generate", "2", "--calib-seq-len", "16");
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("rank 100 exceeds what 20 of 20 units allow", run.Stderr);
    }

    [Theory]
    [InlineData("needs calibration", "--method", "glowq")]
    [InlineData("--quantizer gptq needs calibration", "--method", "rtn", "--quantizer", "gptq")]
    [InlineData("--metrics takes a comma-separated list", "--metrics", "gsvd,bogus", "--method", "rtn")]
    [InlineData("--metric cosine is not among --metrics gsvd", "--metrics", "gsvd", "--metric", "cosine", "--method", "rtn")]
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
    public void CalibrationTextShorterThanOneSample_IsRefused_AndWritesNothing()
    {
        using var dir = new TempDirectory();
        string calib = dir.File("short.txt");
        File.WriteAllText(calib, "Once upon a time there was a cat.\n");
        CliRun run = Convert(dir.File("c.glq"), "--calib", calib, "--calib-seq-len", "256");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("too little text for one calibration sequence of 256 tokens", run.SingleErrorLine());
        Assert.Equal([calib], Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void OutputPathNotWritable_IsOneLineNamingTheOutput()
    {
        CliRun run = CliRun.Of("convert", "-m", SharedData.Stories260KBin, "-o", "/proc/glowq-test.glq", "--method", "rtn", "-q");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("/proc/glowq-test.glq: cannot write the output file", run.SingleErrorLine());
    }

    [Fact]
    public void RankZero_IsRefused()
    {
        using var dir = new TempDirectory();
        CliRun run = CliRun.Of("convert", "-m", SharedData.Stories260KBin, "-o", dir.File("g.glq"), "--rank", "0", "--calib-generate", "2");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("--rank must be ≥ 1, got 0", run.SingleErrorLine());
        Assert.Empty(Directory.GetFiles(dir.Path));
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
