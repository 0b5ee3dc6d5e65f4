using ILGPU;
using ILGPU.Runtime;

namespace GlowQ.Kernels.Tests;

/// <summary>
/// A unit's stacked tensors and a block of inputs on the device; the projection t = B·x comes from
/// <see cref="PrefillKernels.UnitRightFactorRows"/> for a block and <see cref="W4GemvKernels.UnitRightFactor"/> for one
/// row, as each launch sequence computes it. Absent bias and factors are length-0 views, as in production.
/// </summary>
internal sealed class UnitBuffers : IDisposable
{
    private readonly List<MemoryBuffer> _owned = [];

    /// <param name="rank">The rank the launch uses: the unit's, or 0 for a masked-off unit (no factors uploaded).</param>
    /// <param name="rows">Rows of <paramref name="x"/> (a prefill block), 1 for a decoded token.</param>
    public UnitBuffers(Accelerator accelerator, RandomUnit unit, float[] x, int rank, int rows = 1)
    {
        CodeWords = Own(accelerator.Upload(unit.StackedCodeWords())).View;
        Scales = Own(accelerator.UploadHalves(unit.StackedScales())).View;
        Zeros = Own(accelerator.Upload(unit.StackedZeros())).View;
        Input = Own(accelerator.Upload(x)).View;
        Bias = unit.Biases is null ? ArrayView<float>.Empty : Own(accelerator.Upload(unit.StackedBias())).View;
        if (rank > 0)
        {
            LeftFactors = Own(accelerator.UploadHalves(unit.StackedLeftFactors())).View;
            float[] projected = rows == 1 ? RunRightFactor(accelerator, unit, x) : RunRightFactorRows(accelerator, unit, x, rows);
            Projected = Own(accelerator.Upload(projected)).View;
        }
        else
        {
            LeftFactors = ArrayView<ILGPU.Half>.Empty;
            Projected = ArrayView<float>.Empty;
        }
    }

    public ArrayView<uint> CodeWords { get; }

    public ArrayView<ILGPU.Half> Scales { get; }

    public ArrayView<byte> Zeros { get; }

    public ArrayView<float> Bias { get; }

    public ArrayView<ILGPU.Half> LeftFactors { get; }

    public ArrayView<float> Projected { get; }

    public ArrayView<float> Input { get; }

    public void Dispose()
    {
        foreach (MemoryBuffer buffer in _owned)
        {
            buffer.Dispose();
        }
    }

    private T Own<T>(T buffer)
        where T : MemoryBuffer
    {
        _owned.Add(buffer);
        return buffer;
    }

    public static float[] RunRightFactor(Accelerator accelerator, RandomUnit unit, float[] x)
    {
        using var rightFactor = accelerator.UploadHalves(unit.RightFactor);
        using var input = accelerator.Upload(x);
        using var projected = accelerator.Zeros<float>(unit.Rank);
        var kernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ILGPU.Half>, ArrayView<float>, ArrayView<float>, int>(W4GemvKernels.UnitRightFactor);
        kernel(unit.Rank * accelerator.WarpSize, rightFactor.View, input.View, projected.View, unit.Cols);
        return accelerator.Download(projected);
    }

    public static float[] RunRightFactorRows(Accelerator accelerator, RandomUnit unit, float[] x, int rows)
    {
        using var rightFactor = accelerator.UploadHalves(unit.RightFactor);
        using var input = accelerator.Upload(x);
        using var projected = accelerator.Zeros<float>(rows * unit.Rank);
        var kernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ILGPU.Half>, ArrayView<float>, ArrayView<float>, int, int>(PrefillKernels.UnitRightFactorRows);
        kernel(rows * unit.Rank, rightFactor.View, input.View, projected.View, unit.Cols, unit.Rank);
        return accelerator.Download(projected);
    }
}
