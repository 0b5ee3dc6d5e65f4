using ILGPU;
using ILGPU.Runtime;

namespace GlowQ.Kernels.Tests;

/// <summary>
/// Both rotary layouts against a float64 rotation with the same cos/sin (from float64 angles, as the CPU engine
/// computes them). Tolerance: 1e-6 · (|a| + |b|) per element (two fp32 products and a sum).
/// </summary>
[Collection(CpuAcceleratorCollectionDefinition.Name)]
public sealed class RopeKernelsTests(CpuAcceleratorFixture accelerators)
{
    private const int HeadDim = 16, Heads = 3, Position = 1234;

    [Theory]
    [InlineData(4, true)]
    [InlineData(32, true)]
    [InlineData(4, false)]
    [InlineData(32, false)]
    public void Rotates_every_pair_of_every_head_in_its_layout(int warpSize, bool interleaved)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        float[] heads = DeviceData.Floats(new Random(31), Heads * HeadDim, 2f);
        int half = HeadDim / 2;
        double[] angles = [.. Enumerable.Range(0, half).Select(j => Position / Math.Pow(10000, 2.0 * j / HeadDim))];
        float[] cos = [.. angles.Select(a => (float)Math.Cos(a))], sin = [.. angles.Select(a => (float)Math.Sin(a))];

        using var headBuffer = accelerator.Upload(heads);
        using var cosBuffer = accelerator.Upload(cos);
        using var sinBuffer = accelerator.Upload(sin);
        var kernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(
            interleaved ? RopeKernels.RopeInterleaved : RopeKernels.RopeHalfSplit);
        kernel(Heads * half, headBuffer.View, cosBuffer.View, sinBuffer.View, HeadDim);
        float[] rotated = accelerator.Download(headBuffer);

        for (int h = 0; h < Heads; h++)
        {
            for (int j = 0; j < half; j++)
            {
                int first = h * HeadDim + (interleaved ? 2 * j : j), second = first + (interleaved ? 1 : half);
                double a = heads[first], b = heads[second];
                double bound = 1e-6 * (Math.Abs(a) + Math.Abs(b));
                Assert.True(Math.Abs(rotated[first] - ((a * cos[j]) - (b * sin[j]))) <= bound, $"head {h} pair {j} first");
                Assert.True(Math.Abs(rotated[second] - ((a * sin[j]) + (b * cos[j]))) <= bound, $"head {h} pair {j} second");
            }
        }
    }
}
