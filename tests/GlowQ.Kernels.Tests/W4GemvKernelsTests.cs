using GlowQ.Engine;
using GlowQ.Runtime.Kernels;
using ILGPU;
using ILGPU.Runtime;
using Half = System.Half;

namespace GlowQ.Kernels.Tests;

/// <summary>
/// The fused W4 decode kernels against a float64 recomputation from the format's dequantisation and against the CPU
/// runtime's <see cref="W4GemvWithCorrection"/>. Tolerance: |gpu − reference| ≤ 1e-4 · Σ|terms| of the row (fp32
/// accumulation in a different order; a relative error of the result alone is meaningless where terms cancel).
/// </summary>
[Collection(CpuAcceleratorCollectionDefinition.Name)]
public sealed class W4GemvKernelsTests(CpuAcceleratorFixture accelerators)
{
    private const double Tolerance = 1e-4;

    /// <summary>GQA-shaped q/k/v: q rows ≠ k rows = v rows, none a multiple of a block size.</summary>
    private static readonly int[] QkvRows = [21, 7, 7];

    [Theory]
    [InlineData(4)]
    [InlineData(32)]
    public void UnitRightFactor_matches_the_float64_projection(int warpSize)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        RandomUnit unit = RandomUnit.Create(seed: 1, QkvRows, cols: 100, groupSize: 32, rank: 5, withBias: false);
        float[] x = DeviceData.Floats(new Random(2), unit.Cols);

        float[] t = UnitBuffers.RunRightFactor(accelerator, unit, x);

