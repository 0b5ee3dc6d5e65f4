using System.Runtime.InteropServices;
using ILGPU.Runtime;

namespace GlowQ.Kernels.Tests;

/// <summary>Random test data and host ↔ device copies.</summary>
internal static class DeviceData
{
    public static float[] Floats(Random random, int count, float magnitude = 1f) =>
        [.. Enumerable.Range(0, count).Select(_ => (float)((random.NextDouble() * 2) - 1) * magnitude)];

    public static Half[] Halves(Random random, int count, float magnitude = 1f) =>
        [.. Floats(random, count, magnitude).Select(f => (Half)f)];

    public static MemoryBuffer1D<T, ILGPU.Stride1D.Dense> Upload<T>(this Accelerator accelerator, T[] values)
        where T : unmanaged => accelerator.Allocate1D(values);

    /// <summary>fp16 values as the kernels' <see cref="ILGPU.Half"/> (same bits).</summary>
    public static MemoryBuffer1D<ILGPU.Half, ILGPU.Stride1D.Dense> UploadHalves(this Accelerator accelerator, Half[] values) =>
        accelerator.Allocate1D(MemoryMarshal.Cast<Half, ILGPU.Half>(values).ToArray());

    public static MemoryBuffer1D<T, ILGPU.Stride1D.Dense> Zeros<T>(this Accelerator accelerator, int count)
        where T : unmanaged => accelerator.Allocate1D<T>(count);

    public static T[] Download<T>(this Accelerator accelerator, MemoryBuffer1D<T, ILGPU.Stride1D.Dense> buffer)
        where T : unmanaged
    {
        accelerator.Synchronize();
        return buffer.GetAsArray1D();
    }
}
