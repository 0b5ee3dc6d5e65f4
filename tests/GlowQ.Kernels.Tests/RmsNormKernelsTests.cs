using GlowQ.Engine;
using ILGPU;
using ILGPU.Runtime;

namespace GlowQ.Kernels.Tests;

/// <summary>
/// The two-launch RMS norm against a float64 recomputation and the CPU engine's <see cref="VectorMath.RmsNorm"/>.
/// Tolerance: 1e-5 relative per element (one fp32 sum of a few hundred squares, one rsqrt, two products).
/// </summary>
[Collection(CpuAcceleratorCollectionDefinition.Name)]
public sealed class RmsNormKernelsTests(CpuAcceleratorFixture accelerators)
{
    private const double Tolerance = 1e-5;
    private const float Epsilon = 1e-5f;

    [Theory]
    [InlineData(4, 300, 64)]
    [InlineData(32, 300, 64)]
    [InlineData(32, 257, 300)]
    [InlineData(4, 5, 1)]
    public void Normalises_like_float64_and_the_cpu_engine_when_chunks_do_not_divide_the_length(int warpSize, int length, int chunkLength)
    {
        var random = new Random(length);
        float[] hidden = DeviceData.Floats(random, length, 3f);
        float[] weight = DeviceData.Floats(random, length, 2f);

        (float[] output, float[] residual) = Run(accelerators.WithWarpSize(warpSize), hidden, delta: null, weight, chunkLength);

        AssertNormalised(hidden, weight, output);
        Assert.Equal(hidden, residual);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(32)]
    public void Adds_the_residual_in_place_before_normalising(int warpSize)
    {
        var random = new Random(17);
        float[] hidden = DeviceData.Floats(random, 200, 3f);
        float[] delta = DeviceData.Floats(random, 200, 3f);
        float[] weight = DeviceData.Floats(random, 200, 2f);

        (float[] output, float[] residual) = Run(accelerators.WithWarpSize(warpSize), hidden, delta, weight, chunkLength: 48);

        float[] sum = [.. hidden.Zip(delta, (h, d) => h + d)];
        Assert.Equal(sum, residual);
        AssertNormalised(sum, weight, output);
    }

    private static void AssertNormalised(float[] x, float[] weight, float[] actual)
    {
        double scale = 1 / Math.Sqrt((x.Sum(v => (double)v * v) / x.Length) + Epsilon);
        var cpu = new float[x.Length];
        VectorMath.RmsNorm(x, weight, Epsilon, cpu);
        for (int i = 0; i < x.Length; i++)
        {
            double expected = x[i] * scale * weight[i];
            double bound = (Tolerance * Math.Abs(expected)) + 1e-30;
            Assert.True(Math.Abs(actual[i] - expected) <= bound, $"[{i}]: gpu {actual[i]}, float64 {expected}");
            Assert.True(Math.Abs(actual[i] - cpu[i]) <= 2 * bound, $"[{i}]: gpu {actual[i]}, cpu {cpu[i]}");
        }
    }

    private static (float[] Output, float[] Residual) Run(Accelerator accelerator, float[] hidden, float[]? delta, float[] weight, int chunkLength)
    {
        int length = hidden.Length, chunks = (length + chunkLength - 1) / chunkLength;
        using var hiddenBuffer = accelerator.Upload(hidden);
        using var deltaBuffer = delta is null ? null : accelerator.Upload(delta);
        using var partialSums = accelerator.Zeros<float>(chunks);
        using var weightBuffer = accelerator.Upload(weight);
        using var output = accelerator.Zeros<float>(length);
        var partial = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(RmsNormKernels.RmsNormPartialSums);
        var apply = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float>(RmsNormKernels.RmsNormApply);

        partial(chunks, hiddenBuffer.View, deltaBuffer?.View ?? ArrayView<float>.Empty, partialSums.View, length, chunkLength);
        apply(length, hiddenBuffer.View, partialSums.View, weightBuffer.View, output.View, length, Epsilon);

        return (accelerator.Download(output), accelerator.Download(hiddenBuffer));
    }
}
