using System.Reflection;
using System.Text;
using GlowQ.Kernels;
using GlowQ.PtxCompiler;
using GlowQ.Runtime.Cuda.Ptx;
using GlowQ.TestSupport;
using ILGPU;
using ILGPU.Runtime;

namespace GlowQ.Kernels.Tests;

/// <summary>Kernels that exist only to exercise the PTX compiler, independent of which real kernels ship.</summary>
internal static class PtxTestKernels
{
    public static void PtxTestScaleAdd(Index1D index, ArrayView<float> data, float factor, ILGPU.Half offset, int count, bool flag)
    {
        if (flag && index < count)
        {
            data[index] = data[index] * factor + (float)offset;
        }
    }

    public static void PtxTestGroupSum(ArrayView<float> data, ArrayView<float> sums)
    {
        var shared = SharedMemory.Allocate<float>(64);
        shared[Group.IdxX] = data[Grid.GlobalIndex.X];
        Group.Barrier();
        if (Group.IsFirstThread)
        {
            var sum = 0f;
            for (var i = 0; i < Group.DimX; i++)
            {
                sum += shared[i];
            }

            sums[Grid.IdxX] = sum;
        }
    }

    public static MethodInfo Method(string name) =>
        typeof(PtxTestKernels).GetMethod(name, BindingFlags.Public | BindingFlags.Static)
        ?? throw new MissingMethodException(nameof(PtxTestKernels), name);
}

public sealed class PtxCompilationTests
{
    private static readonly Assembly KernelAssembly = typeof(GpuKernelAttribute).Assembly;

    private static string CommittedDirectory => PtxCompilerCommand.DefaultOutputDirectory();

    // ---- the compiler itself, on test-only kernels ----

    [Fact]
    public void An_implicitly_grouped_kernel_compiles_to_one_sm53_isa60_entry_named_after_the_method()
    {
        var kernel = KernelCompiler.Compile(PtxTestKernels.Method(nameof(PtxTestKernels.PtxTestScaleAdd)));

        Assert.Contains("\n.version 6.0\n", kernel.Ptx, StringComparison.Ordinal);
        Assert.Contains("\n.target sm_53\n", kernel.Ptx, StringComparison.Ordinal);
        Assert.Equal("Kernel_PtxTestScaleAdd", kernel.Entry.Entry);
        Assert.Equal("PtxTestScaleAdd.ptx", kernel.Entry.File);
        Assert.True(kernel.Entry.ImplicitlyGrouped);
        Assert.Single(PtxEntryParser.ParseEntries(kernel.Ptx));
    }

    [Fact]
    public void Parameters_of_a_test_kernel_are_extent_then_one_per_argument_with_their_launch_sizes()
    {
        var kernel = KernelCompiler.Compile(PtxTestKernels.Method(nameof(PtxTestKernels.PtxTestScaleAdd)));

        var layout = kernel.Entry.Parameters.Select(p => (p.Index, p.Source, p.Size, p.Alignment)).ToArray();
        Assert.Equal(
            new[]
            {
                (0, "extent", 4, 4),
                (1, "data", 16, 8),
                (2, "factor", 4, 4),
                (3, "offset", 2, 2),
                (4, "count", 4, 4),
                (5, "flag", 4, 4), // bool is passed as 32 bits, not one byte
            },
            layout);
        Assert.Equal("b8", kernel.Entry.Parameters[1].PtxType);
        Assert.Equal("f32", kernel.Entry.Parameters[2].PtxType);
    }

    [Fact]
    public void An_explicitly_grouped_kernel_has_no_extent_parameter()
    {
        var kernel = KernelCompiler.Compile(PtxTestKernels.Method(nameof(PtxTestKernels.PtxTestGroupSum)));

        Assert.False(kernel.Entry.ImplicitlyGrouped);
        Assert.Equal(new[] { "data", "sums" }, kernel.Entry.Parameters.Select(p => p.Source));
        Assert.All(kernel.Entry.Parameters, p => Assert.Equal((16, 8), (p.Size, p.Alignment)));
        Assert.Contains("bar.sync", kernel.Ptx, StringComparison.Ordinal);
    }

    [Fact]
    public void A_kernels_PTX_does_not_depend_on_what_was_compiled_before_it()
    {
        var method = PtxTestKernels.Method(nameof(PtxTestKernels.PtxTestScaleAdd));
        var first = KernelCompiler.Compile(method).Ptx;
        KernelCompiler.Compile(PtxTestKernels.Method(nameof(PtxTestKernels.PtxTestGroupSum)));

        Assert.Equal(first, KernelCompiler.Compile(method).Ptx);
    }

