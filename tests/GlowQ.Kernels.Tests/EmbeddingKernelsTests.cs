using ILGPU;
using ILGPU.Runtime;
using Half = System.Half;

namespace GlowQ.Kernels.Tests;

[Collection(CpuAcceleratorCollectionDefinition.Name)]
public sealed class EmbeddingKernelsTests(CpuAcceleratorFixture accelerators)
{
    [Theory]
    [InlineData(4, 0)]
    [InlineData(32, 6)]
    public void Widens_exactly_the_token_row_of_the_fp16_table(int warpSize, int token)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        const int Vocab = 7, Dim = 40;
        Half[] table = DeviceData.Halves(new Random(37), Vocab * Dim, 4f);
        using var tableBuffer = accelerator.UploadHalves(table);
        using var output = accelerator.Zeros<float>(Dim);
        var kernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ILGPU.Half>, ArrayView<float>, int, int>(EmbeddingKernels.EmbeddingLookup);

        kernel(Dim, tableBuffer.View, output.View, token, Dim);

        Assert.Equal(table.Skip(token * Dim).Take(Dim).Select(h => (float)h), accelerator.Download(output));
    }
}
