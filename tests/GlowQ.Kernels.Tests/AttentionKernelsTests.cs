using System.Runtime.InteropServices;
using GlowQ.Engine;
using ILGPU;
using Half = System.Half;
using ILGPU.Runtime;

namespace GlowQ.Kernels.Tests;

/// <summary>
/// Decode attention and the KV cache store on the device, against the CPU engine's <see cref="KvCache"/> and
/// <see cref="Attention"/> fed the same tokens, and against a float64 recomputation from the cached keys and values.
/// Tolerance: per output element, 1e-5 × Σ_p w_p·|v_p[d]| (the magnitude an fp32 weighted sum's rounding scales with,
/// however much its terms cancel); scores are fp32 dot products of ≤ 24 terms and the softmax one fp32 exp per score,
/// both far inside that. The cache store must match the engine's bit for bit, fp16 rounding included.
/// </summary>
[Collection(CpuAcceleratorCollectionDefinition.Name)]
public sealed class AttentionKernelsTests(CpuAcceleratorFixture accelerators)
{
    private const double Tolerance = 1e-5;
    private const int ContextLength = 40;

    [Theory]
    [InlineData(4, 8, 4, 16, 0, 0, KvCacheDtype.F32)]
    [InlineData(32, 8, 4, 16, 6, 0, KvCacheDtype.F32)]
    [InlineData(4, 4, 1, 24, 32, 0, KvCacheDtype.F32)]
    [InlineData(32, 8, 4, 24, 0, 0, KvCacheDtype.F16)]
    [InlineData(4, 4, 1, 16, 6, 0, KvCacheDtype.F16)]
    [InlineData(32, 8, 4, 24, 32, 0, KvCacheDtype.F16)]
    public void Attends_causally_over_every_position_like_float64_and_the_cpu_engine(
        int warpSize, int heads, int kvHeads, int headDim, int position, int window, KvCacheDtype dtype) =>
        AttendLikeReferences(accelerators.WithWarpSize(warpSize), heads, kvHeads, headDim, position, window, dtype);

    [Theory]
    [InlineData(4, 8, 4, 16, 32, 7, KvCacheDtype.F32)]
    [InlineData(32, 4, 1, 24, 32, 7, KvCacheDtype.F16)]
    [InlineData(32, 8, 4, 24, 32, 1, KvCacheDtype.F32)]
    [InlineData(4, 8, 4, 24, 5, 7, KvCacheDtype.F16)]
    public void Attends_only_within_a_sliding_window_like_float64_and_the_cpu_engine(
        int warpSize, int heads, int kvHeads, int headDim, int position, int window, KvCacheDtype dtype) =>
        AttendLikeReferences(accelerators.WithWarpSize(warpSize), heads, kvHeads, headDim, position, window, dtype);

    /// <summary>Spans split into chunks of 1, 3, 7 and 16 positions, the last chunk ragged or whole, windowed or not.</summary>
    [Theory]
    [InlineData(4, 8, 4, 16, 32, 0, KvCacheDtype.F32, 7)]
    [InlineData(32, 4, 1, 24, 39, 0, KvCacheDtype.F16, 16)]
    [InlineData(4, 8, 4, 24, 20, 0, KvCacheDtype.F32, 3)]
    [InlineData(32, 8, 4, 16, 32, 9, KvCacheDtype.F16, 3)]
    [InlineData(4, 4, 1, 16, 5, 0, KvCacheDtype.F32, 1)]
    public void Split_over_the_sequence_attends_like_float64_and_the_cpu_engine(
        int warpSize, int heads, int kvHeads, int headDim, int position, int window, KvCacheDtype dtype, int chunkLength) =>
        AttendLikeReferences(accelerators.WithWarpSize(warpSize), heads, kvHeads, headDim, position, window, dtype, chunkLength);