    [Fact]
    public void Methods_without_the_GpuKernel_attribute_are_not_shipped()
    {
        Assert.Empty(KernelCompiler.FindKernels(typeof(PtxTestKernels).Assembly));
        Assert.All(KernelCompiler.FindKernels(KernelAssembly), m => Assert.True(m.IsStatic && m.IsDefined(typeof(GpuKernelAttribute))));
    }

    // ---- the PTX parameter parser ----

    [Fact]
    public void The_entry_parser_reads_alignment_array_length_and_scalar_sizes()
    {
        const string ptx = """
            .version 6.0
            .target sm_53
            .visible .entry Kernel_X(
                .param .b32 Kernel_X_param_0,
                .param .align 8 .b8 Kernel_X_param_1[16],
                .param .f32 Kernel_X_param_2,
                .param .b16 Kernel_X_param_3,
                .param .u64 .ptr .global .align 4 Kernel_X_param_4
            )
            { ret; }
            """;

        var entry = PtxEntryParser.ParseSingleEntry(ptx);

        Assert.Equal("Kernel_X", entry.Name);
        Assert.Equal(
            new[] { ("b32", 4, 4), ("b8", 16, 8), ("f32", 4, 4), ("b16", 2, 2), ("u64", 8, 8) },
            entry.Parameters.Select(p => (p.PtxType, p.Size, p.Alignment)));
    }

    [Fact]
    public void The_entry_parser_rejects_a_parameter_type_it_cannot_size()
    {
        const string ptx = ".visible .entry K(.param .pred p) { ret; }";

        var error = Assert.Throws<FormatException>(() => PtxEntryParser.ParseEntries(ptx));
        Assert.Contains(".pred", error.Message, StringComparison.Ordinal);
    }

    // ---- the committed PTX, manifest and embedded resources ----

    [Fact]
    public void Every_GpuKernel_method_compiles_to_PTX()
    {
        foreach (var method in KernelCompiler.FindKernels(KernelAssembly))
        {
            var kernel = KernelCompiler.Compile(method);
            Assert.Equal("Kernel_" + method.Name, kernel.Entry.Entry);
        }
    }

    [Fact]
    public void The_committed_PTX_and_manifest_equal_a_fresh_compilation()
    {
        var files = PtxCompilerCommand.Build(KernelAssembly, out _);

        var problems = PtxCompilerCommand.Compare(files, CommittedDirectory);

        Assert.True(
            problems.Count == 0,
            "the committed PTX is stale (run: dotnet run -c Release --project build/GlowQ.PtxCompiler):\n" + string.Join("\n", problems));
    }

    [Fact]
    public void Manifest_parameters_match_each_kernel_methods_CSharp_signature()
    {
        var manifest = ReadCommittedManifest();
        var methods = KernelCompiler.FindKernels(KernelAssembly).ToDictionary(m => m.Name, StringComparer.Ordinal);

        Assert.Equal(methods.Keys.Order(StringComparer.Ordinal), manifest.Kernels.Select(k => k.Name));
        foreach (var kernel in manifest.Kernels)
        {
            var expected = methods[kernel.Name].GetParameters()
                .Select((p, i) => (i, ExpectedLaunchLayout(kernel.Name, p.ParameterType)))
                .ToArray();
            var actual = kernel.Parameters.Select(p => (p.Index, (p.Size, p.Alignment))).ToArray();
            Assert.True(
                expected.SequenceEqual(actual),
                $"{kernel.Name}: expected (size, align) {string.Join(", ", expected.Select(e => e.Item2))}, manifest has {string.Join(", ", actual.Select(a => a.Item2))}");
            Assert.Equal(KernelCompiler.IsImplicitlyGrouped(methods[kernel.Name]), kernel.ImplicitlyGrouped);
        }
    }

    [Fact]
    public void The_runtime_embeds_exactly_the_committed_PTX_files_and_manifest()
    {
        var committed = Directory.EnumerateFiles(CommittedDirectory, "*.ptx")
            .Append(Path.Combine(CommittedDirectory, PtxCompilerCommand.ManifestFileName))
            .ToDictionary(p => Path.GetFileName(p), File.ReadAllBytes, StringComparer.Ordinal);

        Assert.Equal(
            committed.Keys.Select(f => EmbeddedKernels.ResourcePrefix + f).Order(StringComparer.Ordinal),
            EmbeddedKernels.ResourceNames);
        foreach (var (file, bytes) in committed)
        {
            Assert.True(bytes.AsSpan().SequenceEqual(EmbeddedKernels.GetResourceBytes(file)), $"embedded {file} differs from the committed file");
        }
    }

