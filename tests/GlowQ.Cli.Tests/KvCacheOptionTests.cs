using System.Globalization;
using System.Text.RegularExpressions;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Profiles;
using GlowQ.TestSupport;

namespace GlowQ.Cli.Tests;

public sealed partial class KvCacheOptionTests(Stories260KGlq model) : IClassFixture<Stories260KGlq>
{
    private static CliRun Generate(string modelPath, params string[] extra) =>
        CliRun.Of(["generate", "-m", modelPath, "-p", "Once", "-n", "4", "--temperature", "0", "--context", "512", .. extra]);

    [Fact]
    public void KvCacheF16_IsAccepted_ForTheFp32EngineAndTheInt4Runtime_AndNamedInTheSummary()
    {
        foreach (string path in new[] { SharedData.Stories260KBin, model.Path })
        {
            CliRun run = Generate(path, "--kv-cache", "f16");
            Assert.True(run.ExitCode == 0, run.Stderr);
            // stories260K: 5 layers × 4 kv heads × head dim 8 × 512 positions × keys and values × 2 bytes.
            Assert.Contains("KV cache f16 (0.3 MB)", run.Stderr);
            Assert.NotEmpty(run.Stdout);
        }
    }

    [Fact]
    public void DefaultKvCache_IsF32ForTheFp32Engine_AndTheProfilesDtypeForGlqModels()
    {
        Assert.Contains("KV cache f32 (0.7 MB)", Generate(SharedData.Stories260KBin, "--profile", "orin-nano-8gb").Stderr);
        Assert.Contains("KV cache f16", Generate(model.Path, "--profile", "orin-nano-8gb").Stderr);
        Assert.Contains("KV cache f32", Generate(model.Path, "--profile", "cpu").Stderr);
        Assert.Contains("KV cache f32", Generate(model.Path, "--profile", "orin-nano-8gb", "--kv-cache", "f32").Stderr);
    }

    [Theory]
    [InlineData("bf16")]
    [InlineData("")]
    public void BadKvCacheValue_IsOneLineError(string value)
    {
        CliRun run = Generate(model.Path, "--kv-cache", value);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"--kv-cache must be f16 or f32, got '{value}'", run.SingleErrorLine());
        Assert.Empty(run.Stdout);
    }

    [Fact]
    public void MemoryBudget_CountsTheF16CacheAtHalfTheSize_SoABudgetTheF32CacheExceedsFitsIt()
    {
        // A budget a quarter of the f32 KV cache short of the whole f32 plan: f32 is refused, naming --kv-cache f16
        // as a remedy; f16 needs half the KV cache less and fits.
        MemoryPlan f32Plan;
        using (GlqFile file = GlqFile.Open(model.Path))
        {
            GlqModel glq = GlqModel.Read(file);
            f32Plan = MemoryPlan.For(file, glq, glq.DefaultMask, 512, kvElementBytes: 4);
        }

        double budgetGib = (f32Plan.TotalBytes - (f32Plan.KvCacheBytes / 4)) / (1024.0 * 1024 * 1024);
        using var dir = new TempDirectory();
        string profile = dir.File("kv.json");
        File.WriteAllText(profile, string.Create(CultureInfo.InvariantCulture,
            $$"""{ "name": "kv", "backend": "cpu", "memory_gib": {{budgetGib:R}}, "reserved_gib": 0, "kv_cache_dtype": "f32" }"""));

        CliRun f32 = Generate(model.Path, "--profile", profile);
        Assert.Equal(1, f32.ExitCode);
        string error = f32.SingleErrorLine();
        Assert.Contains("--kv-cache f16", error);
        double f32Mib = KvMib(error, "f32");
        // Printed to two decimals: within half a step of the plan.
        Assert.Equal(f32Plan.KvCacheBytes / (1024.0 * 1024), f32Mib, 0.0051);

        CliRun f16 = Generate(model.Path, "--profile", profile, "--kv-cache", "f16");
        Assert.True(f16.ExitCode == 0, f16.Stderr);

        // A budget too small for either: both refusals itemise the cache, f16 at half the size.
        File.WriteAllText(profile, """{ "name": "kv", "backend": "cpu", "memory_gib": 0.0001, "reserved_gib": 0 }""");
        double f32Refused = KvMib(Generate(model.Path, "--profile", profile, "--kv-cache", "f32").SingleErrorLine(), "f32");
        double f16Refused = KvMib(Generate(model.Path, "--profile", profile, "--kv-cache", "f16").SingleErrorLine(), "f16");
        Assert.Equal(f32Refused / 2, f16Refused, 0.006);
    }

    private static double KvMib(string error, string dtype)
    {
        Match m = KvCacheSize().Match(error);
        Assert.True(m.Success && m.Groups[1].Value == dtype, $"no {dtype} KV cache size in: {error}");
        return double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"(f16|f32) KV cache ([0-9.]+) MiB at")]
    private static partial Regex KvCacheSize();
}
