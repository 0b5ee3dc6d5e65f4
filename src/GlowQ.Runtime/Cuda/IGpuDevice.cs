using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace GlowQ.Runtime.Cuda;

/// <summary>
/// What the GPU model needs of a device: linear memory addressed by <see cref="DevicePointer"/>, copies, and launches of
/// the embedded kernels by name with arguments packed as ILGPU's PTX expects them. <see cref="CudaGpuDevice"/> is the
/// driver-API implementation; the kernel tests implement it on ILGPU's CPU accelerator, running the same kernel
/// methods from the same packed bytes, so the whole GPU forward pass is checked on machines without a GPU.
/// <para>
/// Work is ordered: launches and copies run in the order they are issued. Copies return once the host span may be
/// reused (to device) or holds the result (to host, after every earlier launch has finished).
/// </para>
/// </summary>
public interface IGpuDevice : IDisposable
{
    /// <summary>One line for logs: the device's name and kind.</summary>
    string Description { get; }

    /// <summary>True when the GPU shares the host's memory (Jetson), so a device copy of the weights would hold them twice.</summary>
    bool IsIntegrated { get; }

    /// <summary>
    /// Threads per warp (32 on every CUDA GPU). Kernels that give each output row a warp are launched over
    /// rows · WarpSize threads; the CPU accelerator of the tests runs them with warps of 4 as well.
    /// </summary>
    int WarpSize { get; }

    /// <summary>Device memory for <paramref name="bytes"/> bytes, zero-filled, aligned for any element type.</summary>
    DevicePointer Allocate(long bytes);

    /// <summary>Releases memory from <see cref="Allocate"/>.</summary>
    void Free(DevicePointer pointer);

    /// <summary>
    /// Makes <paramref name="bytes"/> bytes of host memory at <paramref name="hostAddress"/> — memory the caller keeps
    /// alive and unchanged, such as a memory-mapped model file — readable by kernels in place, and returns its device
    /// address. On an integrated GPU this is the same physical memory, so weights are not held twice.
    /// </summary>
    DevicePointer MapHostMemory(nint hostAddress, long bytes);

    /// <summary>Ends a mapping from <see cref="MapHostMemory"/>; kernels must not read it afterwards.</summary>
    void UnmapHostMemory(DevicePointer devicePointer);

    void CopyToDevice(ReadOnlySpan<byte> source, DevicePointer destination);

    void CopyToHost(DevicePointer source, Span<byte> destination);

    /// <summary>Loads the embedded kernel <paramref name="name"/> (its method name); returns the handle <see cref="Launch"/> takes.</summary>
    int LoadKernel(string name);

    /// <summary>Queues kernel <paramref name="kernel"/> over <paramref name="extent"/> threads (≥ 1) with packed arguments.</summary>
    void Launch(int kernel, int extent, KernelArguments arguments);

    /// <summary>Waits until every queued launch and copy has finished.</summary>
    void Synchronize();

    /// <summary>
    /// Runs the launches <paramref name="record"/> issues — launches only: a copy or a wait inside it is an error — as
    /// one submission. The CUDA device records them into a graph and launches that, updating in place the executable
    /// graph it keeps under <paramref name="key"/> when only launch parameters (extents, scalars, pointers) changed, so a
    /// decode step of a hundred small kernels costs one submission instead of a hundred. Callers give sequences of
    /// kernels that differ different keys.
    /// </summary>
    void LaunchAsGraph<TState>(int key, TState state, Action<TState> record);
}

/// <summary>Typed allocation and copies over <see cref="IGpuDevice"/>'s bytes.</summary>
public static class GpuDeviceExtensions
{
    public static DeviceView<T> Allocate<T>(this IGpuDevice device, long length)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        return new DeviceView<T>(device.Allocate(checked(length * Unsafe.SizeOf<T>())), length);
    }

    /// <summary>Copies <paramref name="source"/> to the start of <paramref name="destination"/>.</summary>
    public static void Upload<T>(this IGpuDevice device, ReadOnlySpan<T> source, DeviceView<T> destination)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(device);
        DeviceRange.Check(destination.Length, 0, source.Length);
        if (!source.IsEmpty)
        {
            device.CopyToDevice(MemoryMarshal.AsBytes(source), destination.Pointer);
        }
    }

    /// <summary>Fills <paramref name="destination"/> from the start of <paramref name="source"/>.</summary>
    public static void Download<T>(this IGpuDevice device, DeviceView<T> source, Span<T> destination)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(device);
        DeviceRange.Check(source.Length, 0, destination.Length);
        if (!destination.IsEmpty)
        {
            device.CopyToHost(source.Pointer, MemoryMarshal.AsBytes(destination));
        }
    }
}
