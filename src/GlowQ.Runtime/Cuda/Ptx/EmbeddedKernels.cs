using System.Collections.Frozen;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace GlowQ.Runtime.Cuda.Ptx;

/// <summary>
/// The GPU kernels' PTX modules and launch-ABI manifest, compiled ahead of time by build/GlowQ.PtxCompiler and embedded
/// in this assembly (ILGPU cannot run under Native AOT, so the binary carries PTX and the driver JIT-compiles it).
/// Each kernel is a standalone module: load one CUmodule per kernel.
/// </summary>
public static class EmbeddedKernels
{
    /// <summary>Prefix of every embedded PTX resource's logical name (see GlowQ.Runtime.csproj).</summary>
    public const string ResourcePrefix = "GlowQ.Runtime.Ptx.";

    /// <summary>Logical name of the embedded manifest.</summary>
    public const string ManifestResourceName = ResourcePrefix + "kernels.json";

    private static readonly Lazy<PtxKernelManifest> LazyManifest = new(LoadManifest);
    private static readonly Lazy<FrozenDictionary<string, PtxKernelEntry>> LazyByName =
        new(() => Manifest.Kernels.ToFrozenDictionary(k => k.Name, StringComparer.Ordinal));

    /// <summary>The manifest: target, ISA and each kernel's entry name and <c>.param</c> list.</summary>
    public static PtxKernelManifest Manifest => LazyManifest.Value;

    /// <summary>Kernel names (the C# method names), in manifest order.</summary>
    public static IReadOnlyList<string> Names => Manifest.Kernels.Select(k => k.Name).ToArray();

    /// <summary>The manifest entry of one kernel.</summary>
    /// <exception cref="KeyNotFoundException">No kernel of that name is embedded.</exception>
    public static PtxKernelEntry GetEntry(string name) =>
        LazyByName.Value.TryGetValue(name, out var entry)
            ? entry
            : throw new KeyNotFoundException($"no embedded GPU kernel named '{name}' (have: {string.Join(", ", Names)})");

    /// <summary>
    /// The PTX text of one kernel, exactly as committed. <c>cuModuleLoadData</c> reads a NUL-terminated string: use
    /// <see cref="GetPtxImage"/> for the driver.
    /// </summary>
    public static byte[] GetPtx(string name) => ReadResource(ResourcePrefix + GetEntry(name).File);

    /// <summary>The PTX text of one kernel followed by a NUL byte, ready for <c>cuModuleLoadData(Ex)</c>.</summary>
    public static byte[] GetPtxImage(string name)
    {
        var ptx = GetPtx(name);
        var image = new byte[ptx.Length + 1];
        ptx.CopyTo(image, 0);
        return image;
    }

    private static PtxKernelManifest LoadManifest() =>
        JsonSerializer.Deserialize(ReadResource(ManifestResourceName), PtxManifestJsonContext.Default.PtxKernelManifest)
        ?? throw new InvalidDataException($"embedded resource {ManifestResourceName} holds no manifest");

    private static byte[] ReadResource(string logicalName)
    {
        using var stream = typeof(EmbeddedKernels).Assembly.GetManifestResourceStream(logicalName)
            ?? throw new InvalidDataException($"embedded resource {logicalName} is missing from {typeof(EmbeddedKernels).Assembly.GetName().Name}");
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return buffer.ToArray();
    }

    /// <summary>Logical names of every embedded PTX/manifest resource (for checks that nothing is stale or missing).</summary>
    public static IReadOnlyList<string> ResourceNames =>
        typeof(EmbeddedKernels).Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToArray();

    /// <summary>The bytes of one embedded resource by its file name in Cuda/Ptx (e.g. <c>kernels.json</c>).</summary>
    public static byte[] GetResourceBytes(string fileName) => ReadResource(ResourcePrefix + fileName);
}

/// <summary>What build/GlowQ.PtxCompiler produced: one PTX module per kernel, all for one target and ISA.</summary>
/// <param name="Target">PTX <c>.target</c>, e.g. <c>sm_53</c>: the oldest GPU the modules load on.</param>
/// <param name="Version">PTX ISA <c>.version</c>, e.g. <c>6.0</c>: the driver must support at least this.</param>
/// <param name="Kernels">One entry per kernel, ordered by name.</param>
public sealed record PtxKernelManifest(string Target, string Version, IReadOnlyList<PtxKernelEntry> Kernels);

/// <summary>One kernel's module and launch ABI.</summary>
/// <param name="Name">The C# kernel method's name.</param>
/// <param name="Entry">The <c>.entry</c> name to pass to <c>cuModuleGetFunction</c>.</param>
/// <param name="File">The PTX file name (also the embedded resource's suffix).</param>
/// <param name="ImplicitlyGrouped">True when the first parameter is the launch extent (ILGPU bounds-checks it).</param>
/// <param name="Parameters">The <c>.entry</c> parameters in launch order.</param>
public sealed record PtxKernelEntry(
    string Name,
    string Entry,
    string File,
    bool ImplicitlyGrouped,
    IReadOnlyList<PtxKernelParameter> Parameters);

/// <summary>One <c>.param</c> of a kernel entry.</summary>
/// <param name="Index">Position in the <c>kernelParams</c> array.</param>
/// <param name="Source">The C# parameter it carries (<c>extent</c> for an implicitly grouped kernel's index).</param>
/// <param name="PtxType">
/// PTX type: <c>b32</c>, <c>f32</c>, <c>b16</c>, … or <c>b8</c> for an aligned byte array (ArrayView and structs).
/// </param>
/// <param name="Size">Size in bytes the launch must supply.</param>
/// <param name="Alignment">Alignment in bytes (the explicit <c>.align</c>, else the scalar's size).</param>
public sealed record PtxKernelParameter(int Index, string Source, string PtxType, int Size, int Alignment);

/// <summary>AOT-safe (source-generated) JSON for the manifest; the compiler writes with the same options.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    WriteIndented = true,
    NewLine = "\n",
    IndentSize = 2)]
[JsonSerializable(typeof(PtxKernelManifest))]
public sealed partial class PtxManifestJsonContext : JsonSerializerContext
{
}