    [Fact]
    public void Split_softmax_of_scores_far_beyond_exp_range_stays_finite_and_a_NaN_score_poisons_only_its_head()
    {
        Accelerator accelerator = accelerators.WithWarpSize(4);
        const int Heads = 2, Span = 7, ChunkLength = 3, HeadDim = 1, Chunks = 3;
        // Head 0: one chunk far above the others; head 1: a NaN in its last chunk.
        float[] scores = [-1000f, -999f, -998f, 1000f, 999.5f, 990f, -5f, 1f, 2f, 3f, 4f, 5f, 6f, float.NaN];
        float[] values = [.. Enumerable.Range(0, Span).Select(p => (float)(p + 1))];
        using var scoreBuffer = accelerator.Upload(scores);
        using var valueBuffer = accelerator.Upload(values);
        using var output = accelerator.Zeros<float>(Heads * HeadDim);

        // One kv head, context = span, head dim 1: values[p] is position p's value for both heads.
        using var maxima = accelerator.Zeros<float>(Heads * Chunks);
        using var sums = accelerator.Zeros<float>(Heads * Chunks);
        using var partials = accelerator.Zeros<float>(Heads * Chunks * HeadDim);
        accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(AttentionKernels.AttentionChunkSoftmax)(
            Heads * Chunks, scoreBuffer.View, maxima.View, sums.View, Span, ChunkLength, Chunks);
        accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int, int, int>(AttentionKernels.AttentionChunkWeightedSum)(
            Heads * Chunks * HeadDim, scoreBuffer.View, valueBuffer.View, partials.View, Heads, 1, HeadDim, Span, 0, Span, ChunkLength, Chunks);
        accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(AttentionKernels.AttentionCombineChunks)(
            Heads * HeadDim, partials.View, maxima.View, sums.View, output.View, HeadDim, Chunks);

        float[] actual = accelerator.Download(output);
        double[] row = [.. scores.Take(Span).Select(x => (double)x)];
        double max = row.Max();
        double expected = row.Select((x, p) => Math.Exp(x - max) * values[p]).Sum() / row.Sum(x => Math.Exp(x - max));
        Assert.True(Math.Abs(actual[0] - expected) <= Tolerance * Math.Abs(expected), $"head 0: gpu {actual[0]}, float64 {expected}");
        Assert.True(float.IsNaN(actual[1]), $"head 1 attends a NaN score but gave {actual[1]}");
    }

    [Theory]
    [InlineData(4)]
    [InlineData(32)]
    public void Softmax_of_scores_far_beyond_exp_range_stays_finite_and_sums_to_one(int warpSize)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        float[] scores = [1000f, 999f, -1000f, 998.5f, 1000f, -3f, 2f, 1f];
        using var buffer = accelerator.Upload(scores);
        var softmax = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, int>(AttentionKernels.AttentionSoftmax);

        softmax(2, buffer.View, 4);

