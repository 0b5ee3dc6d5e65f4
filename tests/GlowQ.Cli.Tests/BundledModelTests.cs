using GlowQ.Format.Glq;
using GlowQ.TestSupport;

namespace GlowQ.Cli.Tests;

/// <summary>
/// The model built into the binary: what it is, that this product's converter makes exactly it, and that the int4
/// runtime running it agrees with the converter's simulation of the same file.
/// </summary>
public sealed class BundledModelTests
{
    /// <summary>The conversion recorded in models/README.md; the converter is deterministic for a given SIMD path.</summary>
    private static readonly string[] ConversionArguments =
        ["--method", "glowq", "--quantizer", "gptq", "--act-order", "--group-size", "32", "--rank", "4", "--calib-generate", "64", "--calib-seq-len", "256"];

    private static byte[] EmbeddedBytes()
    {
        using Stream stream = typeof(GlowQCommandLine).Assembly.GetManifestResourceStream(BundledModel.ResourceName)
            ?? throw new InvalidOperationException("the bundled model is not embedded");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    /// <remarks>
    /// Under the JIT on an AVX-512 machine the vector primitives sum in a different order than the x86-64-v3 AOT binary
    /// that made the file, so a handful of rounding-level differences are allowed here; CI compares the AOT binary's
    /// conversion byte for byte.
    /// </remarks>
    [Fact]
    public void TheBundledModel_IsWhatTheConverterMakesFromStories260K()
    {
        using var dir = new TempDirectory();
        string output = dir.File("stories260K.glq");
        CliRun convert = CliRun.Of(["convert", "-m", SharedData.Stories260KBin, "-o", output, "-q", .. ConversionArguments]);
        Assert.Equal(0, convert.ExitCode);

        byte[] embedded = EmbeddedBytes();
        byte[] fresh = File.ReadAllBytes(output);
        Assert.Equal(embedded.Length, fresh.Length);
        using var dir2 = new TempDirectory();
        using GlqFile expected = GlqFile.Open(dir2.Write("embedded.glq", embedded));
        using GlqFile actual = GlqFile.Open(output);
        Assert.Equal(expected.Tensors.Select(t => (t.Name, t.DType, string.Join('x', t.Shape))), actual.Tensors.Select(t => (t.Name, t.DType, string.Join('x', t.Shape))));
        Assert.Equal(expected.Metadata.Entries.Select(e => e.Key).Order(StringComparer.Ordinal), actual.Metadata.Entries.Select(e => e.Key).Order(StringComparer.Ordinal));
        foreach ((string key, GlqValue value) in expected.Metadata.Entries.Where(e => !e.Key.StartsWith("glowq.score.", StringComparison.Ordinal)))
        {
            Assert.True(value.Equals(actual.Metadata.Find(key)), $"metadata {key} differs");
        }

        int differing = 0;
        for (int i = 0; i < embedded.Length; i++)
        {
            differing += embedded[i] != fresh[i] ? 1 : 0;
        }

        Assert.True(differing <= embedded.Length / 200,
            $"{differing} of {embedded.Length} bytes differ from a fresh conversion; re-run the command in models/README.md");
    }

    [Fact]
    public void GenerateWithoutAModel_RunsTheBundledGlqOnTheInt4Runtime()
    {
        CliRun run = CliRun.Of("generate", "-p", "Once upon a time", "--temperature", "0", "-n", "20");
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("stories260K.glq (bundled) (.glq glowq, int4 runtime, 20/20 units restored", run.Stderr);
        Assert.StartsWith(", there was a little girl named Lily.", run.Stdout);
    }

    [Theory]
    [InlineData("none")]
    [InlineData("all")]
    [InlineData("0.5")]
    public void GreedyOutputOfTheInt4Runtime_EqualsTheConvertersSimulation(string restore)
    {
        string[] common = ["generate", "-p", "Once upon a time", "--temperature", "0", "-n", "120", "-q", "--restore", restore];
        CliRun runtime = CliRun.Of(common);
        CliRun simulation = CliRun.Of([.. common, "--simulated"]);
        Assert.Equal(0, runtime.ExitCode);
        Assert.Equal(0, simulation.ExitCode);
        Assert.Equal(simulation.Stdout, runtime.Stdout);
    }

    [Fact]
    public void RestoringNoUnitsAndAllUnits_GiveDifferentText()
    {
        // Guards the equality test above: the mask must reach the model, or 'none' and 'all' would agree trivially.
        string[] common = ["generate", "-p", "Once upon a time", "--temperature", "0", "-n", "120", "-q", "--restore"];
        Assert.NotEqual(CliRun.Of([.. common, "none"]).Stdout, CliRun.Of([.. common, "all"]).Stdout);
    }

    [Fact]
    public void ChatWithoutAModel_UsesTheBundledModelsPlainFormat()
    {
        CliRun chat = CliRun.WithStdin(new StringReader("Once upon a time\n"), ["chat", "--temperature", "0", "-n", "20"]);
        Assert.Equal(0, chat.ExitCode);
        Assert.Contains("stories260K.glq (bundled)", chat.Stderr);
        Assert.Contains("chat format plain", chat.Stderr);
        Assert.StartsWith(", there was a little girl named Lily.", chat.Stdout);
    }
}
