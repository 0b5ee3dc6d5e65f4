using System.Text;
using GlowQ.Runtime.Profiles;
using GlowQ.TestSupport;

namespace GlowQ.Runtime.Tests.Profiles;

public sealed class DeviceProfilesTests
{
    [Fact]
    public void EveryProfileFile_IsEmbedded_AndValid()
    {
        string[] files = Directory.GetFiles(Path.Combine(RepositoryRoot(), "device-profiles"), "*.json").Select(Path.GetFileNameWithoutExtension).Order(StringComparer.Ordinal).ToArray()!;
        Assert.Equal(files, DeviceProfiles.Builtin.Select(p => p.Name));
        Assert.Contains("orin-nano-8gb", files);
        Assert.Contains("cpu", files);
        Assert.All(DeviceProfiles.Builtin.Where(p => p.Backend == "cuda"), p => Assert.True(p.MemoryGib > p.ReservedGib));
    }

    [Theory]
    [InlineData("NVIDIA Jetson Orin Nano Developer Kit", "orin-nano-8gb")]
    [InlineData("NVIDIA Jetson AGX Orin Developer Kit", "agx-orin-64gb")]
    [InlineData("NVIDIA Orin NX Developer Kit", "orin-nx-16gb")]
    [InlineData("NVIDIA Jetson Xavier NX Developer Kit", "xavier-nx")]
    [InlineData("NVIDIA Jetson AGX Xavier", "agx-xavier")]
    [InlineData("NVIDIA Jetson Nano Developer Kit", "jetson-nano-4gb")]
    [InlineData("Raspberry Pi 5 Model B", null)]
    public void Detect_MatchesTheDeviceTreeModel(string model, string? expected) =>
        Assert.Equal(expected, DeviceProfiles.Detect(model)?.Name);

    [Fact]
    public void Resolve_WithNothingGiven_OnAnUnknownMachine_IsTheCpuProfile()
    {
        Assert.Equal("cpu", DeviceProfiles.Resolve(null, () => null).Name);
        Assert.Equal("orin-nx-16gb", DeviceProfiles.Resolve(null, () => "NVIDIA Orin NX Developer Kit").Name);
    }

    [Fact]
    public void Resolve_UnknownName_ListsTheBuiltInProfiles()
    {
        var e = Assert.Throws<DeviceProfileException>(() => DeviceProfiles.Resolve("orin-mega"));
        Assert.Contains("unknown device profile 'orin-mega'", e.Message);
        Assert.Contains("orin-nano-8gb", e.Message);
    }

    [Theory]
    [InlineData("""{ "name": "x", "backend": "cuda", "compute_capability": "8.7", "memory_gib": -2 }""", "field 'memory_gib' must be positive")]
    [InlineData("""{ "name": "x", "backend": "tpu" }""", "field 'backend' must be cuda or cpu, got 'tpu'")]
    [InlineData("""{ "name": "x", "backend": "cuda" }""", "field 'compute_capability' must be MAJOR.MINOR")]
    [InlineData("""{ "name": "x", "backend": "cpu", "restore_fraction": 1.5 }""", "field 'restore_fraction' must be in [0, 1], got 1.5")]
    [InlineData("""{ "name": "x", "backend": "cpu", "kv_cache_dtype": "int8" }""", "field 'kv_cache_dtype' must be f16 or f32")]
    [InlineData("""{ "name": "x", "backend": "cpu", "memory_gib": 4, "reserved_gib": 4 }""", "field 'reserved_gib' must be at least 0 and below memory_gib")]
    [InlineData("""{ "name": "x", "backend": "cpu", "colour": "red" }""", "not a valid device profile")]
    [InlineData("""{ "backend": "cpu" }""", "not a valid device profile")]
    [InlineData("""[1, 2]""", "not a valid device profile")]
    public void BadProfileFile_NamesTheFileAndTheField(string json, string expected)
    {
        using var dir = new TempDirectory();
        string path = dir.File("bad.json");
        File.WriteAllText(path, json);
        var e = Assert.Throws<DeviceProfileException>(() => DeviceProfiles.Resolve(path));
        Assert.StartsWith(path + ": ", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void ProfileFile_ByPath_IsRead_WithDefaultsForOmittedFields()
    {
        using var dir = new TempDirectory();
        string path = dir.File("mine.json");
        File.WriteAllText(path, """{ "name": "mine", "backend": "cpu", "memory_gib": 2, "reserved_gib": 0.5, "threads": 3 }""");
        DeviceProfile p = DeviceProfiles.Resolve(path);
        Assert.Equal(("mine", 3, 2048, 1.0, "f16"), (p.Name, p.Threads, p.ContextLength, p.RestoreFraction, p.KvCacheDtype));
        Assert.Equal((long)(1.5 * 1024 * 1024 * 1024), p.BudgetBytes(machineBytes: 64L << 30)); // the profile's memory, not the machine's
        Assert.Equal((8L << 30) - (1L << 29), DeviceProfiles.Parse(Encoding.UTF8.GetBytes("""{ "name": "m", "backend": "cpu", "reserved_gib": 0.5 }"""), "m").BudgetBytes(8L << 30));
    }

    internal static string RepositoryRoot()
    {
        string? dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "GlowQ.Edge.sln")))
        {
            dir = Path.GetDirectoryName(dir);
        }

        return dir ?? throw new DirectoryNotFoundException("repository root (GlowQ.Edge.sln) not found above the test binaries");
    }
}