    [Fact]
    public void The_embedded_reader_serves_each_kernels_PTX_by_name_and_NUL_terminates_the_driver_image()
    {
        Assert.Equal(ReadCommittedManifest().Kernels.Select(k => k.Name), EmbeddedKernels.Names);
        Assert.Equal("sm_53", EmbeddedKernels.Manifest.Target);
        Assert.Equal("6.0", EmbeddedKernels.Manifest.Version);
        foreach (var name in EmbeddedKernels.Names)
        {
            var ptx = EmbeddedKernels.GetPtx(name);
            var image = EmbeddedKernels.GetPtxImage(name);
            Assert.Equal(File.ReadAllBytes(Path.Combine(CommittedDirectory, EmbeddedKernels.GetEntry(name).File)), ptx);
            Assert.Equal(ptx.Length + 1, image.Length);
            Assert.Equal(0, image[^1]);
            Assert.Contains($".entry {EmbeddedKernels.GetEntry(name).Entry}(", Encoding.UTF8.GetString(ptx), StringComparison.Ordinal);
        }

        var missing = Assert.Throws<KeyNotFoundException>(() => EmbeddedKernels.GetPtx("NoSuchKernel"));
        Assert.Contains("NoSuchKernel", missing.Message, StringComparison.Ordinal);
    }

    // ---- writing and checking a PTX folder ----

    [Fact]
    public void Check_reports_one_line_per_changed_missing_or_stale_file_and_write_repairs_them()
    {
        using var temp = new TempDirectory();
        var kernel = KernelCompiler.Compile(PtxTestKernels.Method(nameof(PtxTestKernels.PtxTestScaleAdd)));
        var files = new SortedDictionary<string, byte[]>(StringComparer.Ordinal)
        {
            [kernel.Entry.File] = Encoding.UTF8.GetBytes(kernel.Ptx),
            [PtxCompilerCommand.ManifestFileName] = PtxCompilerCommand.SerializeManifest(KernelCompiler.Manifest([kernel])),
        };
        PtxCompilerCommand.Write(files, temp.Path);
        Assert.Empty(PtxCompilerCommand.Compare(files, temp.Path));

        File.AppendAllText(Path.Combine(temp.Path, kernel.Entry.File), "// edited\n");
        File.Delete(Path.Combine(temp.Path, PtxCompilerCommand.ManifestFileName));
        File.WriteAllText(Path.Combine(temp.Path, "Removed.ptx"), "stale");
        File.WriteAllText(Path.Combine(temp.Path, "Reader.cs"), "// not PTX");

        var problems = PtxCompilerCommand.Compare(files, temp.Path);
        Assert.Equal(3, problems.Count);
        Assert.Contains(problems, p => p.StartsWith("PtxTestScaleAdd.ptx: committed file differs", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("kernels.json: missing", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("Removed.ptx: ", StringComparison.Ordinal));

        PtxCompilerCommand.Write(files, temp.Path);
        Assert.Empty(PtxCompilerCommand.Compare(files, temp.Path));
        Assert.True(File.Exists(Path.Combine(temp.Path, "Reader.cs")), "writing must delete only stale .ptx files");
    }

    [Fact]
    public void The_manifest_round_trips_through_the_runtimes_source_generated_JSON()
    {
        var kernel = KernelCompiler.Compile(PtxTestKernels.Method(nameof(PtxTestKernels.PtxTestScaleAdd)));
        var manifest = KernelCompiler.Manifest([kernel]);

        var bytes = PtxCompilerCommand.SerializeManifest(manifest);
        var back = System.Text.Json.JsonSerializer.Deserialize(bytes, PtxManifestJsonContext.Default.PtxKernelManifest)!;

        Assert.Equal(manifest.Target, back.Target);
        Assert.Equal(manifest.Kernels[0].Entry, back.Kernels[0].Entry);
        Assert.Equal(manifest.Kernels[0].Parameters, back.Kernels[0].Parameters);
        Assert.DoesNotContain((byte)'\r', bytes);
    }

    private static PtxKernelManifest ReadCommittedManifest() =>
        System.Text.Json.JsonSerializer.Deserialize(
            File.ReadAllBytes(Path.Combine(CommittedDirectory, PtxCompilerCommand.ManifestFileName)),
            PtxManifestJsonContext.Default.PtxKernelManifest)!;

    // The launch ABI the runtime's wrappers assume, written out independently of the PTX parser.
    private static (int Size, int Alignment) ExpectedLaunchLayout(string kernel, Type type)
    {
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(ArrayView<>))
        {
            return (16, 8); // {device pointer, length}
        }

        if (type == typeof(Index1D) || type == typeof(int) || type == typeof(uint) || type == typeof(float) || type == typeof(bool))
        {
            return (4, 4);
        }

        if (type == typeof(System.Half) || type == typeof(ILGPU.Half))
        {
            return (2, 2);
        }

        if (type == typeof(long) || type == typeof(ulong) || type == typeof(double))
        {
            return (8, 8);
        }

        throw new Xunit.Sdk.XunitException($"{kernel}: no expected launch layout for parameter type {type}; add one here and to the runtime's packing");
    }
}
