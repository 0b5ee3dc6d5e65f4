using GlowQ.Runtime.Cuda;
using GlowQ.Runtime.Cuda.Ptx;

namespace GlowQ.Runtime.Tests.Cuda;

public sealed class GpuKernelsTests
{
    private static readonly string[] AllKernels =
    [
        "ArgmaxFinal", "ArgmaxPartial", "AttentionChunkSoftmax", "AttentionChunkWeightedSum", "AttentionChunkWeightedSumHalf", "AttentionCombineChunks",
        "AttentionScores", "AttentionScoresHalf", "AttentionScoresHalfRows", "AttentionScoresRows",
        "AttentionSoftmax", "AttentionSoftmaxRows", "AttentionWeightedSum", "AttentionWeightedSumHalf", "AttentionWeightedSumHalfRows",
        "AttentionWeightedSumRows", "EmbeddingLookup", "EmbeddingLookupRows", "HalfMatrixVector", "KvCacheStore", "KvCacheStoreHalf",
        "KvCacheStoreHalfRows", "KvCacheStoreRows", "RepeatPenalty", "RmsNormApply", "RmsNormPartialSums", "RmsNormRowsApply", "RmsNormRowsPartialSums",
        "RopeHalfSplit", "RopeHalfSplitRows", "RopeInterleaved", "RopeInterleavedRows", "SampleFinal", "SamplePartial", "SwiGluRows", "UnitRightFactor", "UnitRightFactorRows",
        "W4GemmCorrected", "W4GemmSwiGlu", "W4GemvCorrected", "W4GemvSwiGlu",
    ];

    [Fact]
    public void EveryWrapper_PacksExactlyWhatTheEmbeddedManifestDeclares()
    {
        var report = GpuKernels.VerifyLaunchAbi(EmbeddedKernels.Manifest);

        Assert.True(report.IsConsistent, string.Join(Environment.NewLine, report.Mismatches));
    }

