using System.Text.Json;
using GlowQ.TestSupport;

namespace GlowQ.Cli.Tests;

public sealed class EvalCommandTests
{
    [Fact]
    public void Eval_WritesTableCsvPlotAndJson_WithEveryVariantInOrder()
    {
        using var dir = new TempDirectory();
        string prefix = dir.File("table");
        CliRun run = CliRun.Of("eval", "-m", SharedData.Stories260KBin, "--text", SharedData.TinyStoriesSample, "--per-line",
            "--variants", "fp,rtn,gptq,glowq,glowq-s:0.5", "--metrics", "gsvd,layer_order", "--group-size", "32", "--rank", "8",
            "--calib-generate", "8", "--calib-seq-len", "64", "-o", prefix, "--json", "-q");
        Assert.Equal(0, run.ExitCode);

        JsonElement[] variants = [.. JsonDocument.Parse(run.Stdout).RootElement.GetProperty("variants").EnumerateArray()];
        Assert.Equal(["fp", "rtn", "gptq", "glowq", "glowq-s gsvd 0.5", "glowq-s layer_order 0.5"], variants.Select(v => v.GetProperty("name").GetString()));
        Dictionary<string, JsonElement> byName = variants.ToDictionary(v => v.GetProperty("name").GetString()!);
        double Ppl(string name) => byName[name].GetProperty("ppl").GetDouble();
        Assert.Equal(5.1747, Ppl("fp"), 3);
        Assert.True(Ppl("gptq") < Ppl("rtn"), $"gptq {Ppl("gptq")} vs rtn {Ppl("rtn")}");
        Assert.True(Ppl("fp") < Ppl("glowq") && Ppl("glowq") < Ppl("rtn"), $"glowq {Ppl("glowq")}");

        // Bits per weight: the correction's bytes on top of the same int4 base; half the units restore part of them.
        double rtnBits = byName["rtn"].GetProperty("bits_per_weight").GetDouble();
        Assert.InRange(rtnBits, 4.625, 4.8); // 4 + (16 + 4)/32, plus the padding of down_proj's 172 inputs
        Assert.Equal(0, byName["rtn"].GetProperty("factor_bytes").GetInt64());
        Assert.Equal(20, byName["glowq"].GetProperty("bx_products_per_token").GetInt32());
        Assert.Equal(10, byName["glowq-s gsvd 0.5"].GetProperty("bx_products_per_token").GetInt32());
        long allFactors = byName["glowq"].GetProperty("factor_bytes").GetInt64();
        long halfFactors = byName["glowq-s gsvd 0.5"].GetProperty("factor_bytes").GetInt64();
        Assert.InRange(halfFactors, 1, allFactors - 1);
        Assert.Equal(32.0, byName["fp"].GetProperty("bits_per_weight").GetDouble()); // the llama2.c checkpoint is fp32

        string markdown = File.ReadAllText(prefix + ".md");
        Assert.Contains("| glowq-s gsvd 0.5 |", markdown);
        Assert.Contains("per line", markdown);
        string[] csv = File.ReadAllLines(prefix + ".csv");
        Assert.Equal(7, csv.Length);
        Assert.StartsWith("variant,kind,metric,fraction,ppl,", csv[0], StringComparison.Ordinal);
        byte[] png = File.ReadAllBytes(prefix + ".png");
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        // Temporary conversions are gone: only the three results remain.
        Assert.Equal(3, Directory.GetFiles(dir.Path).Length);
    }

    [Theory]
    [InlineData("unknown variant 'awq'", "--variants", "fp,awq")]
    [InlineData("glowq-s fraction must be a number in [0, 1]", "--variants", "glowq-s:1.5")]
    [InlineData("needs calibration", "--variants", "fp,glowq")]
    [InlineData("text file not found", "--variants", "fp", "--text", "/nonexistent.txt")]
    public void BadArguments_GiveOneLineErrors_AndWriteNothing(string expected, params string[] extra)
    {
        using var dir = new TempDirectory();
        string[] text = extra.Contains("--text") ? [] : ["--text", SharedData.TinyStoriesSample];
        CliRun run = CliRun.Of(["eval", "-m", SharedData.Stories260KBin, "-o", dir.File("t"), "-q", .. text, .. extra]);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains(expected, run.SingleErrorLine());
        Assert.Empty(Directory.GetFiles(dir.Path));
    }
}
