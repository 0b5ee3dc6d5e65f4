using System.Globalization;
using GlowQ.Format;
using GlowQ.Runtime.Cuda.Ptx;

namespace GlowQ.Runtime.Cuda;

/// <summary>Grid and block of one launch.</summary>
public readonly record struct LaunchGeometry(Dim3 Grid, Dim3 Block)
{
    /// <summary>
    /// One thread per unit of <paramref name="extent"/>, <see cref="GpuKernels.BlockSize"/> to a block. The last block
    /// may over-launch: ILGPU's implicitly grouped kernels start with <c>if (global index ≥ extent) return</c> (in the
    /// PTX: <c>setp.ge.s32 %p, ctaid.x·ntid.x + tid.x, extent; @%p ret</c>), so the surplus threads do nothing.
    /// </summary>
    public static LaunchGeometry ForExtent(int extent)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(extent);
        // Rounded up without extent + 255, which overflows near int.MaxValue. The last thread's index then stays at most
        // 2^31 − 1, so ILGPU's signed 32-bit index never wraps past the guard.
        var blocks = (uint)(((extent - 1) / GpuKernels.BlockSize) + 1);
        return new LaunchGeometry(new Dim3(blocks), new Dim3(GpuKernels.BlockSize));
    }
}

/// <summary>What <see cref="GpuKernels.VerifyLaunchAbi"/> found.</summary>
/// <param name="Mismatches">
/// One line per wrapper whose packing disagrees with the manifest ("kernel: parameter [i]: expected … but … packed"),
/// or whose kernel the manifest lacks. Any entry means a launch would pass garbage to the GPU.
/// </param>
/// <param name="KernelsWithoutWrapper">Manifest kernels nothing here can launch yet (a to-do list, not an error).</param>
public sealed record LaunchAbiReport(IReadOnlyList<string> Mismatches, IReadOnlyList<string> KernelsWithoutWrapper)
{
    public bool IsConsistent => Mismatches.Count == 0;

    /// <summary>Every finding, one line each: the mismatches, then "<c>Name: no launch wrapper</c>" per unwrapped kernel.</summary>
    public IEnumerable<string> Lines =>
        Mismatches.Concat(KernelsWithoutWrapper.Select(name => name + ": no launch wrapper"));
}

/// <summary>
/// Typed launches of the embedded GPU kernels: each method takes the kernel's views and scalars in its C# parameter
/// order, derives the extent its launch contract names (see the kernel's doc in GlowQ.Kernels), packs one reused
/// <see cref="KernelArguments"/> and launches on <see cref="BlockSize"/>-thread blocks. Packing allocates nothing, so a
/// decode loop can call these every token. Not thread-safe (the packed arguments are shared): one instance per
/// launching thread.
/// </summary>
public sealed partial class GpuKernels
{
    public const int BlockSize = 256;

    public const string W4GemvCorrectedName = "W4GemvCorrected";
    public const string W4GemvSwiGluName = "W4GemvSwiGlu";
    public const string UnitRightFactorName = "UnitRightFactor";
    public const string RmsNormPartialSumsName = "RmsNormPartialSums";
    public const string RmsNormApplyName = "RmsNormApply";
    public const string ArgmaxPartialName = "ArgmaxPartial";
    public const string ArgmaxFinalName = "ArgmaxFinal";
    public const string RopeInterleavedName = "RopeInterleaved";
    public const string RopeHalfSplitName = "RopeHalfSplit";
    public const string EmbeddingLookupName = "EmbeddingLookup";
    public const string AttentionScoresName = "AttentionScores";
    public const string AttentionScoresHalfName = "AttentionScoresHalf";
    public const string AttentionSoftmaxName = "AttentionSoftmax";
    public const string AttentionWeightedSumName = "AttentionWeightedSum";
    public const string AttentionWeightedSumHalfName = "AttentionWeightedSumHalf";
    public const string AttentionChunkSoftmaxName = "AttentionChunkSoftmax";
    public const string AttentionChunkWeightedSumName = "AttentionChunkWeightedSum";
    public const string AttentionChunkWeightedSumHalfName = "AttentionChunkWeightedSumHalf";
    public const string AttentionCombineChunksName = "AttentionCombineChunks";
    public const string KvCacheStoreName = "KvCacheStore";
    public const string KvCacheStoreHalfName = "KvCacheStoreHalf";
    public const string HalfMatrixVectorName = "HalfMatrixVector";
    public const string EmbeddingLookupRowsName = "EmbeddingLookupRows";
    public const string RmsNormRowsPartialSumsName = "RmsNormRowsPartialSums";
    public const string RmsNormRowsApplyName = "RmsNormRowsApply";
    public const string UnitRightFactorRowsName = "UnitRightFactorRows";
    public const string W4GemmCorrectedName = "W4GemmCorrected";
    public const string W4GemmSwiGluName = "W4GemmSwiGlu";
    public const string SwiGluRowsName = "SwiGluRows";
    public const string RopeInterleavedRowsName = "RopeInterleavedRows";
    public const string RopeHalfSplitRowsName = "RopeHalfSplitRows";
    public const string KvCacheStoreRowsName = "KvCacheStoreRows";
    public const string KvCacheStoreHalfRowsName = "KvCacheStoreHalfRows";
    public const string AttentionScoresRowsName = "AttentionScoresRows";
    public const string AttentionScoresHalfRowsName = "AttentionScoresHalfRows";
    public const string AttentionSoftmaxRowsName = "AttentionSoftmaxRows";
    public const string AttentionWeightedSumRowsName = "AttentionWeightedSumRows";
    public const string AttentionWeightedSumHalfRowsName = "AttentionWeightedSumHalfRows";
    public const string RepeatPenaltyName = "RepeatPenalty";
    public const string SamplePartialName = "SamplePartial";
    public const string SampleFinalName = "SampleFinal";

