using System.Reflection;
using System.Text;
using System.Text.Json;
using GlowQ.Kernels;
using GlowQ.Runtime.Cuda.Ptx;

namespace GlowQ.PtxCompiler;

/// <summary>
/// <c>glowq-ptx [--check] [--out DIR]</c>: compiles every [GpuKernel] to DIR (default src/GlowQ.Runtime/Cuda/Ptx), or with
/// <c>--check</c> compiles in memory and fails, one line per kernel, where the committed files differ.
/// </summary>
internal static class PtxCompilerCommand
{
    public const string ManifestFileName = "kernels.json";
    private const string RegenerateHint = "run: dotnet run -c Release --project build/GlowQ.PtxCompiler";
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        var check = false;
        string? outDir = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--check":
                    check = true;
                    break;
                case "--out" when i + 1 < args.Length:
                    outDir = args[++i];
                    break;
                case "-h" or "--help":
                    output.WriteLine("usage: dotnet run -c Release --project build/GlowQ.PtxCompiler -- [--check] [--out DIR]");
                    return 0;
                default:
                    error.WriteLine($"ptx-compiler: unknown or incomplete argument '{args[i]}' (usage: [--check] [--out DIR])");
                    return 2;
            }
        }

        try
        {
            outDir ??= DefaultOutputDirectory();
            var files = Build(typeof(GpuKernelAttribute).Assembly, out var manifest);
            if (check)
            {
                var problems = Compare(files, outDir);
                foreach (var problem in problems)
                {
                    error.WriteLine($"ptx-compiler: {problem} ({RegenerateHint})");
                }

                if (problems.Count > 0)
                {
                    return 1;
                }

                output.WriteLine($"ptx-compiler: {manifest.Kernels.Count} kernel(s) in {outDir} match a fresh compilation");
                return 0;
            }

            Write(files, outDir);
            foreach (var kernel in manifest.Kernels)
            {
                output.WriteLine($"ptx-compiler: {kernel.File} ({files[kernel.File].Length} bytes, entry {kernel.Entry}, {kernel.Parameters.Count} params)");
            }

            output.WriteLine($"ptx-compiler: wrote {manifest.Kernels.Count} kernel(s) and {ManifestFileName} to {outDir}");
            return 0;
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or IOException or UnauthorizedAccessException or ReflectionTypeLoadException)
        {
            error.WriteLine($"ptx-compiler: {e.Message}");
            return 2;
        }
    }

    /// <summary>Every output file by name (the PTX modules and the manifest), compiled from <paramref name="assembly"/>.</summary>
    public static SortedDictionary<string, byte[]> Build(Assembly assembly, out PtxKernelManifest manifest)
    {
        var kernels = KernelCompiler.FindKernels(assembly).Select(KernelCompiler.Compile).ToList();
        manifest = KernelCompiler.Manifest(kernels);
        var files = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var kernel in kernels)
        {
            files.Add(kernel.Entry.File, Utf8.GetBytes(kernel.Ptx));
        }

        files.Add(ManifestFileName, SerializeManifest(manifest));
        return files;
    }

    public static byte[] SerializeManifest(PtxKernelManifest manifest)
    {
        var json = JsonSerializer.Serialize(manifest, PtxManifestJsonContext.Default.PtxKernelManifest);
        return Utf8.GetBytes(json + "\n");
    }

    /// <summary>One line per difference between <paramref name="files"/> and what <paramref name="directory"/> holds.</summary>
    public static IReadOnlyList<string> Compare(IReadOnlyDictionary<string, byte[]> files, string directory)
    {
        var problems = new List<string>();
        foreach (var (name, bytes) in files)
        {
            var path = Path.Combine(directory, name);
            if (!File.Exists(path))
            {
                problems.Add($"{name}: missing from {directory}");
            }
            else if (!File.ReadAllBytes(path).AsSpan().SequenceEqual(bytes))
            {
                problems.Add($"{name}: committed file differs from a fresh compilation");
            }
        }

        foreach (var stale in StalePtxFiles(files, directory))
        {
            problems.Add($"{Path.GetFileName(stale)}: no [GpuKernel] method compiles to it any more (stale)");
        }

        return problems;
    }

    /// <summary>Writes <paramref name="files"/> and deletes PTX no kernel produces any more.</summary>
    public static void Write(IReadOnlyDictionary<string, byte[]> files, string directory)
    {
        Directory.CreateDirectory(directory);
        foreach (var (name, bytes) in files)
        {
            var path = Path.Combine(directory, name);
            // Untouched files keep their timestamps, so an unchanged run does not force the runtime to rebuild.
            if (!File.Exists(path) || !File.ReadAllBytes(path).AsSpan().SequenceEqual(bytes))
            {
                File.WriteAllBytes(path, bytes);
            }
        }

        foreach (var stale in StalePtxFiles(files, directory))
        {
            File.Delete(stale);
        }
    }

    private static IEnumerable<string> StalePtxFiles(IReadOnlyDictionary<string, byte[]> files, string directory) =>
        Directory.Exists(directory)
            ? Directory.EnumerateFiles(directory, "*.ptx")
                .Where(p => !files.ContainsKey(Path.GetFileName(p)))
                .Order(StringComparer.Ordinal)
            : [];

    /// <summary>src/GlowQ.Runtime/Cuda/Ptx of the checkout the tool runs in (found from the working directory up).</summary>
    public static string DefaultOutputDirectory()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "GlowQ.Edge.sln")))
                {
                    return Path.Combine(dir.FullName, "src", "GlowQ.Runtime", "Cuda", "Ptx");
                }
            }
        }

        throw new InvalidOperationException("cannot find GlowQ.Edge.sln above the working directory; pass --out DIR");
    }
}
