using System.Buffers.Binary;
using GlowQ.TestSupport;

namespace GlowQ.Cli.Tests;

/// <summary>Every kind of bad input ends in one line on stderr naming the problem and a non-zero exit code.</summary>
public sealed class BadInputTests
{
    private const string Config = """
        {"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":172,"num_hidden_layers":5,
         "num_attention_heads":8,"num_key_value_heads":4,"vocab_size":512,"max_position_embeddings":512,
         "rms_norm_eps":1e-5,"tie_word_embeddings":true}
        """;

    private static CliRun Generate(string model, string prompt = "Once upon a time", params string[] extra) =>
        CliRun.Of(["generate", "-m", model, "--tokenizer", SharedData.Stories260KTokenizer, "-p", prompt, "-n", "5", .. extra]);

    [Fact]
    public void MissingModelFile()
    {
        CliRun run = Generate("/nonexistent/model.bin");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("/nonexistent/model.bin", run.SingleErrorLine());
    }

    [Fact]
    public void TruncatedSafetensorsHeader()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("config.json"), Config);
        byte[] bytes = File.ReadAllBytes(Path.Combine(SharedData.Stories260KHf, "model.safetensors"));
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        File.WriteAllBytes(dir.File("model.safetensors"), bytes[..(int)(8 + headerLength / 2)]);
        CliRun run = Generate(dir.Path);
        Assert.Equal(1, run.ExitCode);
        string line = run.SingleErrorLine();
        Assert.Contains("model.safetensors", line);
        Assert.Contains("header length", line);
    }

    [Fact]
    public void TensorShapeDisagreeingWithConfig()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("config.json"), Config.Replace("\"intermediate_size\":172", "\"intermediate_size\":128"));
        File.Copy(Path.Combine(SharedData.Stories260KHf, "model.safetensors"), dir.File("model.safetensors"));
        CliRun run = Generate(dir.Path);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("mlp.gate_proj.weight' has shape [172, 64], config.json implies [128, 64]", run.SingleErrorLine());
    }

    [Fact]
    public void UnsupportedArchitecture()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("config.json"), Config.Replace("LlamaForCausalLM", "FalconForCausalLM"));
        File.Copy(Path.Combine(SharedData.Stories260KHf, "model.safetensors"), dir.File("model.safetensors"));
        CliRun run = Generate(dir.Path);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("unsupported architecture 'FalconForCausalLM'", run.SingleErrorLine());
    }

    [Fact]
    public void EmptyPrompt()
    {
        CliRun run = Generate(SharedData.Stories260KBin, "");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("--prompt is empty", run.SingleErrorLine());
    }

    [Fact]
    public void PromptLongerThanTheContext()
    {
        CliRun run = Generate(SharedData.Stories260KBin, string.Join(' ', Enumerable.Repeat("Once upon a time", 40)), "--context", "64");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("context holds 64", run.SingleErrorLine());
    }

    [Fact]
    public void TokenizerLargerThanTheModelVocabulary()
    {
        CliRun run = CliRun.Of("generate", "-m", SharedData.Stories260KBin, "--tokenizer", SharedData.Path("models", "llama2-tokenizer", "tokenizer.bin"), "-p", "hi");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("32000 tokens but the model's vocabulary is 512", run.SingleErrorLine());
    }

    [Fact]
    public void HfDirectoryWithoutTokenizer_AsksForOne()
    {
        CliRun run = CliRun.Of("generate", "-m", SharedData.Stories260KHf, "-p", "hi");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("--tokenizer", run.SingleErrorLine());
    }

    [Theory]
    [InlineData("--temperature", "-1")]
    [InlineData("--top-p", "1.5")]
    [InlineData("--max-tokens", "-3")]
    public void OutOfRangeSamplingOptions(string option, string value)
    {
        CliRun run = CliRun.Of("generate", "-p", "hi", $"{option}={value}");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains(option, run.SingleErrorLine());
    }

    [Fact]
    public void MissingTextFileForPpl()
    {
        CliRun run = CliRun.Of("ppl", "--text", "/nonexistent/text.txt");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("/nonexistent/text.txt", run.SingleErrorLine());
    }

    [Fact]
    public void EmptyTextFileForPpl()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("empty.txt"), "\n\n");
        CliRun run = CliRun.Of("ppl", "--text", dir.File("empty.txt"), "--per-line");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("no text to score", run.SingleErrorLine());
    }

    [Fact]
    public void UnknownOptionOrMissingRequiredOption_IsAUsageError()
    {
        Assert.Equal(2, CliRun.Of("generate", "--bogus").ExitCode);
        CliRun run = CliRun.Of("ppl");
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("--text", run.Stderr);
    }
}