    /// <summary>
    /// Each wrapped kernel with a pack of the same method its launch uses, fed placeholder pointers, so the packing can
    /// be checked against the manifest on a machine without a GPU.
    /// </summary>
    private static readonly (string Name, Action<KernelArguments> PackWithPlaceholders)[] Wrappers =
    [
        (W4GemvCorrectedName, static a => PackW4GemvCorrected(a, 1, Placeholder<uint>(), Placeholder<Half>(), Placeholder<byte>(),
            Placeholder<float>(), Placeholder<Half>(), Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 1, 8, 1)),
        (W4GemvSwiGluName, static a => PackW4GemvSwiGlu(a, 1, Placeholder<uint>(), Placeholder<Half>(), Placeholder<byte>(),
            Placeholder<float>(), Placeholder<Half>(), Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 1, 1, 8, 1)),
        (UnitRightFactorName, static a => PackUnitRightFactor(a, 1, Placeholder<Half>(), Placeholder<float>(), Placeholder<float>(), 1)),
        (RmsNormPartialSumsName, static a => PackRmsNormPartialSums(a, Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 1, 1)),
        (RmsNormApplyName, static a => PackRmsNormApply(a, Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 1, 1e-5f)),
        (ArgmaxPartialName, static a => PackArgmaxPartial(a, Placeholder<float>(), Placeholder<float>(), Placeholder<int>(), 1, 1)),
        (ArgmaxFinalName, static a => PackArgmaxFinal(a, Placeholder<float>(), Placeholder<int>(), Placeholder<int>())),
        (RopeInterleavedName, static a => PackRope(a, Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 1, 2)),
        (RopeHalfSplitName, static a => PackRope(a, Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 1, 2)),
        (EmbeddingLookupName, static a => PackEmbeddingLookup(a, Placeholder<Half>(), Placeholder<float>(), 0, 1)),
        (AttentionScoresName, static a => PackAttentionScores(a, Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 1, 1, 1, 1, 0, 1, 1f)),
        (AttentionScoresHalfName, static a => PackAttentionScoresHalf(a, Placeholder<float>(), Placeholder<Half>(), Placeholder<float>(), 1, 1, 1, 1, 0, 1, 1f)),
        (AttentionSoftmaxName, static a => PackAttentionSoftmax(a, Placeholder<float>(), 1, 1)),
        (AttentionWeightedSumName, static a => PackAttentionWeightedSum(a, Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 1, 1, 1, 1, 0, 1)),
        (AttentionWeightedSumHalfName, static a => PackAttentionWeightedSumHalf(a, Placeholder<float>(), Placeholder<Half>(), Placeholder<float>(), 1, 1, 1, 1, 0, 1)),
        (AttentionChunkSoftmaxName, static a => PackAttentionChunkSoftmax(a, Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 1, 1, 1)),
        (AttentionChunkWeightedSumName, static a => PackAttentionChunkWeightedSum(a, Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 1, 1, 1, 1, 0, 1, 1, 1)),
        (AttentionChunkWeightedSumHalfName, static a => PackAttentionChunkWeightedSum(a, Placeholder<float>(), Placeholder<Half>(), Placeholder<float>(), 1, 1, 1, 1, 0, 1, 1, 1)),
        (AttentionCombineChunksName, static a => PackAttentionCombineChunks(a, Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 1, 1, 1)),
        (KvCacheStoreName, static a => PackKvCacheStore(a, Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 1, 1, 1, 0)),
        (KvCacheStoreHalfName, static a => PackKvCacheStoreHalf(a, Placeholder<float>(), Placeholder<float>(), Placeholder<Half>(), Placeholder<Half>(), 1, 1, 1, 0)),
        (HalfMatrixVectorName, static a => PackHalfMatrixVector(a, 1, Placeholder<Half>(), Placeholder<float>(), Placeholder<float>(), 1)),
        (EmbeddingLookupRowsName, static a => PackEmbeddingLookupRows(a, 1, Placeholder<Half>(), Placeholder<int>(), Placeholder<float>(), 1)),
        (RmsNormRowsPartialSumsName, static a => PackRmsNormRowsPartialSums(a, 1, Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 1, 1)),
        (RmsNormRowsApplyName, static a => PackRmsNormRowsApply(a, 1, Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 1, 1, 1e-5f)),
        (UnitRightFactorRowsName, static a => PackUnitRightFactorRows(a, 1, 1, Placeholder<Half>(), Placeholder<float>(), Placeholder<float>(), 1)),
        (W4GemmCorrectedName, static a => PackW4GemmCorrected(a, 1, 1, Placeholder<uint>(), Placeholder<Half>(), Placeholder<byte>(), Placeholder<float>(), Placeholder<Half>(), Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 8, 8, 1, 1)),
        (W4GemmSwiGluName, static a => PackW4GemmSwiGlu(a, 1, Placeholder<uint>(), Placeholder<Half>(), Placeholder<byte>(), Placeholder<float>(), Placeholder<Half>(), Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 1, 8, 8, 1)),
        (SwiGluRowsName, static a => PackSwiGluRows(a, 1, Placeholder<float>(), Placeholder<float>(), 1)),
        (RopeInterleavedRowsName, static a => PackRopeRows(a, 1, Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 2, 1, 2, 0)),
        (RopeHalfSplitRowsName, static a => PackRopeRows(a, 1, Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 2, 1, 2, 0)),
        (KvCacheStoreRowsName, static a => PackKvCacheStoreRows(a, 1, Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 1, 1, 1, 1, 0)),
        (KvCacheStoreHalfRowsName, static a => PackKvCacheStoreRows(a, 1, Placeholder<float>(), Placeholder<float>(), Placeholder<Half>(), Placeholder<Half>(), 1, 1, 1, 1, 0)),
        (AttentionScoresRowsName, static a => PackAttentionScoresRows(a, 1, Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 1, 1, 1, 1, 0, 0, 1, 1, 1f)),
        (AttentionScoresHalfRowsName, static a => PackAttentionScoresRows(a, 1, Placeholder<float>(), Placeholder<Half>(), Placeholder<float>(), 1, 1, 1, 1, 0, 0, 1, 1, 1f)),
        (AttentionSoftmaxRowsName, static a => PackAttentionSoftmaxRows(a, 1, Placeholder<float>(), 1, 0, 0, 1)),
        (AttentionWeightedSumRowsName, static a => PackAttentionWeightedSumRows(a, 1, Placeholder<float>(), Placeholder<float>(), Placeholder<float>(), 1, 1, 1, 1, 0, 0, 1)),
        (AttentionWeightedSumHalfRowsName, static a => PackAttentionWeightedSumRows(a, 1, Placeholder<float>(), Placeholder<Half>(), Placeholder<float>(), 1, 1, 1, 1, 0, 0, 1)),
        (RepeatPenaltyName, static a => PackRepeatPenalty(a, Placeholder<float>(), Placeholder<int>(), 1, 1.1f)),
        (SamplePartialName, static a => PackSamplePartial(a, Placeholder<float>(), Placeholder<float>(), Placeholder<int>(), Placeholder<float>(), Placeholder<float>(), 1, 1, 1, 1f)),
        (SampleFinalName, static a => PackSampleFinal(a, Placeholder<float>(), Placeholder<int>(), Placeholder<float>(), Placeholder<float>(), Placeholder<int>(), 1, 1, 1, 1f, 0f, 0.5f)),
    ];

    private readonly KernelArguments arguments = new();
    private readonly IGpuDevice device;
    private readonly int w4GemvCorrected;
    private readonly int w4GemvSwiGlu;
    private readonly int unitRightFactor;
    private readonly int rmsNormPartialSums;
    private readonly int rmsNormApply;
    private readonly int argmaxPartial;
    private readonly int argmaxFinal;
    private readonly int ropeInterleaved;
    private readonly int ropeHalfSplit;
    private readonly int embeddingLookup;
    private readonly int attentionScores;
    private readonly int attentionScoresHalf;
    private readonly int attentionSoftmax;
    private readonly int attentionWeightedSum;
    private readonly int attentionWeightedSumHalf;
    private readonly int attentionChunkSoftmax;
    private readonly int attentionChunkWeightedSum;
    private readonly int attentionChunkWeightedSumHalf;
    private readonly int attentionCombineChunks;
    private readonly int kvCacheStore;
    private readonly int kvCacheStoreHalf;
    private readonly int halfMatrixVector;
    private readonly int embeddingLookupRows;
    private readonly int rmsNormRowsPartialSums;
    private readonly int rmsNormRowsApply;
    private readonly int unitRightFactorRows;
    private readonly int w4GemmCorrected;
    private readonly int w4GemmSwiGlu;
    private readonly int swiGluRows;
    private readonly int ropeInterleavedRows;
    private readonly int ropeHalfSplitRows;
    private readonly int kvCacheStoreRows;
    private readonly int kvCacheStoreHalfRows;
    private readonly int attentionScoresRows;
    private readonly int attentionScoresHalfRows;
    private readonly int attentionSoftmaxRows;
    private readonly int attentionWeightedSumRows;
    private readonly int attentionWeightedSumHalfRows;
    private readonly int repeatPenalty;
    private readonly int samplePartial;
    private readonly int sampleFinal;