    [Fact]
    public void TheWrappedKernels_AreEveryEmbeddedKernel()
    {
        Assert.Equal(AllKernels, GpuKernels.WrappedKernelNames.Order(StringComparer.Ordinal));
        Assert.Equal(AllKernels, EmbeddedKernels.Manifest.Kernels.Select(k => k.Name).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void TheEmbeddedManifest_HasNoKernelWithoutAWrapper()
    {
        var report = GpuKernels.VerifyLaunchAbi(EmbeddedKernels.Manifest);

        Assert.Empty(report.KernelsWithoutWrapper);
        Assert.DoesNotContain(report.Lines, line => line.EndsWith(": no launch wrapper", StringComparison.Ordinal));
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
    public void AttentionPacking_WritesTheContractsExtents()
    {
        var packed = new KernelArguments();
        var floats = new DeviceView<float>(new DevicePointer(0x4000), 1 << 16);
        var halves = new DeviceView<Half>(new DevicePointer(0x8000), 1 << 16);

        // heads 8, kvHeads 2, headDim 64, contextLength 128, firstPosition 10, span 37.
        GpuKernels.PackAttentionScores(packed.Clear(), floats, floats, floats, 8, 2, 64, 128, 10, 37, 0.125f);
        Assert.Equal(8 * 37, FirstInt32(packed));
        GpuKernels.PackAttentionScoresHalf(packed.Clear(), floats, halves, floats, 8, 2, 64, 128, 10, 37, 0.125f);
        Assert.Equal(8 * 37, FirstInt32(packed));
        GpuKernels.PackAttentionSoftmax(packed.Clear(), floats, 8, 37);
        Assert.Equal(8, FirstInt32(packed));
        GpuKernels.PackAttentionWeightedSum(packed.Clear(), floats, floats, floats, 8, 2, 64, 128, 10, 37);
        Assert.Equal(8 * 64, FirstInt32(packed));
        GpuKernels.PackAttentionWeightedSumHalf(packed.Clear(), floats, halves, floats, 8, 2, 64, 128, 10, 37);
        Assert.Equal(8 * 64, FirstInt32(packed));
        GpuKernels.PackKvCacheStore(packed.Clear(), floats, floats, floats, floats, 2, 64, 128, 10);
        Assert.Equal(2 * 64, FirstInt32(packed));
        GpuKernels.PackKvCacheStoreHalf(packed.Clear(), floats, floats, halves, halves, 2, 64, 128, 10);
        Assert.Equal(2 * 64, FirstInt32(packed));
    }

    [Fact]
    public void AttentionChecks_ReturnTheExtent_AndRefuseShortViewsAndBadShapes()
    {
        var query = new DeviceView<float>(new DevicePointer(0x1000), 8 * 64);
        var cache = new DeviceView<Half>(new DevicePointer(0x2000), 2 * 128 * 64);
        var scores = new DeviceView<float>(new DevicePointer(0x3000), 8 * 37);

        Assert.Equal(8 * 37, GpuKernels.CheckAttentionScores(query, cache, scores, 8, 2, 64, 128, 10, 37));
        Assert.Equal(8 * 64, GpuKernels.CheckAttentionWeightedSum(scores, cache, query, 8, 2, 64, 128, 10, 37));
        GpuKernels.CheckAttentionSoftmax(scores, 8, 37);

        Assert.Throws<ArgumentException>("scores", () => GpuKernels.CheckAttentionScores(query, cache, scores, 8, 2, 64, 128, 10, 38));
        Assert.Throws<ArgumentException>("keys", () => GpuKernels.CheckAttentionScores(query, cache.Slice(0, 100), scores, 8, 2, 64, 128, 10, 37));
        Assert.Throws<ArgumentException>("output", () => GpuKernels.CheckAttentionWeightedSum(scores, cache, query.Slice(0, 8), 8, 2, 64, 128, 10, 37));
        Assert.Throws<ArgumentException>("scores", () => GpuKernels.CheckAttentionSoftmax(scores, 9, 37));
        // 8 heads over 3 kv heads, and positions 100…136 past a 128-position cache.
        Assert.Throws<ArgumentOutOfRangeException>("heads", () => GpuKernels.CheckAttentionScores(query, cache, scores, 8, 3, 64, 128, 0, 37));
        Assert.Throws<ArgumentOutOfRangeException>("span", () => GpuKernels.CheckAttentionScores(query, cache, scores, 8, 2, 64, 128, 100, 37));
    }

    [Fact]
    public void SplitAttentionPacking_CoversEveryChunkOfARaggedSpan_AndRefusesAnEmptyChunk()
    {
        var floats = new DeviceView<float>(new DevicePointer(0x1000), 1 << 20);
        var packed = new KernelArguments();

        // 37 positions in chunks of 16: chunks of 16, 16 and 5.
        Assert.Equal(3, GpuKernels.CheckChunks(8, 37, 16));
        GpuKernels.PackAttentionChunkSoftmax(packed.Clear(), floats, floats, floats, 8, 37, 16);
        Assert.Equal(8 * 3, FirstInt32(packed));
        GpuKernels.PackAttentionChunkWeightedSum(packed.Clear(), floats, floats, floats, 8, 2, 64, 128, 0, 37, 16, 3);
        Assert.Equal(8 * 3 * 64, FirstInt32(packed));
        GpuKernels.PackAttentionCombineChunks(packed.Clear(), floats, floats, floats, floats, 8, 64, 3);
        Assert.Equal(8 * 64, FirstInt32(packed));
        Assert.Equal(1, GpuKernels.CheckChunks(8, 16, 16));
        Assert.Equal(37, GpuKernels.CheckChunks(8, 37, 1));
        Assert.Throws<ArgumentOutOfRangeException>("chunkLength", () => GpuKernels.CheckChunks(8, 37, 0));
    }

    [Fact]
    public void KvCacheStoreCheck_ReturnsTheExtent_AndRefusesAPositionPastTheCache()
    {
        var token = new DeviceView<float>(new DevicePointer(0x1000), 2 * 64);
        var cache = new DeviceView<float>(new DevicePointer(0x2000), 2 * 128 * 64);

        Assert.Equal(2 * 64, GpuKernels.CheckKvCacheStore(token, token, cache, cache, 2, 64, 128, 127));
        Assert.Throws<ArgumentOutOfRangeException>("position", () => GpuKernels.CheckKvCacheStore(token, token, cache, cache, 2, 64, 128, 128));
        Assert.Throws<ArgumentException>("tokenValues", () => GpuKernels.CheckKvCacheStore(token, token.Slice(0, 64), cache, cache, 2, 64, 128, 0));
        Assert.Throws<ArgumentException>("values", () => GpuKernels.CheckKvCacheStore(token, token, cache, cache.Slice(0, 64), 2, 64, 128, 0));
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
        GpuKernels.PackW4GemvSwiGlu(packed.Clear(), 64 * 32, codes, scales, zeros, floats, factors, floats, floats, floats, 64, 64, 32, 8);
        GpuKernels.PackUnitRightFactor(packed.Clear(), 8, factors, floats, floats, 64);
        GpuKernels.PackRmsNormPartialSums(packed.Clear(), floats, DeviceView<float>.Empty, floats, 1024, 256);
        GpuKernels.PackRmsNormApply(packed.Clear(), floats, floats, floats, floats, 1024, 1e-5f);
        GpuKernels.PackArgmaxPartial(packed.Clear(), floats, floats, new DeviceView<int>(floats.Pointer, 4), 1024, 256);
        GpuKernels.PackArgmaxFinal(packed.Clear(), floats, new DeviceView<int>(floats.Pointer, 4), new DeviceView<int>(floats.Pointer, 1));
        GpuKernels.PackRope(packed.Clear(), floats, floats, floats, 512, 64);
        GpuKernels.PackEmbeddingLookup(packed.Clear(), scales, floats, 3, 64);
        GpuKernels.PackAttentionScores(packed.Clear(), floats, floats, floats, 4, 2, 16, 32, 0, 8, 0.25f);
        GpuKernels.PackAttentionScoresHalf(packed.Clear(), floats, factors, floats, 4, 2, 16, 32, 0, 8, 0.25f);
        GpuKernels.PackAttentionSoftmax(packed.Clear(), floats, 4, 8);
        GpuKernels.PackAttentionWeightedSum(packed.Clear(), floats, floats, floats, 4, 2, 16, 32, 0, 8);
        GpuKernels.PackAttentionWeightedSumHalf(packed.Clear(), floats, factors, floats, 4, 2, 16, 32, 0, 8);
        GpuKernels.PackKvCacheStore(packed.Clear(), floats, floats, floats, floats, 2, 16, 32, 7);
        GpuKernels.PackKvCacheStoreHalf(packed.Clear(), floats, floats, factors, factors, 2, 16, 32, 7);
    }

    private static int FirstInt32(KernelArguments packed) => System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(packed.Bytes);

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
