using System.Text.Json.Serialization;

namespace GlowQ.Runtime.Profiles;

/// <summary>
/// What the runtime needs to know about a target device (device-profiles/README.md describes each field): how much
/// memory it may plan with, and the defaults that suit it.
/// </summary>
/// <remarks>Settable rather than init-only: the JSON source generator assigns every init-only property, so omitted
/// fields would lose their defaults.</remarks>
public sealed record DeviceProfile
{
    public required string Name { get; set; }

    public string Description { get; set; } = "";

    /// <summary>cuda or cpu.</summary>
    public required string Backend { get; set; }

    /// <summary>The GPU's compute capability ("8.7"); null for cpu.</summary>
    public string? ComputeCapability { get; set; }

    /// <summary>Memory the device has, GiB; null means "read it from the machine".</summary>
    public double? MemoryGib { get; set; }

    /// <summary>Memory left to the OS and other processes, GiB.</summary>
    public double ReservedGib { get; set; }

    public double? MemoryBandwidthGbs { get; set; }

    public string Cpu { get; set; } = "";

    /// <summary>Worker threads; 0 means one per core.</summary>
    public int Threads { get; set; }

    public int ContextLength { get; set; } = 2048;

    public double RestoreFraction { get; set; } = 1;

    /// <summary>f16 or f32.</summary>
    public string KvCacheDtype { get; set; } = "f16";

    /// <summary>Substrings of /proc/device-tree/model that identify the device.</summary>
    public IReadOnlyList<string> Detect { get; set; } = [];

    public static readonly IReadOnlyList<string> Backends = ["cuda", "cpu"];

    public static readonly IReadOnlyList<string> KvCacheDtypes = ["f16", "f32"];

    /// <summary>Bytes of one KV cache element.</summary>
    [JsonIgnore]
    public int KvElementBytes => KvCacheDtype == "f16" ? 2 : 4;

    /// <summary>The memory the runtime may plan with: the device's (or the machine's) minus the reserve.</summary>
    public long BudgetBytes(long machineBytes)
    {
        double total = MemoryGib is double gib ? gib * Gib : machineBytes;
        return (long)Math.Max(0, total - ReservedGib * Gib);
    }

    internal const double Gib = 1024.0 * 1024 * 1024;
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, ReadCommentHandling = System.Text.Json.JsonCommentHandling.Skip,
    AllowTrailingCommas = true, UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow, RespectNullableAnnotations = true)]
[JsonSerializable(typeof(DeviceProfile))]
internal sealed partial class DeviceProfileJsonContext : JsonSerializerContext;