    private GpuKernels(IGpuDevice device)
    {
        this.device = device;
        w4GemvCorrected = device.LoadKernel(W4GemvCorrectedName);
        w4GemvSwiGlu = device.LoadKernel(W4GemvSwiGluName);
        unitRightFactor = device.LoadKernel(UnitRightFactorName);
        rmsNormPartialSums = device.LoadKernel(RmsNormPartialSumsName);
        rmsNormApply = device.LoadKernel(RmsNormApplyName);
        argmaxPartial = device.LoadKernel(ArgmaxPartialName);
        argmaxFinal = device.LoadKernel(ArgmaxFinalName);
        ropeInterleaved = device.LoadKernel(RopeInterleavedName);
        ropeHalfSplit = device.LoadKernel(RopeHalfSplitName);
        embeddingLookup = device.LoadKernel(EmbeddingLookupName);
        attentionScores = device.LoadKernel(AttentionScoresName);
        attentionScoresHalf = device.LoadKernel(AttentionScoresHalfName);
        attentionSoftmax = device.LoadKernel(AttentionSoftmaxName);
        attentionWeightedSum = device.LoadKernel(AttentionWeightedSumName);
        attentionWeightedSumHalf = device.LoadKernel(AttentionWeightedSumHalfName);
        attentionChunkSoftmax = device.LoadKernel(AttentionChunkSoftmaxName);
        attentionChunkWeightedSum = device.LoadKernel(AttentionChunkWeightedSumName);
        attentionChunkWeightedSumHalf = device.LoadKernel(AttentionChunkWeightedSumHalfName);
        attentionCombineChunks = device.LoadKernel(AttentionCombineChunksName);
        kvCacheStore = device.LoadKernel(KvCacheStoreName);
        kvCacheStoreHalf = device.LoadKernel(KvCacheStoreHalfName);
        halfMatrixVector = device.LoadKernel(HalfMatrixVectorName);
        embeddingLookupRows = device.LoadKernel(EmbeddingLookupRowsName);
        rmsNormRowsPartialSums = device.LoadKernel(RmsNormRowsPartialSumsName);
        rmsNormRowsApply = device.LoadKernel(RmsNormRowsApplyName);
        unitRightFactorRows = device.LoadKernel(UnitRightFactorRowsName);
        w4GemmCorrected = device.LoadKernel(W4GemmCorrectedName);
        w4GemmSwiGlu = device.LoadKernel(W4GemmSwiGluName);
        swiGluRows = device.LoadKernel(SwiGluRowsName);
        ropeInterleavedRows = device.LoadKernel(RopeInterleavedRowsName);
        ropeHalfSplitRows = device.LoadKernel(RopeHalfSplitRowsName);
        kvCacheStoreRows = device.LoadKernel(KvCacheStoreRowsName);
        kvCacheStoreHalfRows = device.LoadKernel(KvCacheStoreHalfRowsName);
        attentionScoresRows = device.LoadKernel(AttentionScoresRowsName);
        attentionScoresHalfRows = device.LoadKernel(AttentionScoresHalfRowsName);
        attentionSoftmaxRows = device.LoadKernel(AttentionSoftmaxRowsName);
        attentionWeightedSumRows = device.LoadKernel(AttentionWeightedSumRowsName);
        attentionWeightedSumHalfRows = device.LoadKernel(AttentionWeightedSumHalfRowsName);
        repeatPenalty = device.LoadKernel(RepeatPenaltyName);
        samplePartial = device.LoadKernel(SamplePartialName);
        sampleFinal = device.LoadKernel(SampleFinalName);
    }

    /// <summary>The kernels this class can launch, in the order it checks them.</summary>
    public static IReadOnlyList<string> WrappedKernelNames { get; } = Array.AsReadOnly(Wrappers.Select(w => w.Name).ToArray());

    /// <summary>
    /// Loads every wrapped kernel on <paramref name="device"/> (which owns the loaded modules), after checking the
    /// packing against the embedded manifest: stale PTX fails here, not as a corrupt launch.
    /// </summary>
    /// <exception cref="InvalidOperationException">A wrapper's packing disagrees with the embedded manifest.</exception>
    public static GpuKernels Load(IGpuDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        var report = VerifyLaunchAbi(EmbeddedKernels.Manifest);
        if (!report.IsConsistent)
        {
            throw new InvalidOperationException("GPU kernel launch ABI does not match the embedded manifest: " + string.Join("; ", report.Mismatches));
        }
        return new GpuKernels(device);
    }

    /// <summary>
    /// Packs every wrapper with placeholder pointers and compares it with <paramref name="manifest"/>. Needs no GPU.
    /// </summary>
    public static LaunchAbiReport VerifyLaunchAbi(PtxKernelManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        var byName = new Dictionary<string, PtxKernelEntry>(StringComparer.Ordinal);
        foreach (var entry in manifest.Kernels)
        {
            byName[entry.Name] = entry;
        }

        var mismatches = new List<string>();
        var packed = new KernelArguments();
        foreach (var (name, packWithPlaceholders) in Wrappers)
        {
            if (!byName.TryGetValue(name, out var entry))
            {
                mismatches.Add($"{name}: has a launch wrapper but is not in the manifest");
                continue;
            }
            if (!entry.ImplicitlyGrouped)
            {
                mismatches.Add($"{name}: the manifest says it is not implicitly grouped, but the wrapper packs an extent first");
                continue;
            }
            packWithPlaceholders(packed.Clear());
            var expected = entry.Parameters
                .OrderBy(p => p.Index)
                .Select(p => new KernelParameter(p.PtxType, p.Size, p.Alignment))
                .ToArray();
            if (!packed.Matches(expected, out var mismatch))
            {
                mismatches.Add($"{name}: {mismatch}");
            }
        }

        var wrapped = WrappedKernelNames.ToHashSet(StringComparer.Ordinal);
        var unwrapped = manifest.Kernels.Select(k => k.Name).Where(n => !wrapped.Contains(n)).Order(StringComparer.Ordinal).ToArray();
        return new LaunchAbiReport(mismatches, unwrapped);
    }

    /// <summary>y = Q(W)·x + A·t (+ bias) over a stacked unit's <paramref name="totalRows"/> rows, one warp per row; see the kernel's doc.</summary>
    public void LaunchW4GemvCorrected(
        int totalRows,
        DeviceView<uint> codeWords,
        DeviceView<Half> scales,
        DeviceView<byte> zeros,
        DeviceView<float> bias,
        DeviceView<Half> leftFactors,
        DeviceView<float> projected,
        DeviceView<float> input,
        DeviceView<float> output,
        int cols,
        int groupSize,
        int rank)
    {
        RequireAtLeast(output, totalRows, nameof(output));
        var extent = WarpPerRow(totalRows);
        PackW4GemvCorrected(arguments.Clear(), extent, codeWords, scales, zeros, bias, leftFactors, projected, input, output, cols, groupSize, rank);
        Launch(w4GemvCorrected, extent);
    }

    /// <summary>hidden = silu(gate)·up of a stacked gate/up unit, one warp per hidden row; see the kernel's doc.</summary>
    public void LaunchW4GemvSwiGlu(
        DeviceView<uint> codeWords,
        DeviceView<Half> scales,
        DeviceView<byte> zeros,
        DeviceView<float> bias,
        DeviceView<Half> leftFactors,
        DeviceView<float> projected,
        DeviceView<float> input,
        DeviceView<float> hidden,
        int hiddenRows,
        int cols,
        int groupSize,
        int rank)
    {
        RequireAtLeast(hidden, hiddenRows, nameof(hidden));
        var extent = WarpPerRow(hiddenRows);
        PackW4GemvSwiGlu(arguments.Clear(), extent, codeWords, scales, zeros, bias, leftFactors, projected, input, hidden, hiddenRows, cols, groupSize, rank);
        Launch(w4GemvSwiGlu, extent);
    }

    /// <summary>t = B·x, one warp per row of B; rank 0 launches nothing.</summary>
    public void LaunchUnitRightFactor(
        int rank,
        DeviceView<Half> rightFactor,
        DeviceView<float> input,
        DeviceView<float> projected,
        int cols)
    {
        RequireAtLeast(projected, rank, nameof(projected));
        var extent = WarpPerRow(rank);
        PackUnitRightFactor(arguments.Clear(), extent, rightFactor, input, projected, cols);
        Launch(unitRightFactor, extent);
    }

    /// <summary>
    /// Optional residual add, then each chunk's sum of squares into <paramref name="partialSums"/>; one thread per chunk
    /// of <paramref name="chunkLength"/> elements.
    /// </summary>
    public void LaunchRmsNormPartialSums(
        DeviceView<float> hidden,
        DeviceView<float> residualDelta,
        DeviceView<float> partialSums,
        int length,
        int chunkLength)
    {
        var chunks = ChunkCount(length, chunkLength);
        RequireAtLeast(partialSums, chunks, nameof(partialSums));
        PackRmsNormPartialSums(arguments.Clear(), hidden, residualDelta, partialSums, length, chunkLength);
        Launch(rmsNormPartialSums, chunks);
    }

    /// <summary>output = hidden · rsqrt(mean square + ε) · weight, one thread per element.</summary>
    /// <param name="partialSums">Exactly the chunks' sums: the kernel adds every element of the view.</param>
    public void LaunchRmsNormApply(
        DeviceView<float> hidden,
        DeviceView<float> partialSums,
        DeviceView<float> weight,
        DeviceView<float> output,
        int length,
        float epsilon)
    {
        RequireAtLeast(output, length, nameof(output));
        PackRmsNormApply(arguments.Clear(), hidden, partialSums, weight, output, length, epsilon);
        Launch(rmsNormApply, length);
    }

