using GlowQ.Runtime.Cuda;
using GlowQ.Runtime.Cuda.Ptx;

namespace GlowQ.Runtime.Tests.Cuda;

public sealed class GpuKernelsTests
{
    private static readonly string[] KernelsWrappedSoFar =
    [
        "ArgmaxFinal", "ArgmaxPartial", "EmbeddingLookup", "RmsNormApply", "RmsNormPartialSums",
        "RopeHalfSplit", "RopeInterleaved", "UnitRightFactor", "W4GemvCorrected", "W4GemvSwiGlu",
    ];

    [Fact]
    public void EveryWrapper_PacksExactlyWhatTheEmbeddedManifestDeclares()
    {
        var report = GpuKernels.VerifyLaunchAbi(EmbeddedKernels.Manifest);

        Assert.True(report.IsConsistent, string.Join(Environment.NewLine, report.Mismatches));
    }

    [Fact]
    public void TheWrappedKernels_AreTheOnesThisSuiteKnows()
    {
        Assert.Equal(KernelsWrappedSoFar, GpuKernels.WrappedKernelNames.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void ManifestKernelsWithoutAWrapper_AreListedAsToDo_NotAsMismatches()
    {
        var report = GpuKernels.VerifyLaunchAbi(EmbeddedKernels.Manifest);
        var embedded = EmbeddedKernels.Manifest.Kernels.Select(k => k.Name);

        // Kernels added to the manifest after the wrappers (e.g. attention) must show up here, not fail the build.
        Assert.Equal(embedded.Except(KernelsWrappedSoFar).Order(StringComparer.Ordinal), report.KernelsWithoutWrapper);
        Assert.All(report.KernelsWithoutWrapper, name => Assert.Contains(name + ": no launch wrapper", report.Lines));
    }

    [Fact]
    public void AKernelAddedToTheManifest_IsReportedWithoutAWrapper()
    {
        var manifest = EmbeddedKernels.Manifest with
        {
            Kernels = [.. EmbeddedKernels.Manifest.Kernels, new PtxKernelEntry("AttentionDecode", "Kernel_AttentionDecode", "AttentionDecode.ptx", true, [])],
        };

        var report = GpuKernels.VerifyLaunchAbi(manifest);

        Assert.True(report.IsConsistent);
        Assert.Contains("AttentionDecode", report.KernelsWithoutWrapper);
        Assert.Contains("AttentionDecode: no launch wrapper", report.Lines);
    }

    [Fact]
    public void AManifestParameterOfAnotherType_IsReportedWithTheKernelAndPosition()
    {
        // RmsNormApply's epsilon (position 6) declared as an int: the wrapper still packs a float.
        var manifest = WithParameter("RmsNormApply", 6, p => p with { PtxType = "b32" });

        var report = GpuKernels.VerifyLaunchAbi(manifest);

        var line = Assert.Single(report.Mismatches);
        Assert.StartsWith("RmsNormApply: parameter [6]:", line, StringComparison.Ordinal);
        Assert.Contains(".b32", line, StringComparison.Ordinal);
        Assert.Contains("Float", line, StringComparison.Ordinal);
    }

    [Fact]
    public void AManifestViewOfAnotherSize_IsReportedWithTheKernelAndPosition()
    {
        var manifest = WithParameter("W4GemvCorrected", 3, p => p with { Size = 8 });

        var line = Assert.Single(GpuKernels.VerifyLaunchAbi(manifest).Mismatches);

        Assert.StartsWith("W4GemvCorrected: parameter [3]: kernel expects .b8 (8 bytes, align 8) but a view (16 bytes, align 8) was packed", line,
            StringComparison.Ordinal);
    }

    [Fact]
    public void AManifestEntryWithAnExtraParameter_IsReportedAsMissingFromThePacking()
    {
        var original = EmbeddedKernels.GetEntry("EmbeddingLookup");
        var extended = original with { Parameters = [.. original.Parameters, new PtxKernelParameter(original.Parameters.Count, "scale", "f32", 4, 4)] };
        var manifest = Replace(extended);

        var line = Assert.Single(GpuKernels.VerifyLaunchAbi(manifest).Mismatches);

        Assert.StartsWith($"EmbeddingLookup: parameter [{original.Parameters.Count}]:", line, StringComparison.Ordinal);
        Assert.Contains("missing", line, StringComparison.Ordinal);
    }

    [Fact]
    public void AWrappedKernelMissingFromTheManifest_IsAMismatch()
    {
        var manifest = EmbeddedKernels.Manifest with
        {
            Kernels = EmbeddedKernels.Manifest.Kernels.Where(k => k.Name != "ArgmaxFinal").ToArray(),
        };

        var line = Assert.Single(GpuKernels.VerifyLaunchAbi(manifest).Mismatches);

        Assert.StartsWith("ArgmaxFinal:", line, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1, 1u)]
    [InlineData(255, 1u)]
    [InlineData(256, 1u)]
    [InlineData(257, 2u)]
    public void LaunchGeometry_Uses256ThreadBlocks_AndEnoughBlocksToCoverTheExtent(int extent, uint expectedBlocks)
    {
        var geometry = LaunchGeometry.ForExtent(extent);

        Assert.Equal(new Dim3(256), geometry.Block);
        Assert.Equal(new Dim3(expectedBlocks), geometry.Grid);
    }

    [Fact]
    public void LaunchGeometry_CoversTheLargestExtentWithoutOverflow_AndRefusesAnEmptyOne()
    {
        Assert.Equal(new Dim3(1u << 23), LaunchGeometry.ForExtent(int.MaxValue).Grid);
        Assert.Throws<ArgumentOutOfRangeException>(() => LaunchGeometry.ForExtent(0));
    }

    [Fact]
    public void EveryImplicitlyGroupedPtx_ReturnsEarlyForThreadsPastTheExtent()
    {
        // The over-launch in LaunchGeometry relies on this guard; stale or differently generated PTX must not lose it.
        foreach (var name in GpuKernels.WrappedKernelNames)
        {
            var ptx = System.Text.Encoding.UTF8.GetString(EmbeddedKernels.GetPtx(name));
            Assert.Matches(@"setp\.ge\.s32\s+(%p\d+),\s*%r\d+,\s*%r\d+;\s*@\1 ret;", ptx);
        }
    }

    [Fact]
    public void RepeatedPacking_AllocatesNothingAfterWarmUp()
    {
        var packed = new KernelArguments();
        var codes = new DeviceView<uint>(new DevicePointer(0x1000), 4096);
        var scales = new DeviceView<Half>(new DevicePointer(0x2000), 512);
        var zeros = new DeviceView<byte>(new DevicePointer(0x3000), 256);
        var floats = new DeviceView<float>(new DevicePointer(0x4000), 1024);
        var factors = new DeviceView<Half>(new DevicePointer(0x5000), 1024);
        PackEveryKernel(packed, codes, scales, zeros, floats, factors);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            PackEveryKernel(packed, codes, scales, zeros, floats, factors);
        }
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
    }

    [Fact]
    public void Packing_WritesTheDerivedExtentFirst()
    {
        var packed = new KernelArguments();
        var floats = new DeviceView<float>(new DevicePointer(0x4000), 1024);

        GpuKernels.PackArgmaxPartial(packed, floats, floats, new DeviceView<int>(floats.Pointer, 8), length: 1000, chunkLength: 256);

        Assert.Equal(4, System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(packed.Bytes));
    }

    [Fact]
    public void DeviceViewSlice_OffsetsThePointerByWholeElements_AndIsRangeChecked()
    {
        var view = new DeviceView<Half>(new DevicePointer(0x1000), 10);

        Assert.Equal(new DeviceView<Half>(new DevicePointer(0x1006), 4), view.Slice(3, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => view.Slice(8, 3));
    }

    private static void PackEveryKernel(
        KernelArguments packed, DeviceView<uint> codes, DeviceView<Half> scales, DeviceView<byte> zeros, DeviceView<float> floats, DeviceView<Half> factors)
    {
        GpuKernels.PackW4GemvCorrected(packed.Clear(), 64, codes, scales, zeros, DeviceView<float>.Empty, factors, floats, floats, floats, 64, 32, 8);
        GpuKernels.PackW4GemvSwiGlu(packed.Clear(), codes, scales, zeros, floats, factors, floats, floats, floats, 64, 64, 32, 8);
        GpuKernels.PackUnitRightFactor(packed.Clear(), 8, factors, floats, floats, 64);
        GpuKernels.PackRmsNormPartialSums(packed.Clear(), floats, DeviceView<float>.Empty, floats, 1024, 256);
        GpuKernels.PackRmsNormApply(packed.Clear(), floats, floats, floats, floats, 1024, 1e-5f);
        GpuKernels.PackArgmaxPartial(packed.Clear(), floats, floats, new DeviceView<int>(floats.Pointer, 4), 1024, 256);
        GpuKernels.PackArgmaxFinal(packed.Clear(), floats, new DeviceView<int>(floats.Pointer, 4), new DeviceView<int>(floats.Pointer, 1));
        GpuKernels.PackRope(packed.Clear(), floats, floats, floats, 512, 64);
        GpuKernels.PackEmbeddingLookup(packed.Clear(), scales, floats, 3, 64);
    }

    private static PtxKernelManifest WithParameter(string kernel, int index, Func<PtxKernelParameter, PtxKernelParameter> edit)
    {
        var original = EmbeddedKernels.GetEntry(kernel);
        return Replace(original with { Parameters = original.Parameters.Select(p => p.Index == index ? edit(p) : p).ToArray() });
    }

    private static PtxKernelManifest Replace(PtxKernelEntry edited) => EmbeddedKernels.Manifest with
    {
        Kernels = EmbeddedKernels.Manifest.Kernels.Select(k => k.Name == edited.Name ? edited : k).ToArray(),
    };
}