        float[] actual = accelerator.Download(buffer);
        for (int row = 0; row < 2; row++)
        {
            double[] row64 = [.. scores.Skip(row * 4).Take(4).Select(s => (double)s)];
            double max = row64.Max();
            double sum = row64.Sum(s => Math.Exp(s - max));
            for (int i = 0; i < 4; i++)
            {
                double expected = Math.Exp(row64[i] - max) / sum;
                Assert.True(Math.Abs(actual[(row * 4) + i] - expected) <= (Tolerance * expected) + 1e-30, $"[{row},{i}]: gpu {actual[(row * 4) + i]}, float64 {expected}");
            }
        }
    }

    [Theory]
    [InlineData(4)]
    [InlineData(32)]
    public void The_fp16_store_rounds_to_nearest_even_exactly_like_System_Half_including_ties_subnormals_and_overflow(int warpSize)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        float[] special =
        [
            0f, -0f, 1f, -1f, 1f + MathF.ScaleB(1f, -11), 1f + (3 * MathF.ScaleB(1f, -11)), 1f + MathF.ScaleB(1f, -11) + MathF.ScaleB(1f, -20),
            65504f, 65519.99f, 65520f, -65520f, 1e6f, float.PositiveInfinity, float.NegativeInfinity,
            MathF.ScaleB(1f, -14), MathF.ScaleB(1f, -15), MathF.ScaleB(3f, -25), MathF.ScaleB(1f, -25), MathF.ScaleB(1.0001f, -25),
            MathF.ScaleB(1f, -24), MathF.ScaleB(5f, -26), 1e-10f, -1e-10f, float.Epsilon, MathF.ScaleB(0x3FF, -24) + MathF.ScaleB(1f, -25),
        ];
        float[] values = [.. special, .. DeviceData.Floats(new Random(5), 64 - special.Length, 70000f)];
        using var tokens = accelerator.Upload(values);
        using var keys = accelerator.Zeros<ILGPU.Half>(values.Length);
        using var cacheValues = accelerator.Zeros<ILGPU.Half>(values.Length);
        var storeHalf = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<ILGPU.Half>, ArrayView<ILGPU.Half>, int, int, int>(AttentionKernels.KvCacheStoreHalf);

        // One kv head, one position: the cache is laid out exactly as the token.
        storeHalf(values.Length, tokens.View, tokens.View, keys.View, cacheValues.View, values.Length, 1, 0);

        ushort[] actual = MemoryMarshal.Cast<ILGPU.Half, ushort>(accelerator.Download(keys)).ToArray();
        for (int i = 0; i < values.Length; i++)
        {
            Assert.True(BitConverter.HalfToUInt16Bits((Half)values[i]) == actual[i], $"{values[i]:R}: gpu 0x{actual[i]:X4}, System.Half 0x{BitConverter.HalfToUInt16Bits((Half)values[i]):X4}");
        }

        Assert.Equal(actual, MemoryMarshal.Cast<ILGPU.Half, ushort>(accelerator.Download(cacheValues)).ToArray());
    }

    /// <param name="chunkLength">0 for the single-pass softmax and weighted sum; else the split (flash-decoding) kernels with chunks of this many positions.</param>
    private static void AttendLikeReferences(Accelerator accelerator, int heads, int kvHeads, int headDim, int position, int window, KvCacheDtype dtype, int chunkLength = 0)
    {
        var random = new Random(HashCode.Combine(heads, kvHeads, headDim, position, window, dtype));
        int tokenWidth = kvHeads * headDim, layerLength = kvHeads * ContextLength * headDim;
        int first = window > 0 ? Math.Max(0, position - window + 1) : 0;
        int span = position - first + 1;
        float scale = 1f / MathF.Sqrt(headDim);
        bool half = dtype == KvCacheDtype.F16;

        // Unwritten cache slots hold NaN on the device, so a kernel reading past the attended positions poisons its output.
        var cache = new KvCache(1, kvHeads, headDim, ContextLength, dtype);
        using var deviceKeys32 = half ? null : accelerator.Upload(Enumerable.Repeat(float.NaN, layerLength).ToArray());
        using var deviceValues32 = half ? null : accelerator.Upload(Enumerable.Repeat(float.NaN, layerLength).ToArray());
        using var deviceKeys16 = half ? accelerator.UploadHalves(Enumerable.Repeat(Half.NaN, layerLength).ToArray()) : null;
        using var deviceValues16 = half ? accelerator.UploadHalves(Enumerable.Repeat(Half.NaN, layerLength).ToArray()) : null;
        using var tokenKeys = accelerator.Zeros<float>(tokenWidth);
        using var tokenValues = accelerator.Zeros<float>(tokenWidth);
        var store = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(AttentionKernels.KvCacheStore);
        var storeHalf = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<ILGPU.Half>, ArrayView<ILGPU.Half>, int, int, int>(AttentionKernels.KvCacheStoreHalf);
        for (int p = 0; p <= position; p++)
        {
            float[] k = DeviceData.Floats(random, tokenWidth), v = DeviceData.Floats(random, tokenWidth, 2f);
            cache.Store(0, p, k, v);
            tokenKeys.CopyFromCPU(k);
            tokenValues.CopyFromCPU(v);
            if (half)
            {
                storeHalf(tokenWidth, tokenKeys.View, tokenValues.View, deviceKeys16!.View, deviceValues16!.View, headDim, ContextLength, p);
            }
            else
            {
                store(tokenWidth, tokenKeys.View, tokenValues.View, deviceKeys32!.View, deviceValues32!.View, headDim, ContextLength, p);
            }
        }

        AssertStoredLikeTheEngine(accelerator, cache, position, deviceKeys32, deviceValues32, deviceKeys16, deviceValues16);

        float[] q = DeviceData.Floats(random, heads * headDim, 2f);
        using var query = accelerator.Upload(q);
        using var scores = accelerator.Zeros<float>(heads * span);
        using var output = accelerator.Zeros<float>(heads * headDim);
        if (half)
        {
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<ILGPU.Half>, ArrayView<float>, int, int, int, int, int, int, float>(AttentionKernels.AttentionScoresHalf)(
                heads * span, query.View, deviceKeys16!.View, scores.View, heads, kvHeads, headDim, ContextLength, first, span, scale);
        }
        else
        {
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int, float>(AttentionKernels.AttentionScores)(
                heads * span, query.View, deviceKeys32!.View, scores.View, heads, kvHeads, headDim, ContextLength, first, span, scale);
        }

        if (chunkLength > 0)
        {
            RunChunked(accelerator, scores.View, half ? deviceValues16!.View : default, half ? default : deviceValues32!.View, output.View,
                heads, kvHeads, headDim, first, span, chunkLength);
        }
        else
        {
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, int>(AttentionKernels.AttentionSoftmax)(heads, scores.View, span);
            if (half)
            {
                accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<ILGPU.Half>, ArrayView<float>, int, int, int, int, int, int>(AttentionKernels.AttentionWeightedSumHalf)(
                    heads * headDim, scores.View, deviceValues16!.View, output.View, heads, kvHeads, headDim, ContextLength, first, span);
            }
            else
            {
                accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int>(AttentionKernels.AttentionWeightedSum)(
                    heads * headDim, scores.View, deviceValues32!.View, output.View, heads, kvHeads, headDim, ContextLength, first, span);
            }
        }

        float[] actual = accelerator.Download(output);

        var cpu = new float[heads * headDim];
        using (var pool = new WorkerPool(1))
        {
            new Attention(pool, heads, kvHeads, headDim, ContextLength, window > 0 ? window : null).Run(cache, 0, q, cpu, position, tokens: 1);
        }

        (double[] expected, double[] magnitude) = Float64Attention(cache, q, heads, kvHeads, headDim, first, position);
        for (int i = 0; i < actual.Length; i++)
        {
            double bound = (Tolerance * magnitude[i]) + 1e-30;
            Assert.True(Math.Abs(actual[i] - expected[i]) <= bound, $"[{i}]: gpu {actual[i]}, float64 {expected[i]}");
            Assert.True(Math.Abs(actual[i] - cpu[i]) <= 2 * bound, $"[{i}]: gpu {actual[i]}, cpu {cpu[i]}");
        }
    }

    /// <summary>The split path: per-chunk softmax and weighted sums (fp16 values when <paramref name="values16"/> is set), then the join.</summary>
    private static void RunChunked(
        Accelerator accelerator, ArrayView<float> scores, ArrayView<ILGPU.Half> values16, ArrayView<float> values32, ArrayView<float> output,
        int heads, int kvHeads, int headDim, int first, int span, int chunkLength)
    {
        int chunks = ((span - 1) / chunkLength) + 1;
        using var maxima = accelerator.Zeros<float>(heads * chunks);
        using var sums = accelerator.Zeros<float>(heads * chunks);
        using var partials = accelerator.Zeros<float>(heads * chunks * headDim);
        accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(AttentionKernels.AttentionChunkSoftmax)(
            heads * chunks, scores, maxima.View, sums.View, span, chunkLength, chunks);
        if (values16.Length > 0)
        {
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<ILGPU.Half>, ArrayView<float>, int, int, int, int, int, int, int, int>(AttentionKernels.AttentionChunkWeightedSumHalf)(
                heads * chunks * headDim, scores, values16, partials.View, heads, kvHeads, headDim, ContextLength, first, span, chunkLength, chunks);
        }
        else
        {
            accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int, int, int>(AttentionKernels.AttentionChunkWeightedSum)(
                heads * chunks * headDim, scores, values32, partials.View, heads, kvHeads, headDim, ContextLength, first, span, chunkLength, chunks);
        }

        accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(AttentionKernels.AttentionCombineChunks)(
            heads * headDim, partials.View, maxima.View, sums.View, output, headDim, chunks);
    }

    /// <summary>The device cache holds exactly the engine cache's elements at positions 0…position, and NaN after.</summary>
    private static void AssertStoredLikeTheEngine(
        Accelerator accelerator,
        KvCache cache,
        int position,
        MemoryBuffer1D<float, Stride1D.Dense>? keys32,
        MemoryBuffer1D<float, Stride1D.Dense>? values32,
        MemoryBuffer1D<ILGPU.Half, Stride1D.Dense>? keys16,
        MemoryBuffer1D<ILGPU.Half, Stride1D.Dense>? values16)
    {
        (float[] Device, float[] Engine)[] pairs = cache.Dtype == KvCacheDtype.F16
            ? [(Widen(accelerator.Download(keys16!)), Widen(cache.HalfKeys(0))), (Widen(accelerator.Download(values16!)), Widen(cache.HalfValues(0)))]
            : [(accelerator.Download(keys32!), cache.Keys(0)), (accelerator.Download(values32!), cache.Values(0))];
        foreach ((float[] device, float[] engine) in pairs)
        {
            for (int kv = 0; kv < cache.KvHeads; kv++)
            {
                for (int p = 0; p < cache.ContextLength; p++)
                {
                    int at = cache.Offset(kv, p);
                    for (int d = 0; d < cache.HeadDim; d++)
                    {
                        if (p <= position)
                        {
                            Assert.Equal(BitConverter.SingleToInt32Bits(engine[at + d]), BitConverter.SingleToInt32Bits(device[at + d]));
                        }
                        else
                        {
                            Assert.True(float.IsNaN(device[at + d]), $"kv {kv}, position {p}, dim {d} written past the token");
                        }
                    }
                }
            }
        }
    }

    // fp16 → fp32 is exact, so comparing widened bits compares the halves' bits (NaN payloads aside, which none has).
    private static float[] Widen(ILGPU.Half[] halves) => Widen(MemoryMarshal.Cast<ILGPU.Half, Half>(halves).ToArray());

    private static float[] Widen(Half[] halves) => [.. halves.Select(h => (float)h)];

    /// <summary>softmax(q·Kᵀ/√d)·V in float64 from the engine cache's (fp32-widened) contents, with Σ w·|v| per element.</summary>
    private static (double[] Values, double[] Magnitudes) Float64Attention(KvCache cache, float[] q, int heads, int kvHeads, int headDim, int first, int position)
    {
        int span = position - first + 1;
        var keys = new float[span][];
        var values = new float[span][];
        for (int s = 0; s < span; s++)
        {
            keys[s] = new float[kvHeads * headDim];
            values[s] = new float[kvHeads * headDim];
            cache.Read(0, first + s, keys[s], values[s]);
        }

        var result = new double[heads * headDim];
        var magnitudes = new double[heads * headDim];
        double scale = 1 / Math.Sqrt(headDim);
        for (int h = 0; h < heads; h++)
        {
            int kvBase = h / (heads / kvHeads) * headDim;
            double[] logits = [.. Enumerable.Range(0, span).Select(s => Enumerable.Range(0, headDim).Sum(d => (double)q[(h * headDim) + d] * keys[s][kvBase + d]) * scale)];
            double max = logits.Max();
            double[] weights = [.. logits.Select(l => Math.Exp(l - max))];
            double total = weights.Sum();
            for (int d = 0; d < headDim; d++)
            {
                for (int s = 0; s < span; s++)
                {
                    double w = weights[s] / total;
                    result[(h * headDim) + d] += w * values[s][kvBase + d];
                    magnitudes[(h * headDim) + d] += w * Math.Abs(values[s][kvBase + d]);
                }
            }
        }

        return (result, magnitudes);
    }
}