    /// <summary>Each chunk's maximum logit and its index; one thread per chunk of <paramref name="chunkLength"/> logits.</summary>
    public void LaunchArgmaxPartial(
        DeviceView<float> logits,
        DeviceView<float> partialMaxima,
        DeviceView<int> partialIndices,
        int length,
        int chunkLength)
    {
        var chunks = ChunkCount(length, chunkLength);
        RequireAtLeast(partialMaxima, chunks, nameof(partialMaxima));
        RequireAtLeast(partialIndices, chunks, nameof(partialIndices));
        PackArgmaxPartial(arguments.Clear(), logits, partialMaxima, partialIndices, length, chunkLength);
        Launch(argmaxPartial, chunks);
    }

    /// <summary>result[0] = the overall argmax from the chunks' maxima, on a single thread.</summary>
    /// <param name="partialMaxima">Exactly the chunks' maxima: the kernel reads every element of the view.</param>
    public void LaunchArgmaxFinal(
        DeviceView<float> partialMaxima,
        DeviceView<int> partialIndices,
        DeviceView<int> result)
    {
        RequireAtLeast(result, 1, nameof(result));
        PackArgmaxFinal(arguments.Clear(), partialMaxima, partialIndices, result);
        Launch(argmaxFinal, 1);
    }

    /// <summary>
    /// Rotary embedding in place in either layout: llama2.c's pairs (2j, 2j+1) or Hugging Face's (j, j + headDim/2);
    /// one thread per pair.
    /// </summary>
    public void LaunchRope(
        RopeLayout layout,
        DeviceView<float> heads,
        DeviceView<float> cos,
        DeviceView<float> sin,
        int headCount,
        int headDim)
    {
        var pairs = RopePairCount(heads, headCount, headDim);
        PackRope(arguments.Clear(), heads, cos, sin, pairs, headDim);
        Launch(layout == RopeLayout.InterleavedPairs ? ropeInterleaved : ropeHalfSplit, pairs);
    }