        double[] expected = unit.Projection(x);
        Assert.Equal(unit.Rank, t.Length);
        for (int j = 0; j < unit.Rank; j++)
        {
            double magnitude = Enumerable.Range(0, unit.Cols).Sum(c => Math.Abs((double)unit.RightFactor[j * unit.Cols + c] * x[c]));
            Assert.True(Math.Abs(t[j] - expected[j]) <= Tolerance * magnitude, $"t[{j}] = {t[j]}, expected {expected[j]}");
        }
    }

    [Theory]
    [InlineData(4, 100, 32, true)]
    [InlineData(32, 100, 32, false)]
    [InlineData(4, 13, 8, false)]
    [InlineData(32, 200, 128, true)]
    public void Corrected_three_member_unit_matches_float64_with_padded_rows(int warpSize, int cols, int groupSize, bool withBias)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        RandomUnit unit = RandomUnit.Create(seed: cols + groupSize, QkvRows, cols, groupSize, rank: 4, withBias);
        float[] x = DeviceData.Floats(new Random(3), cols);

        float[] y = RunCorrected(accelerator, unit, x, restore: true);

        AssertMatchesReference(unit, x, restore: true, y);
    }

    [Theory]
    [InlineData(4, true)]
    [InlineData(32, false)]
    public void Corrected_unit_matches_the_cpu_runtime(int warpSize, bool restore)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        RandomUnit unit = RandomUnit.Create(seed: 5, QkvRows, cols: 72, groupSize: 16, rank: 6, withBias: true);
        float[] x = DeviceData.Floats(new Random(6), unit.Cols);

        float[] y = RunCorrected(accelerator, unit, x, restore);

        float[][] cpu = [.. unit.Members.Select(m => new float[m.Rows])];
        using (var pool = new WorkerPool(1))
        {
            new W4GemvWithCorrection(pool, unit.Cols, maxRank: unit.Rank).Run(unit.Unit, restore, x, 1, cpu);
        }

        (_, double[] magnitudes) = unit.Reference(x, restore);
        float[] expected = [.. cpu.SelectMany(o => o)];
        for (int o = 0; o < expected.Length; o++)
        {
            Assert.True(Math.Abs(y[o] - expected[o]) <= 2 * Tolerance * magnitudes[o], $"row {o}: gpu {y[o]}, cpu {expected[o]}");
        }
    }

    [Theory]
    [InlineData(4)]
    [InlineData(32)]
    public void Rank_zero_unit_is_the_plain_int4_product_and_reads_no_factors(int warpSize)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        RandomUnit unit = RandomUnit.Create(seed: 7, [19], cols: 50, groupSize: 32, rank: 0, withBias: true);
        float[] x = DeviceData.Floats(new Random(8), unit.Cols);

        float[] y = RunCorrected(accelerator, unit, x, restore: true);

        AssertMatchesReference(unit, x, restore: true, y);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(32)]
    public void Masked_off_unit_launched_with_rank_zero_omits_the_correction(int warpSize)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        RandomUnit unit = RandomUnit.Create(seed: 9, QkvRows, cols: 64, groupSize: 32, rank: 4, withBias: false);
        float[] x = DeviceData.Floats(new Random(10), unit.Cols);

        float[] plain = RunCorrected(accelerator, unit, x, restore: false);
        float[] corrected = RunCorrected(accelerator, unit, x, restore: true);

        AssertMatchesReference(unit, x, restore: false, plain);
        Assert.NotEqual(plain, corrected);
    }

    [Fact]
    public void Padding_codes_are_never_multiplied_even_when_they_are_not_the_zero_point()
    {
        Accelerator accelerator = accelerators.WithWarpSize(32);
        RandomUnit unit = RandomUnit.Create(seed: 11, QkvRows, cols: 41, groupSize: 32, rank: 3, withBias: false, garbagePadding: true);
        float[] x = DeviceData.Floats(new Random(12), unit.Cols);
        // A scratch input longer than cols, non-zero past it, as a reused device buffer would be.
        float[] oversizedInput = [.. x, .. Enumerable.Repeat(3f, 64)];

        float[] y = RunCorrected(accelerator, unit, oversizedInput, restore: true);

        AssertMatchesReference(unit, x, restore: true, y);
    }

    [Theory]
    [InlineData(4, 3, true)]
    [InlineData(32, 3, false)]
    [InlineData(32, 0, true)]
    public void SwiGlu_matches_float64_and_the_cpu_runtime(int warpSize, int rank, bool withBias)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        RandomUnit unit = RandomUnit.Create(seed: 13 + rank, [23, 23], cols: 90, groupSize: 32, rank, withBias);
        float[] x = DeviceData.Floats(new Random(14), unit.Cols);
        int hiddenRows = unit.Members[0].Rows;

        float[] hidden = RunSwiGlu(accelerator, unit, x);

        (double[] rows, double[] magnitudes) = unit.Reference(x, restore: true);
        var cpu = new float[hiddenRows];
        using (var pool = new WorkerPool(1))
        {
            new W4GemvWithCorrection(pool, unit.Cols, maxRank: Math.Max(rank, 1)).RunSwiGlu(unit.Unit, restore: true, x, cpu, 1);
        }

        for (int o = 0; o < hiddenRows; o++)
        {
            double gate = rows[o], up = rows[o + hiddenRows];
            double expected = gate / (1 + Math.Exp(-gate)) * up;
            // silu has slope ≤ 1.1, so an fp32 error e_g in gate moves the product by ≤ 1.1·|up|·e_g.
            double bound = Tolerance * ((1.1 * Math.Abs(up) * magnitudes[o]) + (Math.Abs(gate) * magnitudes[o + hiddenRows])) + 1e-7;
            Assert.True(Math.Abs(hidden[o] - expected) <= bound, $"row {o}: gpu {hidden[o]}, float64 {expected}");
            Assert.True(Math.Abs(hidden[o] - cpu[o]) <= 2 * bound, $"row {o}: gpu {hidden[o]}, cpu {cpu[o]}");
        }
    }

    private static void AssertMatchesReference(RandomUnit unit, float[] x, bool restore, float[] actual)
    {
        (double[] expected, double[] magnitudes) = unit.Reference(x, restore);
        Assert.Equal(expected.Length, actual.Length);
        for (int o = 0; o < expected.Length; o++)
        {
            Assert.True(Math.Abs(actual[o] - expected[o]) <= Tolerance * magnitudes[o], $"row {o}: gpu {actual[o]}, float64 {expected[o]}");
        }
    }

    /// <summary>The launch sequence a decode step uses: t = B·x when restoring, then one warp per stacked row.</summary>
    private static float[] RunCorrected(Accelerator accelerator, RandomUnit unit, float[] x, bool restore)
    {
        int rank = restore ? unit.Rank : 0;
        using var buffers = new UnitBuffers(accelerator, unit, x, rank);
        using var output = accelerator.Zeros<float>(unit.TotalRows);
        var kernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<uint>, ArrayView<ILGPU.Half>, ArrayView<byte>, ArrayView<float>,
            ArrayView<ILGPU.Half>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(W4GemvKernels.W4GemvCorrected);
        kernel(unit.TotalRows * accelerator.WarpSize, buffers.CodeWords, buffers.Scales, buffers.Zeros, buffers.Bias, buffers.LeftFactors, buffers.Projected, buffers.Input,
            output.View, unit.Cols, unit.GroupSize, rank);
        return accelerator.Download(output);
    }

    private static float[] RunSwiGlu(Accelerator accelerator, RandomUnit unit, float[] x)
    {
        int hiddenRows = unit.Members[0].Rows;
        using var buffers = new UnitBuffers(accelerator, unit, x, unit.Rank);
        using var hidden = accelerator.Zeros<float>(hiddenRows);
        var kernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<uint>, ArrayView<ILGPU.Half>, ArrayView<byte>, ArrayView<float>,
            ArrayView<ILGPU.Half>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int>(W4GemvKernels.W4GemvSwiGlu);
        kernel(hiddenRows * accelerator.WarpSize, buffers.CodeWords, buffers.Scales, buffers.Zeros, buffers.Bias, buffers.LeftFactors, buffers.Projected, buffers.Input,
            hidden.View, hiddenRows, unit.Cols, unit.GroupSize, unit.Rank);
        return accelerator.Download(hidden);
    }

}
