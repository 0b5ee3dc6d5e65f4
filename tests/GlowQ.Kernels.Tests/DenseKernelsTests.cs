using GlowQ.Engine;
using ILGPU;
using ILGPU.Runtime;
using Half = System.Half;

namespace GlowQ.Kernels.Tests;

[Collection(CpuAcceleratorCollectionDefinition.Name)]
public sealed class DenseKernelsTests(CpuAcceleratorFixture accelerators)
{
    [Theory]
    [InlineData(4, 37, 64)]
    [InlineData(32, 300, 13)]
    public void HalfMatrixVector_matches_the_float64_product_within_fp32_rounding(int warpSize, int rows, int cols)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        Half[] matrix = DeviceData.Halves(new Random(rows), rows * cols, 2f);
        float[] x = DeviceData.Floats(new Random(cols), cols);
        using var matrixBuffer = accelerator.UploadHalves(matrix);
        using var input = accelerator.Upload(x);
        using var output = accelerator.Zeros<float>(rows);
        var kernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ILGPU.Half>, ArrayView<float>, ArrayView<float>, int>(DenseKernels.HalfMatrixVector);

        kernel(rows * accelerator.WarpSize, matrixBuffer.View, input.View, output.View, cols);

        float[] y = accelerator.Download(output);
        for (int r = 0; r < rows; r++)
        {
            double expected = 0, magnitude = 0;
            for (int c = 0; c < cols; c++)
            {
                double term = (double)matrix[r * cols + c] * x[c];
                expected += term;
                magnitude += Math.Abs(term);
            }

            // fp32 accumulation of cols terms: each partial sum rounds by at most 2^-24 of the running magnitude.
            Assert.True(Math.Abs(y[r] - expected) <= 1e-6 * cols * magnitude, $"row {r}: {y[r]} vs {expected}");
        }
    }

    [Theory]
    [InlineData(4)]
    [InlineData(32)]
    public void SwiGluRows_matches_the_cpu_engine_per_row_including_large_negative_gates(int warpSize)
    {
        Accelerator accelerator = accelerators.WithWarpSize(warpSize);
        const int Rows = 3, Width = 50;
        float[] gate = [.. DeviceData.Floats(new Random(5), Rows * Width - 3, 8f), -120f, 95f, 0f];
        float[] up = DeviceData.Floats(new Random(6), gate.Length, 3f);
        // Each row of the kernel's input holds that row's gate, then its up.
        float[] gateUp = [.. Enumerable.Range(0, Rows).SelectMany(t => gate.Skip(t * Width).Take(Width).Concat(up.Skip(t * Width).Take(Width)))];
        using var gateUpBuffer = accelerator.Upload(gateUp);
        using var hidden = accelerator.Zeros<float>(gate.Length);
        var kernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, int>(PrefillKernels.SwiGluRows);

        kernel(gate.Length, gateUpBuffer.View, hidden.View, Width);

        float[] expected = [.. gate];
        VectorMath.SwiGlu(expected, up, new float[gate.Length]);
        float[] actual = accelerator.Download(hidden);
        for (int i = 0; i < gate.Length; i++)
        {
            Assert.True(float.IsFinite(actual[i]), $"element {i} is {actual[i]}");
            Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-6f * Math.Max(1f, Math.Abs(expected[i])), $"element {i}: {actual[i]} vs {expected[i]}");
        }
    }
}
