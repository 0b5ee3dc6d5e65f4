using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;
using GlowQ.Kernels;
using GlowQ.Runtime.Cuda.Ptx;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace GlowQ.PtxCompiler;

/// <summary>One kernel compiled to a standalone PTX module, with its launch ABI.</summary>
internal sealed record CompiledKernel(MethodInfo Method, string Ptx, PtxKernelEntry Entry);

/// <summary>
/// Compiles ILGPU kernel methods to PTX without a GPU. Every kernel is compiled for one portable target: <c>sm_53</c>
/// with PTX ISA 6.0 loads on every Jetson from the Nano up and on current datacentre GPUs through the driver JIT
/// (ISA 6.0 is ILGPU's floor, since it always emits <c>shfl.sync</c>). ILGPU does not check the target/ISA pair,
/// so they are fixed here rather than chosen per device.
/// </summary>
internal static partial class KernelCompiler
{
    /// <summary>The PTX <c>.target</c> every module is compiled for.</summary>
    public const string TargetName = "sm_53";

    /// <summary>The PTX ISA <c>.version</c> every module declares.</summary>
    public const string VersionName = "6.0";

    private static readonly CudaArchitecture Architecture = CudaArchitecture.SM_53;
    private static readonly CudaInstructionSet InstructionSet = CudaInstructionSet.ISA_60;

    /// <summary>The static methods marked <see cref="GpuKernelAttribute"/> in <paramref name="assembly"/>, ordered by name.</summary>
    public static IReadOnlyList<MethodInfo> FindKernels(Assembly assembly)
    {
        ArgumentNullException.ThrowIfNull(assembly);
        var kernels = assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.DeclaredOnly))
            .Where(m => m.IsDefined(typeof(GpuKernelAttribute), inherit: false))
            .OrderBy(m => m.Name, StringComparer.Ordinal)
            .ToList();
        // One file per kernel, named after the method: two kernels of one name would overwrite each other.
        var duplicate = kernels.GroupBy(m => m.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new InvalidOperationException(
                $"[GpuKernel] method name '{duplicate.Key}' is used by {string.Join(" and ", duplicate.Select(m => m.DeclaringType?.FullName))}; kernel names must be unique");
        }

        return kernels;
    }

    /// <summary>Whether ILGPU treats the kernel as implicitly grouped: its first parameter is the launch extent.</summary>
    public static bool IsImplicitlyGrouped(MethodInfo method)
    {
        ArgumentNullException.ThrowIfNull(method);
        var parameters = method.GetParameters();
        return parameters.Length > 0 && typeof(IIndex).IsAssignableFrom(parameters[0].ParameterType);
    }

    /// <summary>
    /// Compiles one kernel method and reads its launch ABI back out of the PTX. Each kernel gets a fresh ILGPU context:
    /// ILGPU numbers parameters and helpers from context-wide counters, so sharing one would make a kernel's PTX
    /// depend on which kernels were compiled before it (adding a kernel would rewrite every later file).
    /// </summary>
    public static CompiledKernel Compile(MethodInfo method)
    {
        ArgumentNullException.ThrowIfNull(method);
        var name = method.Name;
        var implicitlyGrouped = IsImplicitlyGrouped(method);
        var description = implicitlyGrouped
            ? EntryPointDescription.FromImplicitlyGroupedKernel(method)
            : EntryPointDescription.FromExplicitlyGroupedKernel(method);
        string ptx;
        try
        {
            using var context = Context.Create(builder => builder.Cuda().EnableAlgorithms());
            using var backend = new PTXBackend(context, new CudaCapabilityContext(Architecture), Architecture, InstructionSet, null!);
            var compiled = (PTXCompiledKernel)backend.Compile(description, KernelSpecialization.Empty);
            ptx = Normalize(compiled.PTXAssembly);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidOperationException($"kernel {method.DeclaringType?.FullName}.{name} does not compile to PTX: {e.GetBaseException().Message}", e);
        }

        // The manifest promises one target and ISA for every module; hold ILGPU to it.
        if (!ptx.Contains($"\n.target {TargetName}", StringComparison.Ordinal) || !ptx.Contains($"\n.version {VersionName}", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"kernel {name}: PTX does not declare .version {VersionName} / .target {TargetName}");
        }

        var entry = PtxEntryParser.ParseSingleEntry(ptx);
        var sources = method.GetParameters().Select(p => p.Name ?? $"arg{p.Position}").ToList();
        if (implicitlyGrouped)
        {
            sources[0] = "extent";
        }

        // The runtime packs one argument per C# parameter; a PTX list of another length means ILGPU split or added
        // parameters, and the launch wrappers would silently misalign.
        if (sources.Count != entry.Parameters.Count)
        {
            throw new InvalidOperationException(
                $"kernel {name}: PTX entry {entry.Name} has {entry.Parameters.Count} parameters but the method has {sources.Count}");
        }

        var parameters = entry.Parameters
            .Select((p, i) => new PtxKernelParameter(i, sources[i], p.PtxType, p.Size, p.Alignment))
            .ToArray();
        return new CompiledKernel(method, ptx, new PtxKernelEntry(name, entry.Name, name + ".ptx", implicitlyGrouped, parameters));
    }

    /// <summary>The manifest for a set of compiled kernels.</summary>
    public static PtxKernelManifest Manifest(IEnumerable<CompiledKernel> kernels) =>
        new(TargetName, VersionName, kernels.Select(k => k.Entry).OrderBy(e => e.Name, StringComparer.Ordinal).ToArray());

    // ILGPU suffixes parameter names (_hidden_794) and labels (L_7911) with process-wide counters, so a kernel's PTX
    // would change whenever another kernel is compiled before it. Renumbering each such name by first appearance,
    // per prefix, gives one canonical text per kernel; the rename is a bijection over names of exactly this shape,
    // so it cannot merge two names or clash with any other identifier. Line endings are fixed for the same reason.
    internal static string Normalize(string ptx)
    {
        var text = ptx.Replace("\r\n", "\n", StringComparison.Ordinal);
        var renamed = new Dictionary<string, string>(StringComparer.Ordinal);
        var nextByPrefix = new Dictionary<string, int>(StringComparer.Ordinal);
        text = CounterSuffixedName().Replace(text, match =>
        {
            if (!renamed.TryGetValue(match.Value, out var name))
            {
                var prefix = match.Groups[1].Value;
                var next = nextByPrefix.GetValueOrDefault(prefix);
                nextByPrefix[prefix] = next + 1;
                name = prefix + "_" + next.ToString(CultureInfo.InvariantCulture);
                renamed.Add(match.Value, name);
            }

            return name;
        });
        return text.EndsWith('\n') ? text : text + "\n";
    }

    [GeneratedRegex(@"(?<![\w$%.])(L|_[A-Za-z][A-Za-z0-9]*)_[0-9]+(?![\w$])", RegexOptions.CultureInvariant)]
    private static partial Regex CounterSuffixedName();
}
