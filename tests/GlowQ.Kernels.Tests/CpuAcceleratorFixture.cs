using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;

namespace GlowQ.Kernels.Tests;

/// <summary>
/// One ILGPU CPU accelerator of each warp size, shared by every kernel test: creating accelerators is slow, and the
/// two warp sizes (4 and 32) are the ones kernel code must not depend on.
/// </summary>
public sealed class CpuAcceleratorFixture : IDisposable
{
    private readonly Context[] _contexts;
    private readonly Accelerator[] _accelerators;

    public CpuAcceleratorFixture()
    {
        CPUDevice[] devices = [CPUDevice.Default, CPUDevice.Nvidia];
        _contexts = [.. devices.Select(d => Context.Create(b => b.CPU(d).EnableAlgorithms()))];
        _accelerators = [.. _contexts.Select(c => (Accelerator)c.CreateCPUAccelerator(0))];
    }

    /// <summary>The accelerator whose warp size is <paramref name="warpSize"/> (4 or 32).</summary>
    public Accelerator WithWarpSize(int warpSize) =>
        _accelerators.Single(a => a.WarpSize == warpSize);

    public void Dispose()
    {
        foreach (Accelerator accelerator in _accelerators)
        {
            accelerator.Dispose();
        }

        foreach (Context context in _contexts)
        {
            context.Dispose();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class CpuAcceleratorCollectionDefinition : ICollectionFixture<CpuAcceleratorFixture>
{
    public const string Name = "ILGPU CPU accelerators";
}