    /// <summary>output = row <paramref name="token"/> of the fp16 table, widened to fp32; one thread per element.</summary>
    public void LaunchEmbeddingLookup(
        DeviceView<Half> table,
        DeviceView<float> output,
        int token,
        int dim)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(token);
        // The kernel trusts the token: an id past the table would read beyond it.
        if ((long)(token + 1) * dim > table.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(token), token, $"row {token} of width {dim} lies past a table of {table.Length} elements");
        }
        RequireAtLeast(output, dim, nameof(output));
        PackEmbeddingLookup(arguments.Clear(), table, output, token, dim);
        Launch(embeddingLookup, dim);
    }

    /// <summary>
    /// scores[h·span + s] = scale · q_h · k_{kv(h), firstPosition+s} from an fp32 (<see cref="float"/>) or fp16
    /// (<see cref="Half"/>) key cache laid out [kvHeads × contextLength × headDim]; one thread per (head, position),
    /// extent heads · span.
    /// </summary>
    public void LaunchAttentionScores<TCache>(
        DeviceView<float> query,
        DeviceView<TCache> keys,
        DeviceView<float> scores,
        int heads,
        int kvHeads,
        int headDim,
        int contextLength,
        int firstPosition,
        int span,
        float scale)
        where TCache : unmanaged
    {
        var extent = CheckAttentionScores(query, keys, scores, heads, kvHeads, headDim, contextLength, firstPosition, span);
        PackScores(arguments.Clear(), query, keys, scores, heads, kvHeads, headDim, contextLength, firstPosition, span, scale);
        Launch(ForCache<TCache>(attentionScores, attentionScoresHalf), extent);
    }

    /// <summary>Softmax of each head's row of <paramref name="scores"/> ([heads × span]) in place; one thread per head.</summary>
    public void LaunchAttentionSoftmax(
        DeviceView<float> scores,
        int heads,
        int span)
    {
        CheckAttentionSoftmax(scores, heads, span);
        PackAttentionSoftmax(arguments.Clear(), scores, heads, span);
        Launch(attentionSoftmax, heads);
    }

    /// <summary>
    /// output[h·headDim + d] = Σ_s weights[h·span + s] · v_{kv(h), firstPosition+s}[d] from an fp32 or fp16 value
    /// cache; one thread per output element, extent heads · headDim.
    /// </summary>
    public void LaunchAttentionWeightedSum<TCache>(
        DeviceView<float> weights,
        DeviceView<TCache> values,
        DeviceView<float> output,
        int heads,
        int kvHeads,
        int headDim,
        int contextLength,
        int firstPosition,
        int span)
        where TCache : unmanaged
    {
        var extent = CheckAttentionWeightedSum(weights, values, output, heads, kvHeads, headDim, contextLength, firstPosition, span);
        PackWeightedSum(arguments.Clear(), weights, values, output, heads, kvHeads, headDim, contextLength, firstPosition, span);
        Launch(ForCache<TCache>(attentionWeightedSum, attentionWeightedSumHalf), extent);
    }

    /// <summary>
    /// Stores this token's keys and values ([kvHeads × headDim] each) at <paramref name="position"/> of an fp32 layer
    /// cache, or of an fp16 one (each element rounded to nearest, ties to even); one thread per element, extent
    /// kvHeads · headDim.
    /// </summary>
    public void LaunchKvCacheStore<TCache>(
        DeviceView<float> tokenKeys,
        DeviceView<float> tokenValues,
        DeviceView<TCache> keys,
        DeviceView<TCache> values,
        int kvHeads,
        int headDim,
        int contextLength,
        int position)
        where TCache : unmanaged
    {
        var extent = CheckKvCacheStore(tokenKeys, tokenValues, keys, values, kvHeads, headDim, contextLength, position);
        PackCacheStore(arguments.Clear(), tokenKeys, tokenValues, keys, values, kvHeads, headDim, contextLength, position);
        Launch(ForCache<TCache>(kvCacheStore, kvCacheStoreHalf), extent);
    }

    /// <summary>output = matrix·input for an fp16 [rows × cols] matrix (the output head), one warp per row.</summary>
    public void LaunchHalfMatrixVector(int rows, DeviceView<Half> matrix, DeviceView<float> input, DeviceView<float> output, int cols)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cols);
        RequireAtLeast(matrix, (long)rows * cols, nameof(matrix));
        RequireAtLeast(input, cols, nameof(input));
        RequireAtLeast(output, rows, nameof(output));
        var extent = WarpPerRow(rows);
        PackHalfMatrixVector(arguments.Clear(), extent, matrix, input, output, cols);
        Launch(halfMatrixVector, extent);
    }

    /// <summary>Prefill: embedding rows of <paramref name="rows"/> token ids already on the device.</summary>
    public void LaunchEmbeddingLookupRows(int rows, DeviceView<Half> table, DeviceView<int> tokens, DeviceView<float> output, int dim)
    {
        RequireAtLeast(tokens, rows, nameof(tokens));
        RequireAtLeast(output, (long)rows * dim, nameof(output));
        PackEmbeddingLookupRows(arguments.Clear(), rows, table, tokens, output, dim);
        Launch(embeddingLookupRows, checked(rows * dim));
    }

    /// <summary>Prefill: per-row residual add and chunk sums of squares (<paramref name="rows"/> × ⌈length/chunkLength⌉ threads).</summary>
    public void LaunchRmsNormRowsPartialSums(int rows, DeviceView<float> hidden, DeviceView<float> residualDelta, DeviceView<float> partialSums, int length, int chunkLength)
    {
        var chunks = ChunkCount(length, chunkLength);
        RequireAtLeast(hidden, (long)rows * length, nameof(hidden));
        RequireAtLeast(partialSums, (long)rows * chunks, nameof(partialSums));
        PackRmsNormRowsPartialSums(arguments.Clear(), rows, hidden, residualDelta, partialSums, length, chunkLength);
        Launch(rmsNormRowsPartialSums, checked(rows * chunks));
    }

    /// <summary>Prefill: per-row normalisation with each row's own partial sums.</summary>
    public void LaunchRmsNormRowsApply(int rows, DeviceView<float> hidden, DeviceView<float> partialSums, DeviceView<float> weight, DeviceView<float> output, int length, int chunkLength, float epsilon)
    {
        RequireAtLeast(output, (long)rows * length, nameof(output));
        PackRmsNormRowsApply(arguments.Clear(), rows, hidden, partialSums, weight, output, length, ChunkCount(length, chunkLength), epsilon);
        Launch(rmsNormRowsApply, checked(rows * length));
    }

    /// <summary>Prefill: t = B·x for every row; rank 0 launches nothing.</summary>
    public void LaunchUnitRightFactorRows(int rows, int rank, DeviceView<Half> rightFactor, DeviceView<float> input, DeviceView<float> projected, int cols)
    {
        RequireAtLeast(projected, (long)rows * rank, nameof(projected));
        PackUnitRightFactorRows(arguments.Clear(), rows, rank, rightFactor, input, projected, cols);
        Launch(unitRightFactorRows, checked(rows * rank));
    }

    /// <summary>Prefill: the corrected W4 product of a stacked unit for every row, row t's outputs at t·outputStride.</summary>
    public void LaunchW4GemmCorrected(
        int rows, int totalRows, DeviceView<uint> codeWords, DeviceView<Half> scales, DeviceView<byte> zeros, DeviceView<float> bias,
        DeviceView<Half> leftFactors, DeviceView<float> projected, DeviceView<float> input, DeviceView<float> output,
        int cols, int groupSize, int rank, int outputStride)
    {
        RequireAtLeast(input, (long)rows * cols, nameof(input));
        RequireAtLeast(output, ((long)(rows - 1) * outputStride) + totalRows, nameof(output));
        PackW4GemmCorrected(arguments.Clear(), rows, totalRows, codeWords, scales, zeros, bias, leftFactors, projected, input, output, cols, groupSize, rank, outputStride);
        Launch(w4GemmCorrected, checked(rows * totalRows));
    }

    /// <summary>Prefill: silu(gate)·up of a stacked gate/up unit for every row.</summary>
    public void LaunchW4GemmSwiGlu(
        int rows, DeviceView<uint> codeWords, DeviceView<Half> scales, DeviceView<byte> zeros, DeviceView<float> bias,
        DeviceView<Half> leftFactors, DeviceView<float> projected, DeviceView<float> input, DeviceView<float> hidden,
        int hiddenRows, int cols, int groupSize, int rank)
    {
        RequireAtLeast(input, (long)rows * cols, nameof(input));
        RequireAtLeast(hidden, (long)rows * hiddenRows, nameof(hidden));
        PackW4GemmSwiGlu(arguments.Clear(), rows, codeWords, scales, zeros, bias, leftFactors, projected, input, hidden, hiddenRows, cols, groupSize, rank);
        Launch(w4GemmSwiGlu, checked(rows * hiddenRows));
    }

    /// <summary>hidden = silu(gate)·up per row, gate and up side by side in each row of <paramref name="gateUp"/>.</summary>
    public void LaunchSwiGluRows(int rows, DeviceView<float> gateUp, DeviceView<float> hidden, int hiddenRows)
    {
        RequireAtLeast(gateUp, 2L * rows * hiddenRows, nameof(gateUp));
        RequireAtLeast(hidden, (long)rows * hiddenRows, nameof(hidden));
        PackSwiGluRows(arguments.Clear(), rows, gateUp, hidden, hiddenRows);
        Launch(swiGluRows, checked(rows * hiddenRows));
    }

    /// <summary>Prefill RoPE in either layout: row t at position startPosition + t, its heads at t·rowStride.</summary>
    public void LaunchRopeRows(
        RopeLayout layout, int rows, DeviceView<float> heads, DeviceView<float> cos, DeviceView<float> sin, int headDim, int headsPerRow, int rowStride, int startPosition)
    {
        var pairs = RopeRowsPairCount(rows, cos, sin, headDim, headsPerRow, startPosition);
        PackRopeRows(arguments.Clear(), rows, heads, cos, sin, headDim, headsPerRow, rowStride, startPosition);
        Launch(layout == RopeLayout.InterleavedPairs ? ropeInterleavedRows : ropeHalfSplitRows, pairs);
    }

    /// <summary>Prefill: stores every row's k and v at positions startPosition… of an fp32 or fp16 (<see cref="Half"/>) cache.</summary>
    public void LaunchKvCacheStoreRows<TCache>(
        int rows, DeviceView<float> tokenKeys, DeviceView<float> tokenValues, DeviceView<TCache> keys, DeviceView<TCache> values,
        int kvHeads, int headDim, int contextLength, int rowStride, int startPosition)
        where TCache : unmanaged
    {
        var extent = CheckKvCacheStoreRows(rows, keys, values, kvHeads, headDim, contextLength, startPosition);
        PackKvCacheStoreRows(arguments.Clear(), rows, tokenKeys, tokenValues, keys, values, headDim, contextLength, kvHeads * headDim, rowStride, startPosition);
        Launch(ForCache<TCache>(kvCacheStoreRows, kvCacheStoreHalfRows), extent);
    }

    /// <summary>Prefill: causal attention scores of every row and head, [rows × heads × maxSpan], over an fp32 or fp16 key cache.</summary>
    public void LaunchAttentionScoresRows<TCache>(
        int rows, DeviceView<float> query, DeviceView<TCache> keys, DeviceView<float> scores, int heads, int kvHeads, int headDim,
        int contextLength, int startPosition, int window, int queryStride, float scale)
        where TCache : unmanaged
    {
        var extent = CheckAttentionRows(rows, keys, scores, heads, kvHeads, headDim, contextLength, startPosition);
        PackAttentionScoresRows(arguments.Clear(), rows, query, keys, scores, heads, kvHeads, headDim, contextLength, startPosition, window, startPosition + rows, queryStride, scale);
        Launch(ForCache<TCache>(attentionScoresRows, attentionScoresHalfRows), extent);
    }

    /// <summary>Prefill: softmax of each (row, head)'s causal span.</summary>
    public void LaunchAttentionSoftmaxRows(int rows, DeviceView<float> scores, int heads, int startPosition, int window)
    {
        RequireAtLeast(scores, (long)rows * heads * (startPosition + rows), nameof(scores));
        PackAttentionSoftmaxRows(arguments.Clear(), rows, scores, heads, startPosition, window, startPosition + rows);
        Launch(attentionSoftmaxRows, checked(rows * heads));
    }

    /// <summary>Prefill: the attention output of every row, [rows × heads·headDim], over an fp32 or fp16 value cache.</summary>
    public void LaunchAttentionWeightedSumRows<TCache>(
        int rows, DeviceView<float> weights, DeviceView<TCache> values, DeviceView<float> output, int heads, int kvHeads, int headDim,
        int contextLength, int startPosition, int window)
        where TCache : unmanaged
    {
        CheckAttentionRows(rows, values, weights, heads, kvHeads, headDim, contextLength, startPosition);
        RequireAtLeast(output, (long)rows * heads * headDim, nameof(output));
        PackAttentionWeightedSumRows(arguments.Clear(), rows, weights, values, output, heads, kvHeads, headDim, contextLength, startPosition, window, startPosition + rows);
        Launch(ForCache<TCache>(attentionWeightedSumRows, attentionWeightedSumHalfRows), checked(rows * heads * headDim));
    }

    /// <summary>The kernel for a cache of <typeparamref name="TCache"/>: fp32 (<see cref="float"/>) or fp16 (<see cref="Half"/>).</summary>
    private static int ForCache<TCache>(int single, int half)
        where TCache : unmanaged =>
        typeof(TCache) == typeof(float) ? single
        : typeof(TCache) == typeof(Half) ? half
        : throw new ArgumentException($"a KV cache holds float or Half, not {typeof(TCache).Name}", nameof(TCache));

    /// <summary>
    /// The views every W4 kernel (decode or prefill, corrected or SwiGLU) takes after its extent, in their parameter
    /// order: the stacked unit's codes, scales, zero points, bias and A, then t = B·x, the input and the output.
    /// </summary>
    private static KernelArguments AddUnitViews(
        KernelArguments packed, DeviceView<uint> codeWords, DeviceView<Half> scales, DeviceView<byte> zeros, DeviceView<float> bias,
        DeviceView<Half> leftFactors, DeviceView<float> projected, DeviceView<float> input, DeviceView<float> output) =>
        packed.AddView(codeWords.Pointer, codeWords.Length)
            .AddView(scales.Pointer, scales.Length)
            .AddView(zeros.Pointer, zeros.Length)
            .AddView(bias.Pointer, bias.Length)
            .AddView(leftFactors.Pointer, leftFactors.Length)
            .AddView(projected.Pointer, projected.Length)
            .AddView(input.Pointer, input.Length)
            .AddView(output.Pointer, output.Length);

    internal static void PackW4GemvCorrected(
        KernelArguments packed, int extent, DeviceView<uint> codeWords, DeviceView<Half> scales, DeviceView<byte> zeros,
        DeviceView<float> bias, DeviceView<Half> leftFactors, DeviceView<float> projected, DeviceView<float> input,
        DeviceView<float> output, int cols, int groupSize, int rank) =>
        AddUnitViews(packed.AddExtent(extent), codeWords, scales, zeros, bias, leftFactors, projected, input, output)
            .AddInt32(cols)
            .AddInt32(groupSize)
            .AddInt32(rank);

    internal static void PackW4GemvSwiGlu(
        KernelArguments packed, int extent, DeviceView<uint> codeWords, DeviceView<Half> scales, DeviceView<byte> zeros,
        DeviceView<float> bias, DeviceView<Half> leftFactors, DeviceView<float> projected, DeviceView<float> input,
        DeviceView<float> hidden, int hiddenRows, int cols, int groupSize, int rank) =>
        AddUnitViews(packed.AddExtent(extent), codeWords, scales, zeros, bias, leftFactors, projected, input, hidden)
            .AddInt32(hiddenRows)
            .AddInt32(cols)
            .AddInt32(groupSize)
            .AddInt32(rank);

    internal static void PackUnitRightFactor(
        KernelArguments packed, int extent, DeviceView<Half> rightFactor, DeviceView<float> input, DeviceView<float> projected, int cols) =>
        packed.AddExtent(extent)
            .AddView(rightFactor.Pointer, rightFactor.Length)
            .AddView(input.Pointer, input.Length)
            .AddView(projected.Pointer, projected.Length)
            .AddInt32(cols);

    internal static void PackRmsNormPartialSums(
        KernelArguments packed, DeviceView<float> hidden, DeviceView<float> residualDelta, DeviceView<float> partialSums, int length, int chunkLength) =>
        packed.AddExtent(ChunkCount(length, chunkLength))
            .AddView(hidden.Pointer, hidden.Length)
            .AddView(residualDelta.Pointer, residualDelta.Length)
            .AddView(partialSums.Pointer, partialSums.Length)
            .AddInt32(length)
            .AddInt32(chunkLength);

    internal static void PackRmsNormApply(
        KernelArguments packed, DeviceView<float> hidden, DeviceView<float> partialSums, DeviceView<float> weight, DeviceView<float> output,
        int length, float epsilon) =>
        packed.AddExtent(length)
            .AddView(hidden.Pointer, hidden.Length)
            .AddView(partialSums.Pointer, partialSums.Length)
            .AddView(weight.Pointer, weight.Length)
            .AddView(output.Pointer, output.Length)
            .AddInt32(length)
            .AddFloat(epsilon);

    internal static void PackArgmaxPartial(
        KernelArguments packed, DeviceView<float> logits, DeviceView<float> partialMaxima, DeviceView<int> partialIndices, int length, int chunkLength) =>
        packed.AddExtent(ChunkCount(length, chunkLength))
            .AddView(logits.Pointer, logits.Length)
            .AddView(partialMaxima.Pointer, partialMaxima.Length)
            .AddView(partialIndices.Pointer, partialIndices.Length)
            .AddInt32(length)
            .AddInt32(chunkLength);

    internal static void PackArgmaxFinal(
        KernelArguments packed, DeviceView<float> partialMaxima, DeviceView<int> partialIndices, DeviceView<int> result) =>
        packed.AddExtent(1)
            .AddView(partialMaxima.Pointer, partialMaxima.Length)
            .AddView(partialIndices.Pointer, partialIndices.Length)
            .AddView(result.Pointer, result.Length);

    /// <summary>Both RoPE layouts share one signature; only the entry differs.</summary>
    internal static void PackRope(
        KernelArguments packed, DeviceView<float> heads, DeviceView<float> cos, DeviceView<float> sin, int pairs, int headDim) =>
        packed.AddExtent(pairs)
            .AddView(heads.Pointer, heads.Length)
            .AddView(cos.Pointer, cos.Length)
            .AddView(sin.Pointer, sin.Length)
            .AddInt32(headDim);

    internal static void PackEmbeddingLookup(KernelArguments packed, DeviceView<Half> table, DeviceView<float> output, int token, int dim) =>
        packed.AddExtent(dim)
            .AddView(table.Pointer, table.Length)
            .AddView(output.Pointer, output.Length)
            .AddInt32(token)
            .AddInt32(dim);

    internal static void PackAttentionScores(
        KernelArguments packed, DeviceView<float> query, DeviceView<float> keys, DeviceView<float> scores,
        int heads, int kvHeads, int headDim, int contextLength, int firstPosition, int span, float scale) =>
        PackScores(packed, query, keys, scores, heads, kvHeads, headDim, contextLength, firstPosition, span, scale);

    internal static void PackAttentionScoresHalf(
        KernelArguments packed, DeviceView<float> query, DeviceView<Half> keys, DeviceView<float> scores,
        int heads, int kvHeads, int headDim, int contextLength, int firstPosition, int span, float scale) =>
        PackScores(packed, query, keys, scores, heads, kvHeads, headDim, contextLength, firstPosition, span, scale);

    internal static void PackAttentionSoftmax(KernelArguments packed, DeviceView<float> scores, int heads, int span) =>
        packed.AddExtent(heads)
            .AddView(scores.Pointer, scores.Length)
            .AddInt32(span);

    internal static void PackAttentionWeightedSum(
        KernelArguments packed, DeviceView<float> weights, DeviceView<float> values, DeviceView<float> output,
        int heads, int kvHeads, int headDim, int contextLength, int firstPosition, int span) =>
        PackWeightedSum(packed, weights, values, output, heads, kvHeads, headDim, contextLength, firstPosition, span);

    internal static void PackAttentionWeightedSumHalf(
        KernelArguments packed, DeviceView<float> weights, DeviceView<Half> values, DeviceView<float> output,
        int heads, int kvHeads, int headDim, int contextLength, int firstPosition, int span) =>
        PackWeightedSum(packed, weights, values, output, heads, kvHeads, headDim, contextLength, firstPosition, span);

    /// <summary><paramref name="kvHeads"/> only sets the extent (kvHeads · headDim); the kernel itself does not take it.</summary>
    internal static void PackKvCacheStore(
        KernelArguments packed, DeviceView<float> tokenKeys, DeviceView<float> tokenValues, DeviceView<float> keys, DeviceView<float> values,
        int kvHeads, int headDim, int contextLength, int position) =>
        PackCacheStore(packed, tokenKeys, tokenValues, keys, values, kvHeads, headDim, contextLength, position);

    /// <summary><paramref name="kvHeads"/> only sets the extent (kvHeads · headDim); the kernel itself does not take it.</summary>
    internal static void PackKvCacheStoreHalf(
        KernelArguments packed, DeviceView<float> tokenKeys, DeviceView<float> tokenValues, DeviceView<Half> keys, DeviceView<Half> values,
        int kvHeads, int headDim, int contextLength, int position) =>
        PackCacheStore(packed, tokenKeys, tokenValues, keys, values, kvHeads, headDim, contextLength, position);

    internal static void PackHalfMatrixVector(
        KernelArguments packed, int extent, DeviceView<Half> matrix, DeviceView<float> input, DeviceView<float> output, int cols) =>
        packed.AddExtent(extent)
            .AddView(matrix.Pointer, matrix.Length)
            .AddView(input.Pointer, input.Length)
            .AddView(output.Pointer, output.Length)
            .AddInt32(cols);

    internal static void PackEmbeddingLookupRows(KernelArguments packed, int rows, DeviceView<Half> table, DeviceView<int> tokens, DeviceView<float> output, int dim) =>
        packed.AddExtent(checked(rows * dim))
            .AddView(table.Pointer, table.Length)
            .AddView(tokens.Pointer, tokens.Length)
            .AddView(output.Pointer, output.Length)
            .AddInt32(dim);

    internal static void PackRmsNormRowsPartialSums(
        KernelArguments packed, int rows, DeviceView<float> hidden, DeviceView<float> residualDelta, DeviceView<float> partialSums, int length, int chunkLength) =>
        packed.AddExtent(checked(rows * ChunkCount(length, chunkLength)))
            .AddView(hidden.Pointer, hidden.Length)
            .AddView(residualDelta.Pointer, residualDelta.Length)
            .AddView(partialSums.Pointer, partialSums.Length)
            .AddInt32(length)
            .AddInt32(chunkLength)
            .AddInt32(ChunkCount(length, chunkLength));

    internal static void PackRmsNormRowsApply(
        KernelArguments packed, int rows, DeviceView<float> hidden, DeviceView<float> partialSums, DeviceView<float> weight, DeviceView<float> output,
        int length, int chunks, float epsilon) =>
        packed.AddExtent(checked(rows * length))
            .AddView(hidden.Pointer, hidden.Length)
            .AddView(partialSums.Pointer, partialSums.Length)
            .AddView(weight.Pointer, weight.Length)
            .AddView(output.Pointer, output.Length)
            .AddInt32(length)
            .AddInt32(chunks)
            .AddFloat(epsilon);

    internal static void PackUnitRightFactorRows(
        KernelArguments packed, int rows, int rank, DeviceView<Half> rightFactor, DeviceView<float> input, DeviceView<float> projected, int cols) =>
        packed.AddExtent(checked(rows * rank))
            .AddView(rightFactor.Pointer, rightFactor.Length)
            .AddView(input.Pointer, input.Length)
            .AddView(projected.Pointer, projected.Length)
            .AddInt32(cols)
            .AddInt32(rank);

    internal static void PackW4GemmCorrected(
        KernelArguments packed, int rows, int totalRows, DeviceView<uint> codeWords, DeviceView<Half> scales, DeviceView<byte> zeros,
        DeviceView<float> bias, DeviceView<Half> leftFactors, DeviceView<float> projected, DeviceView<float> input,
        DeviceView<float> output, int cols, int groupSize, int rank, int outputStride) =>
        AddUnitViews(packed.AddExtent(checked(rows * totalRows)), codeWords, scales, zeros, bias, leftFactors, projected, input, output)
            .AddInt32(totalRows)
            .AddInt32(cols)
            .AddInt32(groupSize)
            .AddInt32(rank)
            .AddInt32(outputStride);

    internal static void PackW4GemmSwiGlu(
        KernelArguments packed, int rows, DeviceView<uint> codeWords, DeviceView<Half> scales, DeviceView<byte> zeros,
        DeviceView<float> bias, DeviceView<Half> leftFactors, DeviceView<float> projected, DeviceView<float> input,
        DeviceView<float> hidden, int hiddenRows, int cols, int groupSize, int rank) =>
        AddUnitViews(packed.AddExtent(checked(rows * hiddenRows)), codeWords, scales, zeros, bias, leftFactors, projected, input, hidden)
            .AddInt32(hiddenRows)
            .AddInt32(cols)
            .AddInt32(groupSize)
            .AddInt32(rank);

    internal static void PackSwiGluRows(KernelArguments packed, int rows, DeviceView<float> gateUp, DeviceView<float> hidden, int hiddenRows) =>
        packed.AddExtent(checked(rows * hiddenRows))
            .AddView(gateUp.Pointer, gateUp.Length)
            .AddView(hidden.Pointer, hidden.Length)
            .AddInt32(hiddenRows);

    /// <summary>Both prefill RoPE layouts share one signature; only the entry differs.</summary>
    internal static void PackRopeRows(
        KernelArguments packed, int rows, DeviceView<float> heads, DeviceView<float> cos, DeviceView<float> sin,
        int headDim, int headsPerRow, int rowStride, int startPosition) =>
        packed.AddExtent(checked(rows * headsPerRow * (headDim / 2)))
            .AddView(heads.Pointer, heads.Length)
            .AddView(cos.Pointer, cos.Length)
            .AddView(sin.Pointer, sin.Length)
            .AddInt32(headDim)
            .AddInt32(headsPerRow)
            .AddInt32(rowStride)
            .AddInt32(startPosition);

    internal static void PackKvCacheStoreRows<TCache>(
        KernelArguments packed, int rows, DeviceView<float> tokenKeys, DeviceView<float> tokenValues, DeviceView<TCache> keys, DeviceView<TCache> values,
        int headDim, int contextLength, int kvDim, int rowStride, int startPosition)
        where TCache : unmanaged =>
        packed.AddExtent(checked(rows * kvDim))
            .AddView(tokenKeys.Pointer, tokenKeys.Length)
            .AddView(tokenValues.Pointer, tokenValues.Length)
            .AddView(keys.Pointer, keys.Length)
            .AddView(values.Pointer, values.Length)
            .AddInt32(headDim)
            .AddInt32(contextLength)
            .AddInt32(kvDim)
            .AddInt32(rowStride)
            .AddInt32(startPosition);

    internal static void PackAttentionScoresRows<TKey>(
        KernelArguments packed, int rows, DeviceView<float> query, DeviceView<TKey> keys, DeviceView<float> scores,
        int heads, int kvHeads, int headDim, int contextLength, int startPosition, int window, int maxSpan, int queryStride, float scale)
        where TKey : unmanaged =>
        packed.AddExtent(checked(rows * heads * maxSpan))
            .AddView(query.Pointer, query.Length)
            .AddView(keys.Pointer, keys.Length)
            .AddView(scores.Pointer, scores.Length)
            .AddInt32(heads)
            .AddInt32(kvHeads)
            .AddInt32(headDim)
            .AddInt32(contextLength)
            .AddInt32(startPosition)
            .AddInt32(window)
            .AddInt32(maxSpan)
            .AddInt32(queryStride)
            .AddFloat(scale);

    internal static void PackAttentionSoftmaxRows(KernelArguments packed, int rows, DeviceView<float> scores, int heads, int startPosition, int window, int maxSpan) =>
        packed.AddExtent(checked(rows * heads))
            .AddView(scores.Pointer, scores.Length)
            .AddInt32(heads)
            .AddInt32(startPosition)
            .AddInt32(window)
            .AddInt32(maxSpan);

    internal static void PackAttentionWeightedSumRows<TValue>(
        KernelArguments packed, int rows, DeviceView<float> weights, DeviceView<TValue> values, DeviceView<float> output,
        int heads, int kvHeads, int headDim, int contextLength, int startPosition, int window, int maxSpan)
        where TValue : unmanaged =>
        packed.AddExtent(checked(rows * heads * headDim))
            .AddView(weights.Pointer, weights.Length)
            .AddView(values.Pointer, values.Length)
            .AddView(output.Pointer, output.Length)
            .AddInt32(heads)
            .AddInt32(kvHeads)
            .AddInt32(headDim)
            .AddInt32(contextLength)
            .AddInt32(startPosition)
            .AddInt32(window)
            .AddInt32(maxSpan);

    /// <summary>The fp32 and fp16 score kernels share one signature but for the key cache's element type.</summary>
    private static void PackScores<TKey>(
        KernelArguments packed, DeviceView<float> query, DeviceView<TKey> keys, DeviceView<float> scores,
        int heads, int kvHeads, int headDim, int contextLength, int firstPosition, int span, float scale)
        where TKey : unmanaged =>
        packed.AddExtent(checked(heads * span))
            .AddView(query.Pointer, query.Length)
            .AddView(keys.Pointer, keys.Length)
            .AddView(scores.Pointer, scores.Length)
            .AddInt32(heads)
            .AddInt32(kvHeads)
            .AddInt32(headDim)
            .AddInt32(contextLength)
            .AddInt32(firstPosition)
            .AddInt32(span)
            .AddFloat(scale);

    private static void PackWeightedSum<TValue>(
        KernelArguments packed, DeviceView<float> weights, DeviceView<TValue> values, DeviceView<float> output,
        int heads, int kvHeads, int headDim, int contextLength, int firstPosition, int span)
        where TValue : unmanaged =>
        packed.AddExtent(checked(heads * headDim))
            .AddView(weights.Pointer, weights.Length)
            .AddView(values.Pointer, values.Length)
            .AddView(output.Pointer, output.Length)
            .AddInt32(heads)
            .AddInt32(kvHeads)
            .AddInt32(headDim)
            .AddInt32(contextLength)
            .AddInt32(firstPosition)
            .AddInt32(span);

    private static void PackCacheStore<TCache>(
        KernelArguments packed, DeviceView<float> tokenKeys, DeviceView<float> tokenValues, DeviceView<TCache> keys, DeviceView<TCache> values,
        int kvHeads, int headDim, int contextLength, int position)
        where TCache : unmanaged =>
        packed.AddExtent(checked(kvHeads * headDim))
            .AddView(tokenKeys.Pointer, tokenKeys.Length)
            .AddView(tokenValues.Pointer, tokenValues.Length)
            .AddView(keys.Pointer, keys.Length)
            .AddView(values.Pointer, values.Length)
            .AddInt32(headDim)
            .AddInt32(contextLength)
            .AddInt32(position);

    /// <summary>Host-side checks of an <c>AttentionScores</c> launch; returns its extent, heads · span.</summary>
    internal static int CheckAttentionScores<TKey>(
        DeviceView<float> query, DeviceView<TKey> keys, DeviceView<float> scores,
        int heads, int kvHeads, int headDim, int contextLength, int firstPosition, int span)
        where TKey : unmanaged
    {
        CheckAttentionShape(heads, kvHeads, headDim, contextLength, firstPosition, span);
        RequireAtLeast(query, (long)heads * headDim, nameof(query));
        RequireAtLeast(keys, (long)kvHeads * contextLength * headDim, nameof(keys));
        RequireAtLeast(scores, (long)heads * span, nameof(scores));
        return heads * span;
    }

    /// <summary>Host-side checks of an <c>AttentionSoftmax</c> launch (extent heads).</summary>
    internal static void CheckAttentionSoftmax(DeviceView<float> scores, int heads, int span)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(heads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(span);
        RequireIndexable((long)heads * span, nameof(span));
        RequireAtLeast(scores, (long)heads * span, nameof(scores));
    }

    /// <summary>Host-side checks of an <c>AttentionWeightedSum</c> launch; returns its extent, heads · headDim.</summary>
    internal static int CheckAttentionWeightedSum<TValue>(
        DeviceView<float> weights, DeviceView<TValue> values, DeviceView<float> output,
        int heads, int kvHeads, int headDim, int contextLength, int firstPosition, int span)
        where TValue : unmanaged
    {
        CheckAttentionShape(heads, kvHeads, headDim, contextLength, firstPosition, span);
        RequireAtLeast(weights, (long)heads * span, nameof(weights));
        RequireAtLeast(values, (long)kvHeads * contextLength * headDim, nameof(values));
        RequireAtLeast(output, (long)heads * headDim, nameof(output));
        return heads * headDim;
    }

    /// <summary>Host-side checks of a <c>KvCacheStore</c> launch; returns its extent, kvHeads · headDim.</summary>
    internal static int CheckKvCacheStore<TCache>(
        DeviceView<float> tokenKeys, DeviceView<float> tokenValues, DeviceView<TCache> keys, DeviceView<TCache> values,
        int kvHeads, int headDim, int contextLength, int position)
        where TCache : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kvHeads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(headDim);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(contextLength);
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(position, contextLength);
        // The kernel's thread index kv·headDim + d is a 32-bit int.
        RequireIndexable((long)kvHeads * headDim, nameof(headDim));
        var tokenElements = (long)kvHeads * headDim;
        var cacheElements = tokenElements * contextLength;
        RequireAtLeast(tokenKeys, tokenElements, nameof(tokenKeys));
        RequireAtLeast(tokenValues, tokenElements, nameof(tokenValues));
        RequireAtLeast(keys, cacheElements, nameof(keys));
        RequireAtLeast(values, cacheElements, nameof(values));
        return (int)tokenElements;
    }

    /// <summary>Host-side checks of a prefill KV store: the block's positions inside the cache; returns its extent.</summary>
    private static int CheckKvCacheStoreRows<TCache>(int rows, DeviceView<TCache> keys, DeviceView<TCache> values, int kvHeads, int headDim, int contextLength, int startPosition)
        where TCache : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(startPosition);
        if ((long)startPosition + rows > contextLength)
        {
            throw new ArgumentOutOfRangeException(nameof(rows), rows, $"positions {startPosition}…{(long)startPosition + rows - 1} lie past a cache of {contextLength} positions");
        }
        RequireAtLeast(keys, (long)kvHeads * contextLength * headDim, nameof(keys));
        RequireAtLeast(values, (long)kvHeads * contextLength * headDim, nameof(values));
        RequireIndexable((long)rows * kvHeads * headDim, nameof(rows));
        return rows * kvHeads * headDim;
    }

    /// <summary>Host-side checks of a prefill attention launch; returns the scores' extent, rows · heads · (startPosition + rows).</summary>
    private static int CheckAttentionRows<TCache>(int rows, DeviceView<TCache> cache, DeviceView<float> scores, int heads, int kvHeads, int headDim, int contextLength, int startPosition)
        where TCache : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        CheckAttentionShape(heads, kvHeads, headDim, contextLength, 0, startPosition + rows);
        RequireAtLeast(cache, (long)kvHeads * contextLength * headDim, nameof(cache));
        var extent = (long)rows * heads * (startPosition + rows);
        RequireIndexable(extent, nameof(rows));
        RequireAtLeast(scores, extent, nameof(scores));
        return (int)extent;
    }

    private static int RopeRowsPairCount(int rows, DeviceView<float> cos, DeviceView<float> sin, int headDim, int headsPerRow, int startPosition)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        if (headDim <= 0 || headDim % 2 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "RoPE rotates pairs: the head size must be even");
        }
        RequireAtLeast(cos, ((long)startPosition + rows) * (headDim / 2), nameof(cos));
        RequireAtLeast(sin, ((long)startPosition + rows) * (headDim / 2), nameof(sin));
        return checked(rows * headsPerRow * (headDim / 2));
    }

    /// <summary>
    /// The shape every attention launch shares: heads a multiple of kvHeads (query head h reads kv head h / (heads /
    /// kvHeads)), the attended positions inside the cache, and the kernels' 32-bit indices (h·span + s, h·headDim + d)
    /// in range.
    /// </summary>
    private static void CheckAttentionShape(int heads, int kvHeads, int headDim, int contextLength, int firstPosition, int span)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(heads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kvHeads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(headDim);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(contextLength);
        ArgumentOutOfRangeException.ThrowIfNegative(firstPosition);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(span);
        if (heads % kvHeads != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(heads), heads, $"the query heads must be a multiple of the {kvHeads} kv heads");
        }
        if ((long)firstPosition + span > contextLength)
        {
            throw new ArgumentOutOfRangeException(nameof(span), span,
                $"positions {firstPosition}…{(long)firstPosition + span - 1} lie past a cache of {contextLength} positions");
        }
        RequireIndexable((long)heads * span, nameof(span));
        RequireIndexable((long)heads * headDim, nameof(headDim));
    }

    /// <summary>A count the kernel indexes with a signed 32-bit int (and an extent must be) may not pass int.MaxValue.</summary>
    private static void RequireIndexable(long elements, string name)
    {
        if (elements > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(name, string.Create(CultureInfo.InvariantCulture,
                $"{elements} elements overflow the kernel's 32-bit index"));
        }
    }

    private static int ChunkCount(int length, int chunkLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunkLength);
        return (int)(((long)length + chunkLength - 1) / chunkLength);
    }

    private static int RopePairCount(DeviceView<float> heads, int headCount, int headDim)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(headCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(headDim);
        if (headDim % 2 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "RoPE rotates pairs: the head size must be even");
        }
        RequireAtLeast(heads, (long)headCount * headDim, nameof(heads));
        return checked(headCount * (headDim / 2));
    }

    private static void RequireAtLeast<T>(DeviceView<T> view, long elements, string name)
        where T : unmanaged
    {
        if (view.Length < elements)
        {
            throw new ArgumentException(
                string.Create(CultureInfo.InvariantCulture, $"the kernel writes or reads {elements} elements but the view holds {view.Length}"), name);
        }
    }

    private static DeviceView<T> Placeholder<T>()
        where T : unmanaged => new(new DevicePointer(0x1000), 1 << 20);

    /// <summary>Launches over <paramref name="extent"/> threads; an extent of 0 has no work and launches nothing.</summary>
    /// <summary>The extent of a warp-per-row kernel: every row gets a whole warp, so no lane is missing from a shuffle.</summary>
    private int WarpPerRow(int rows) => checked(rows * device.WarpSize);

    private void Launch(int kernel, int extent)
    {
        if (extent == 0)
        {
            return;
        }
        device.Launch(kernel, extent, arguments);
    }
}
