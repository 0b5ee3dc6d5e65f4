using System.Numerics.Tensors;
using ILGPU;
using ILGPU.Runtime;

namespace GlowQ.Kernels.Tests;

/// <summary>The two-launch argmax must pick exactly the CPU sampler's token (<c>TensorPrimitives.IndexOfMax</c>).</summary>
[Collection(CpuAcceleratorCollectionDefinition.Name)]
public sealed class ArgmaxKernelsTests(CpuAcceleratorFixture accelerators)
{
    [Theory]
    [InlineData(4, 1000, 64)]
    [InlineData(32, 1000, 64)]
    [InlineData(32, 513, 1000)]
    public void Picks_the_same_index_as_the_cpu_sampler_on_random_logits(int warpSize, int length, int chunkLength)
    {
        float[] logits = DeviceData.Floats(new Random(length), length, 10f);

        Assert.Equal(TensorPrimitives.IndexOfMax<float>(logits), Run(accelerators.WithWarpSize(warpSize), logits, chunkLength));
    }

    [Theory]
    [InlineData(4)]
    [InlineData(32)]
    public void Finds_a_maximum_in_the_last_element_of_a_partial_last_chunk(int warpSize)
    {
        float[] logits = DeviceData.Floats(new Random(19), 130, 10f);
        logits[^1] = 50f;

        Assert.Equal(129, Run(accelerators.WithWarpSize(warpSize), logits, chunkLength: 64));
    }

    [Fact]
    public void Ties_across_and_within_chunks_resolve_to_the_lowest_index()
    {
        float[] logits = DeviceData.Floats(new Random(23), 300, 10f);
        logits[250] = logits[70] = logits[71] = 20f;

        Assert.Equal(70, Run(accelerators.WithWarpSize(32), logits, chunkLength: 64));
    }

    [Fact]
    public void A_nan_logit_is_reported_as_the_cpu_sampler_does()
    {
        float[] logits = DeviceData.Floats(new Random(29), 300, 10f);
        logits[10] = 100f;
        logits[200] = float.NaN;
        logits[280] = float.NaN;

        int expected = TensorPrimitives.IndexOfMax<float>(logits);
        Assert.Equal(200, expected);
        Assert.Equal(expected, Run(accelerators.WithWarpSize(4), logits, chunkLength: 64));
    }

    private static int Run(Accelerator accelerator, float[] logits, int chunkLength)
    {
        int chunks = (logits.Length + chunkLength - 1) / chunkLength;
        using var logitBuffer = accelerator.Upload(logits);
        using var maxima = accelerator.Zeros<float>(chunks);
        using var indices = accelerator.Zeros<int>(chunks);
        using var result = accelerator.Zeros<int>(1);
        var partial = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, int>(ArgmaxKernels.ArgmaxPartial);
        var final = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<int>>(ArgmaxKernels.ArgmaxFinal);

        partial(chunks, logitBuffer.View, maxima.View, indices.View, logits.Length, chunkLength);
        final(1, maxima.View, indices.View, result.View);

        return accelerator.Download(result)[0];
    }
}
