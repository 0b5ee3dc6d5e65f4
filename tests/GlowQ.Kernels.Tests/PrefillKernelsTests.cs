using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using Half = System.Half;

namespace GlowQ.Kernels.Tests;

/// <summary>
/// The prefill ("Rows") kernels against the decode kernels they repeat: for every row t of a block, the Rows kernel
/// must give bit for bit what the decode kernel gives when launched for that row alone (its own input slice, position,
/// first attended position and span), since both run the same shared per-row arithmetic. The exceptions are the
/// products (B·x, the int4 rows, SwiGLU): their decode kernels split a row over a warp for coalesced reads, which sums in
/// another order, so each of their rows is checked against the float64 reference within 1e-4 · Σ|terms| instead. Strides
/// between rows are chosen larger than a row's payload where a kernel takes one, so a row read or written at the wrong
/// offset shows.
/// </summary>
[Collection(CpuAcceleratorCollectionDefinition.Name)]
public sealed class PrefillKernelsTests(CpuAcceleratorFixture accelerators)
{
    private const float Untouched = -12345f;

    /// <summary>Of Σ|terms| of a product's row: fp32 accumulation in either order stays far inside it.</summary>
    private const double ProductTolerance = 1e-4;

    [Theory]
    [InlineData(4)]
    [InlineData(32)]
    public void EmbeddingLookupRows_gives_each_row_the_decode_lookup_of_its_token(int warpSize)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        const int Vocab = 7, Dim = 40;
        int[] tokens = [3, 0, 6, 3, 5];
        Half[] table = DeviceData.Halves(new Random(41), Vocab * Dim, 4f);
        using var tableBuffer = accelerator.UploadHalves(table);
        using var tokenBuffer = accelerator.Upload(tokens);
        using var output = accelerator.Zeros<float>(tokens.Length * Dim);
        var rowsKernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ILGPU.Half>, ArrayView<int>, ArrayView<float>, int>(PrefillKernels.EmbeddingLookupRows);
        var decodeKernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ILGPU.Half>, ArrayView<float>, int, int>(EmbeddingKernels.EmbeddingLookup);

        rowsKernel(tokens.Length * Dim, tableBuffer.View, tokenBuffer.View, output.View, Dim);
        float[] actual = accelerator.Download(output);

        for (int t = 0; t < tokens.Length; t++)
        {
            using var row = accelerator.Zeros<float>(Dim);
            decodeKernel(Dim, tableBuffer.View, row.View, tokens[t], Dim);
            Assert.Equal(accelerator.Download(row), actual.Skip(t * Dim).Take(Dim));
        }
    }

    [Theory]
    [InlineData(4, false)]
    [InlineData(32, false)]
    [InlineData(4, true)]
    [InlineData(32, true)]
    public void RmsNormRows_normalises_each_row_as_the_decode_kernels_do_with_a_ragged_last_chunk(int warpSize, bool withResidual)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        const int Rows = 3, Length = 70, ChunkLength = 32, Chunks = 3;
        const float Epsilon = 1e-5f;
        var random = new Random(withResidual ? 43 : 44);
        float[] hidden = DeviceData.Floats(random, Rows * Length, 3f);
        float[] delta = DeviceData.Floats(random, Rows * Length, 2f);
        float[] weight = DeviceData.Floats(random, Length, 1.5f);
        using var hiddenBuffer = accelerator.Upload(hidden);
        using var deltaBuffer = accelerator.Upload(delta);
        using var weightBuffer = accelerator.Upload(weight);
        using var partialSums = accelerator.Zeros<float>(Rows * Chunks);
        using var output = accelerator.Zeros<float>(Rows * Length);
        var sumsRows = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(PrefillKernels.RmsNormRowsPartialSums);
        var applyRows = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>(PrefillKernels.RmsNormRowsApply);
        var sums = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(RmsNormKernels.RmsNormPartialSums);
        var apply = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float>(RmsNormKernels.RmsNormApply);

        sumsRows(Rows * Chunks, hiddenBuffer.View, withResidual ? deltaBuffer.View : ArrayView<float>.Empty, partialSums.View, Length, ChunkLength, Chunks);
        applyRows(Rows * Length, hiddenBuffer.View, partialSums.View, weightBuffer.View, output.View, Length, Chunks, Epsilon);
        float[] actualHidden = accelerator.Download(hiddenBuffer);
        float[] actualOutput = accelerator.Download(output);

        for (int t = 0; t < Rows; t++)
        {
            using var rowHidden = accelerator.Upload(hidden[(t * Length)..((t + 1) * Length)]);
            using var rowDelta = accelerator.Upload(delta[(t * Length)..((t + 1) * Length)]);
            using var rowSums = accelerator.Zeros<float>(Chunks);
            using var rowOutput = accelerator.Zeros<float>(Length);
            sums(Chunks, rowHidden.View, withResidual ? rowDelta.View : ArrayView<float>.Empty, rowSums.View, Length, ChunkLength);
            apply(Length, rowHidden.View, rowSums.View, weightBuffer.View, rowOutput.View, Length, Epsilon);

            Assert.Equal(accelerator.Download(rowHidden), actualHidden.Skip(t * Length).Take(Length));
            Assert.Equal(accelerator.Download(rowOutput), actualOutput.Skip(t * Length).Take(Length));
        }

        if (!withResidual)
        {
            Assert.Equal(hidden, actualHidden);
        }
    }

    [Theory]
    [InlineData(4)]
    [InlineData(32)]
    public void UnitRightFactorRows_projects_each_row_as_the_float64_projection(int warpSize)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        const int Rows = 3;
        RandomUnit unit = RandomUnit.Create(seed: 45, [21, 7, 7], cols: 100, groupSize: 32, rank: 5, withBias: false);
        float[] x = DeviceData.Floats(new Random(46), Rows * unit.Cols);

        float[] actual = UnitBuffers.RunRightFactorRows(accelerator, unit, x, Rows);

        for (int t = 0; t < Rows; t++)
        {
            float[] row = x[(t * unit.Cols)..((t + 1) * unit.Cols)];
            double[] expected = unit.Projection(row);
            for (int j = 0; j < unit.Rank; j++)
            {
                double magnitude = Enumerable.Range(0, unit.Cols).Sum(c => Math.Abs((double)unit.RightFactor[j * unit.Cols + c] * row[c]));
                Assert.True(Math.Abs(actual[(t * unit.Rank) + j] - expected[j]) <= ProductTolerance * magnitude, $"row {t}, t[{j}]: {actual[(t * unit.Rank) + j]} vs {expected[j]}");
            }
        }
    }

    [Theory]
    [InlineData(4, 4, true)]
    [InlineData(32, 4, false)]
    [InlineData(4, 0, true)]
    [InlineData(32, 0, false)]
    public void W4GemmCorrected_gives_each_row_its_corrected_product_at_its_output_stride(int warpSize, int rank, bool withBias)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        const int Rows = 3;
        RandomUnit unit = RandomUnit.Create(seed: 47 + rank, [21, 7, 7], cols: 72, groupSize: 16, rank, withBias);
        int totalRows = unit.TotalRows, outputStride = totalRows + 5;
        float[] x = DeviceData.Floats(new Random(48), Rows * unit.Cols);

        float[] actual;
        using (var buffers = new UnitBuffers(accelerator, unit, x, unit.Rank, Rows))
        {
            using var output = accelerator.Upload(Enumerable.Repeat(Untouched, Rows * outputStride).ToArray());
            var kernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<uint>, ArrayView<ILGPU.Half>, ArrayView<byte>, ArrayView<float>,
                ArrayView<ILGPU.Half>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int>(PrefillKernels.W4GemmCorrected);
            kernel(Rows * totalRows, buffers.CodeWords, buffers.Scales, buffers.Zeros, buffers.Bias, buffers.LeftFactors, buffers.Projected, buffers.Input,
                output.View, totalRows, unit.Cols, unit.GroupSize, rank, outputStride);
            actual = accelerator.Download(output);
        }

        for (int t = 0; t < Rows; t++)
        {
            (double[] expected, double[] magnitudes) = unit.Reference(x[(t * unit.Cols)..((t + 1) * unit.Cols)], restore: true);
            for (int o = 0; o < totalRows; o++)
            {
                float value = actual[(t * outputStride) + o];
                Assert.True(Math.Abs(value - expected[o]) <= ProductTolerance * magnitudes[o], $"row {t}, output {o}: {value} vs {expected[o]}");
            }

            Assert.All(actual.Skip((t * outputStride) + totalRows).Take(outputStride - totalRows), v => Assert.Equal(Untouched, v));
        }
    }

    [Theory]
    [InlineData(4, 3, true)]
    [InlineData(32, 3, false)]
    [InlineData(32, 0, true)]
    public void W4GemmSwiGlu_gives_each_row_its_SwiGlu_product(int warpSize, int rank, bool withBias)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        const int Rows = 3;
        RandomUnit unit = RandomUnit.Create(seed: 49 + rank, [23, 23], cols: 90, groupSize: 32, rank, withBias);
        int hiddenRows = unit.Members[0].Rows;
        float[] x = DeviceData.Floats(new Random(50), Rows * unit.Cols);

        float[] actual;
        using (var buffers = new UnitBuffers(accelerator, unit, x, unit.Rank, Rows))
        {
            using var hidden = accelerator.Zeros<float>(Rows * hiddenRows);
            var kernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<uint>, ArrayView<ILGPU.Half>, ArrayView<byte>, ArrayView<float>,
                ArrayView<ILGPU.Half>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int>(PrefillKernels.W4GemmSwiGlu);
            kernel(Rows * hiddenRows, buffers.CodeWords, buffers.Scales, buffers.Zeros, buffers.Bias, buffers.LeftFactors, buffers.Projected, buffers.Input,
                hidden.View, hiddenRows, unit.Cols, unit.GroupSize, rank);
            actual = accelerator.Download(hidden);
        }

        for (int t = 0; t < Rows; t++)
        {
            (double[] rows, double[] magnitudes) = unit.Reference(x[(t * unit.Cols)..((t + 1) * unit.Cols)], restore: true);
            for (int o = 0; o < hiddenRows; o++)
            {
                double gate = rows[o], up = rows[o + hiddenRows];
                double expected = gate / (1 + Math.Exp(-gate)) * up;
                // silu has slope ≤ 1.1, so an fp32 error e_g in gate moves the product by ≤ 1.1·|up|·e_g.
                double bound = ProductTolerance * ((1.1 * Math.Abs(up) * magnitudes[o]) + (Math.Abs(gate) * magnitudes[o + hiddenRows])) + 1e-7;
                float value = actual[(t * hiddenRows) + o];
                Assert.True(Math.Abs(value - expected) <= bound, $"row {t}, hidden {o}: {value} vs {expected}");
            }
        }
    }

    [Theory]
    [InlineData(4, false)]
    [InlineData(32, false)]
    [InlineData(4, true)]
    [InlineData(32, true)]
    public void RopeRows_rotates_each_row_at_its_own_position_as_the_decode_kernel_does_and_leaves_the_row_gap_alone(int warpSize, bool halfSplit)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        const int Rows = 3, HeadsPerRow = 3, HeadDim = 8, Half2 = HeadDim / 2, StartPosition = 4, Positions = StartPosition + Rows + 2;
        const int RowWidth = HeadsPerRow * HeadDim, RowStride = RowWidth + 5;
        float[] cos = new float[Positions * Half2], sin = new float[Positions * Half2];
        for (int p = 0; p < Positions; p++)
        {
            for (int j = 0; j < Half2; j++)
            {
                double angle = p * Math.Pow(10000, -2.0 * j / HeadDim);
                cos[(p * Half2) + j] = (float)Math.Cos(angle);
                sin[(p * Half2) + j] = (float)Math.Sin(angle);
            }
        }

        float[] heads = DeviceData.Floats(new Random(halfSplit ? 51 : 52), Rows * RowStride, 2f);
        using var headsBuffer = accelerator.Upload(heads);
        using var cosBuffer = accelerator.Upload(cos);
        using var sinBuffer = accelerator.Upload(sin);
        var rowsKernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int>(
            halfSplit ? PrefillKernels.RopeHalfSplitRows : PrefillKernels.RopeInterleavedRows);
        var decodeKernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(
            halfSplit ? RopeKernels.RopeHalfSplit : RopeKernels.RopeInterleaved);

        rowsKernel(Rows * HeadsPerRow * Half2, headsBuffer.View, cosBuffer.View, sinBuffer.View, HeadDim, HeadsPerRow, RowStride, StartPosition);
        float[] actual = accelerator.Download(headsBuffer);

        for (int t = 0; t < Rows; t++)
        {
            using var row = accelerator.Upload(heads[(t * RowStride)..((t * RowStride) + RowWidth)]);
            int angles = (StartPosition + t) * Half2;
            using var rowCos = accelerator.Upload(cos[angles..(angles + Half2)]);
            using var rowSin = accelerator.Upload(sin[angles..(angles + Half2)]);
            decodeKernel(HeadsPerRow * Half2, row.View, rowCos.View, rowSin.View, HeadDim);

            Assert.Equal(accelerator.Download(row), actual.Skip(t * RowStride).Take(RowWidth));
            Assert.Equal(heads.Skip((t * RowStride) + RowWidth).Take(RowStride - RowWidth), actual.Skip((t * RowStride) + RowWidth).Take(RowStride - RowWidth));
        }
    }

    [Theory]
    [InlineData(4, false)]
    [InlineData(32, false)]
    [InlineData(4, true)]
    [InlineData(32, true)]
    public void KvCacheStoreRows_leaves_the_cache_as_decode_stores_at_consecutive_positions_do(int warpSize, bool halfCache)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        const int Rows = 3, StartPosition = 4, RowStride = (Shape.KvHeads * Shape.HeadDim) + 3;
        var random = new Random(halfCache ? 53 : 54);
        float[] tokenKeys = DeviceData.Floats(random, Rows * RowStride, 3f);
        float[] tokenValues = DeviceData.Floats(random, Rows * RowStride, 3f);
        using var block = LayerCache.Random(accelerator, halfCache, seed: 55);
        using var decoded = LayerCache.Random(accelerator, halfCache, seed: 55);

        block.StoreRows(tokenKeys, tokenValues, RowStride, StartPosition, Rows);
        for (int t = 0; t < Rows; t++)
        {
            decoded.Store(tokenKeys[(t * RowStride)..((t * RowStride) + Shape.KvDim)], tokenValues[(t * RowStride)..((t * RowStride) + Shape.KvDim)], StartPosition + t);
        }

        Assert.Equal(decoded.KeyBits(), block.KeyBits());
        Assert.Equal(decoded.ValueBits(), block.ValueBits());
    }

    [Theory]
    [InlineData(4, 0, false)]
    [InlineData(32, 0, false)]
    [InlineData(4, 3, false)]
    [InlineData(32, 3, false)]
    [InlineData(4, 0, true)]
    [InlineData(32, 0, true)]
    [InlineData(4, 3, true)]
    [InlineData(32, 3, true)]
    public void AttentionRows_gives_each_row_and_head_the_decode_scores_weights_and_output_of_its_position(int warpSize, int window, bool halfCache)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        const int Rows = 4, StartPosition = 5, QueryStride = (Shape.Heads * Shape.HeadDim) + 3;
        float[] query = DeviceData.Floats(new Random(56 + window), Rows * QueryStride, 2f);
        using var cache = LayerCache.Random(accelerator, halfCache, seed: 57 + window);
        int maxSpan = Span(StartPosition + Rows - 1, window);

        (float[] scores, float[] weights, float[] output) = cache.AttendRows(query, QueryStride, StartPosition, Rows, window, maxSpan);

        for (int t = 0; t < Rows; t++)
        {
            int position = StartPosition + t, span = Span(position, window);
            (float[] expectedScores, float[] expectedWeights, float[] expectedOutput) =
                cache.Attend(query[(t * QueryStride)..((t * QueryStride) + Shape.QueryWidth)], FirstAttended(position, window), span);
            for (int h = 0; h < Shape.Heads; h++)
            {
                int rowHead = ((t * Shape.Heads) + h) * maxSpan;
                Assert.Equal(expectedScores.Skip(h * span).Take(span), scores.Skip(rowHead).Take(span));
                Assert.Equal(expectedWeights.Skip(h * span).Take(span), weights.Skip(rowHead).Take(span));
                Assert.All(scores.Skip(rowHead + span).Take(maxSpan - span), v => Assert.Equal(Untouched, v));
                Assert.All(weights.Skip(rowHead + span).Take(maxSpan - span), v => Assert.Equal(Untouched, v));
            }

            Assert.Equal(expectedOutput, output.Skip(t * Shape.QueryWidth).Take(Shape.QueryWidth));
        }
    }

    [Theory]
    [InlineData(4, 0, false)]
    [InlineData(32, 3, false)]
    [InlineData(32, 0, true)]
    [InlineData(4, 3, true)]
    public void After_storing_the_block_its_last_row_attends_like_decode_on_the_same_cache_and_earlier_rows_ignore_later_rows(
        int warpSize, int window, bool halfCache)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        const int Rows = 4, StartPosition = 5, RowStride = Shape.KvDim + 2, QueryStride = Shape.QueryWidth + 3;
        var random = new Random(58 + window);
        float[] prefixKeys = DeviceData.Floats(random, StartPosition * Shape.KvDim, 2f);
        float[] prefixValues = DeviceData.Floats(random, StartPosition * Shape.KvDim, 2f);
        float[] blockKeys = DeviceData.Floats(random, Rows * RowStride, 2f);
        float[] blockValues = DeviceData.Floats(random, Rows * RowStride, 2f);
        float[] query = DeviceData.Floats(random, Rows * QueryStride, 2f);
        int last = StartPosition + Rows - 1, maxSpan = Span(last, window);
        using var full = LayerCache.Empty(accelerator, halfCache);
        StorePrefix(full, prefixKeys, prefixValues, StartPosition);
        full.StoreRows(blockKeys, blockValues, RowStride, StartPosition, Rows);

        (_, _, float[] output) = full.AttendRows(query, QueryStride, StartPosition, Rows, window, maxSpan);

        // The last row, against decode attention on the very cache the block attended.
        (_, _, float[] lastDecoded) = full.Attend(query[((Rows - 1) * QueryStride)..(((Rows - 1) * QueryStride) + Shape.QueryWidth)], FirstAttended(last, window), maxSpan);
        Assert.Equal(lastDecoded, output.Skip((Rows - 1) * Shape.QueryWidth).Take(Shape.QueryWidth));

        // Every row, against decode attention on a cache holding only the positions up to its own (later rows unstored).
        for (int t = 0; t < Rows; t++)
        {
            using var partial = LayerCache.Empty(accelerator, halfCache);
            StorePrefix(partial, prefixKeys, prefixValues, StartPosition);
            for (int s = 0; s <= t; s++)
            {
                partial.Store(blockKeys[(s * RowStride)..((s * RowStride) + Shape.KvDim)], blockValues[(s * RowStride)..((s * RowStride) + Shape.KvDim)], StartPosition + s);
            }

            int position = StartPosition + t;
            (_, _, float[] expected) = partial.Attend(query[(t * QueryStride)..((t * QueryStride) + Shape.QueryWidth)], FirstAttended(position, window), Span(position, window));
            Assert.Equal(expected, output.Skip(t * Shape.QueryWidth).Take(Shape.QueryWidth));
        }
    }

    private static void StorePrefix(LayerCache cache, float[] keys, float[] values, int positions)
    {
        for (int p = 0; p < positions; p++)
        {
            cache.Store(keys[(p * Shape.KvDim)..((p + 1) * Shape.KvDim)], values[(p * Shape.KvDim)..((p + 1) * Shape.KvDim)], p);
        }
    }

    private static int FirstAttended(int position, int window) => window > 0 ? Math.Max(0, position - window + 1) : 0;

    private static int Span(int position, int window) => position - FirstAttended(position, window) + 1;

    /// <summary>The attention shape: GQA with two query heads per kv head.</summary>
    private static class Shape
    {
        public const int Heads = 4, KvHeads = 2, HeadDim = 8, ContextLength = 16;
        public const int KvDim = KvHeads * HeadDim, QueryWidth = Heads * HeadDim, LayerLength = KvHeads * ContextLength * HeadDim;
        public static readonly float Scale = 1f / MathF.Sqrt(HeadDim);
    }

    /// <summary>One layer's KV cache of <see cref="Shape"/>, fp32 or fp16, with the decode and Rows launches over it.</summary>
    private sealed class LayerCache : IDisposable
    {
        private readonly Accelerator _accelerator;
        private readonly MemoryBuffer1D<float, Stride1D.Dense>? _keys32;
        private readonly MemoryBuffer1D<float, Stride1D.Dense>? _values32;
        private readonly MemoryBuffer1D<ILGPU.Half, Stride1D.Dense>? _keys16;
        private readonly MemoryBuffer1D<ILGPU.Half, Stride1D.Dense>? _values16;

        private LayerCache(Accelerator accelerator, bool half, Random? random)
        {
            _accelerator = accelerator;
            if (half)
            {
                _keys16 = accelerator.UploadHalves(random is null ? new Half[Shape.LayerLength] : DeviceData.Halves(random, Shape.LayerLength, 2f));
                _values16 = accelerator.UploadHalves(random is null ? new Half[Shape.LayerLength] : DeviceData.Halves(random, Shape.LayerLength, 2f));
            }
            else
            {
                _keys32 = accelerator.Upload(random is null ? new float[Shape.LayerLength] : DeviceData.Floats(random, Shape.LayerLength, 2f));
                _values32 = accelerator.Upload(random is null ? new float[Shape.LayerLength] : DeviceData.Floats(random, Shape.LayerLength, 2f));
            }
        }

        public static LayerCache Random(Accelerator accelerator, bool half, int seed) => new(accelerator, half, new Random(seed));

        public static LayerCache Empty(Accelerator accelerator, bool half) => new(accelerator, half, null);

        /// <summary>The key cache's bits (fp32 widened from fp16 exactly, so equal bits ⇔ equal values).</summary>
        public uint[] KeyBits() => Bits(_keys32, _keys16);

        public uint[] ValueBits() => Bits(_values32, _values16);

        /// <summary>Decode store of one token's k and v ([kvHeads × headDim]) at position.</summary>
        public void Store(float[] tokenKeys, float[] tokenValues, int position)
        {
            using var keys = _accelerator.Upload(tokenKeys);
            using var values = _accelerator.Upload(tokenValues);
            if (_keys16 is not null)
            {
                _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<ILGPU.Half>, ArrayView<ILGPU.Half>, int, int, int>(
                    AttentionKernels.KvCacheStoreHalf)(Shape.KvDim, keys.View, values.View, _keys16.View, _values16!.View, Shape.HeadDim, Shape.ContextLength, position);
            }
            else
            {
                _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(
                    AttentionKernels.KvCacheStore)(Shape.KvDim, keys.View, values.View, _keys32!.View, _values32!.View, Shape.HeadDim, Shape.ContextLength, position);
            }

            _accelerator.Synchronize();
        }

        /// <summary>Block store: row t's k and v at t·rowStride, stored at startPosition + t.</summary>
        public void StoreRows(float[] tokenKeys, float[] tokenValues, int rowStride, int startPosition, int rows)
        {
            using var keys = _accelerator.Upload(tokenKeys);
            using var values = _accelerator.Upload(tokenValues);
            if (_keys16 is not null)
            {
                _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<ILGPU.Half>, ArrayView<ILGPU.Half>, int, int, int, int, int>(
                    PrefillKernels.KvCacheStoreHalfRows)(
                    rows * Shape.KvDim, keys.View, values.View, _keys16.View, _values16!.View, Shape.HeadDim, Shape.ContextLength, Shape.KvDim, rowStride, startPosition);
            }
            else
            {
                _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int>(
                    PrefillKernels.KvCacheStoreRows)(
                    rows * Shape.KvDim, keys.View, values.View, _keys32!.View, _values32!.View, Shape.HeadDim, Shape.ContextLength, Shape.KvDim, rowStride, startPosition);
            }

            _accelerator.Synchronize();
        }

        /// <summary>Decode attention of one token's query: its scores, softmaxed weights ([heads × span]) and output.</summary>
        public (float[] Scores, float[] Weights, float[] Output) Attend(float[] query, int firstPosition, int span)
        {
            using var queryBuffer = _accelerator.Upload(query);
            using var scores = _accelerator.Zeros<float>(Shape.Heads * span);
            using var output = _accelerator.Zeros<float>(Shape.QueryWidth);
            if (_keys16 is not null)
            {
                _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<ILGPU.Half>, ArrayView<float>, int, int, int, int, int, int, float>(
                    AttentionKernels.AttentionScoresHalf)(
                    Shape.Heads * span, queryBuffer.View, _keys16.View, scores.View, Shape.Heads, Shape.KvHeads, Shape.HeadDim, Shape.ContextLength, firstPosition, span, Shape.Scale);
            }
            else
            {
                _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int, float>(
                    AttentionKernels.AttentionScores)(
                    Shape.Heads * span, queryBuffer.View, _keys32!.View, scores.View, Shape.Heads, Shape.KvHeads, Shape.HeadDim, Shape.ContextLength, firstPosition, span, Shape.Scale);
            }

            float[] rawScores = _accelerator.Download(scores);
            _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, int>(AttentionKernels.AttentionSoftmax)(Shape.Heads, scores.View, span);
            float[] weights = _accelerator.Download(scores);
            if (_values16 is not null)
            {
                _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<ILGPU.Half>, ArrayView<float>, int, int, int, int, int, int>(
                    AttentionKernels.AttentionWeightedSumHalf)(
                    Shape.QueryWidth, scores.View, _values16.View, output.View, Shape.Heads, Shape.KvHeads, Shape.HeadDim, Shape.ContextLength, firstPosition, span);
            }
            else
            {
                _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int>(
                    AttentionKernels.AttentionWeightedSum)(
                    Shape.QueryWidth, scores.View, _values32!.View, output.View, Shape.Heads, Shape.KvHeads, Shape.HeadDim, Shape.ContextLength, firstPosition, span);
            }

            return (rawScores, weights, _accelerator.Download(output));
        }

        /// <summary>
        /// Block attention of rows at startPosition…: scores and weights [rows × heads × maxSpan] (entries past a row's
        /// span start as <see cref="Untouched"/>) and the output [rows × heads·headDim].
        /// </summary>
        public (float[] Scores, float[] Weights, float[] Output) AttendRows(float[] query, int queryStride, int startPosition, int rows, int window, int maxSpan)
        {
            using var queryBuffer = _accelerator.Upload(query);
            using var scores = _accelerator.Upload(Enumerable.Repeat(Untouched, rows * Shape.Heads * maxSpan).ToArray());
            using var output = _accelerator.Zeros<float>(rows * Shape.QueryWidth);
            if (_keys16 is not null)
            {
                _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<ILGPU.Half>, ArrayView<float>, int, int, int, int, int, int, int, int, float>(
                    PrefillKernels.AttentionScoresHalfRows)(
                    rows * Shape.Heads * maxSpan, queryBuffer.View, _keys16.View, scores.View, Shape.Heads, Shape.KvHeads, Shape.HeadDim, Shape.ContextLength,
                    startPosition, window, maxSpan, queryStride, Shape.Scale);
            }
            else
            {
                _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int, int, int, float>(
                    PrefillKernels.AttentionScoresRows)(
                    rows * Shape.Heads * maxSpan, queryBuffer.View, _keys32!.View, scores.View, Shape.Heads, Shape.KvHeads, Shape.HeadDim, Shape.ContextLength,
                    startPosition, window, maxSpan, queryStride, Shape.Scale);
            }

            float[] rawScores = _accelerator.Download(scores);
            _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, int, int, int, int>(PrefillKernels.AttentionSoftmaxRows)(
                rows * Shape.Heads, scores.View, Shape.Heads, startPosition, window, maxSpan);
            float[] weights = _accelerator.Download(scores);
            if (_values16 is not null)
            {
                _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<ILGPU.Half>, ArrayView<float>, int, int, int, int, int, int, int>(
                    PrefillKernels.AttentionWeightedSumHalfRows)(
                    rows * Shape.QueryWidth, scores.View, _values16.View, output.View, Shape.Heads, Shape.KvHeads, Shape.HeadDim, Shape.ContextLength, startPosition, window, maxSpan);
            }
            else
            {
                _accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, int, int>(
                    PrefillKernels.AttentionWeightedSumRows)(
                    rows * Shape.QueryWidth, scores.View, _values32!.View, output.View, Shape.Heads, Shape.KvHeads, Shape.HeadDim, Shape.ContextLength, startPosition, window, maxSpan);
            }

            return (rawScores, weights, _accelerator.Download(output));
        }

        public void Dispose()
        {
            _keys32?.Dispose();
            _values32?.Dispose();
            _keys16?.Dispose();
            _values16?.Dispose();
        }

        private uint[] Bits(MemoryBuffer1D<float, Stride1D.Dense>? wide, MemoryBuffer1D<ILGPU.Half, Stride1D.Dense>? narrow) =>
            narrow is not null
                ? [.. MemoryMarshal.Cast<ILGPU.Half, ushort>(_accelerator.Download(narrow)).ToArray().Select(u => (uint)u)]
                : [.. _accelerator.Download(wide!).Select(BitConverter.SingleToUInt32Bits)];
    }
}
