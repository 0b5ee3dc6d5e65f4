using System.Buffers;
using System.Runtime.CompilerServices;

namespace GlowQ.Runtime.Cuda;

/// <summary>A device address (CUdeviceptr, 64-bit on every supported platform).</summary>
public readonly record struct DevicePointer(ulong Address)
{
    public bool IsNull => Address == 0;

    public DevicePointer AddBytes(long bytes) => new(checked((ulong)((long)Address + bytes)));
}

/// <summary>Device memory for <paramref name="Length"/> elements of <typeparamref name="T"/>; every copy is range-checked.</summary>
public sealed unsafe class DeviceBuffer<T> : IDisposable
    where T : unmanaged
{
    private DevicePointer pointer;

    internal DeviceBuffer(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        Length = length;
        SizeInBytes = checked(length * Unsafe.SizeOf<T>());
        CudaErrors.Check(CudaDriver.cuMemAlloc_v2(out var address, (nuint)SizeInBytes), nameof(CudaDriver.cuMemAlloc_v2),
            $"{SizeInBytes} bytes for {length} × {typeof(T).Name}");
        pointer = new DevicePointer(address);
    }

    public long Length { get; }

    public long SizeInBytes { get; }

    public DevicePointer Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(pointer.IsNull, this);
            return pointer;
        }
    }

    /// <summary>The address of element <paramref name="index"/>, as an offset view's pointer.</summary>
    public DevicePointer PointerAt(long index)
    {
        DeviceRange.Check(Length, index, 0);
        return Pointer.AddBytes(index * Unsafe.SizeOf<T>());
    }

    public void CopyFrom(ReadOnlySpan<T> source, long destinationIndex = 0)
    {
        DeviceRange.Check(Length, destinationIndex, source.Length);
        fixed (T* host = source)
        {
            CudaErrors.Check(CudaDriver.cuMemcpyHtoD_v2(PointerAt(destinationIndex).Address, host, ByteCount(source.Length)), nameof(CudaDriver.cuMemcpyHtoD_v2));
        }
    }

    public void CopyTo(Span<T> destination, long sourceIndex = 0)
    {
        DeviceRange.Check(Length, sourceIndex, destination.Length);
        fixed (T* host = destination)
        {
            CudaErrors.Check(CudaDriver.cuMemcpyDtoH_v2(host, PointerAt(sourceIndex).Address, ByteCount(destination.Length)), nameof(CudaDriver.cuMemcpyDtoH_v2));
        }
    }

    /// <summary>
    /// Queues a host-to-device copy on <paramref name="stream"/>. The returned handle keeps <paramref name="source"/>
    /// pinned: dispose it only after the stream has been synchronised.
    /// </summary>
    public MemoryHandle EnqueueCopyFrom(ReadOnlyMemory<T> source, CudaStream stream, long destinationIndex = 0)
    {
        ArgumentNullException.ThrowIfNull(stream);
        DeviceRange.Check(Length, destinationIndex, source.Length);
        var pin = source.Pin();
        var result = CudaDriver.cuMemcpyHtoDAsync_v2(PointerAt(destinationIndex).Address, pin.Pointer, ByteCount(source.Length), stream.Handle);
        return Pinned(pin, result, nameof(CudaDriver.cuMemcpyHtoDAsync_v2));
    }

    /// <summary>Queues a device-to-host copy; as with <see cref="EnqueueCopyFrom"/>, dispose the handle after synchronising.</summary>
    public MemoryHandle EnqueueCopyTo(Memory<T> destination, CudaStream stream, long sourceIndex = 0)
    {
        ArgumentNullException.ThrowIfNull(stream);
        DeviceRange.Check(Length, sourceIndex, destination.Length);
        var pin = destination.Pin();
        var result = CudaDriver.cuMemcpyDtoHAsync_v2(pin.Pointer, PointerAt(sourceIndex).Address, ByteCount(destination.Length), stream.Handle);
        return Pinned(pin, result, nameof(CudaDriver.cuMemcpyDtoHAsync_v2));
    }

    /// <summary>Sets every byte to zero.</summary>
    public void Clear() =>
        CudaErrors.Check(CudaDriver.cuMemsetD8_v2(Pointer.Address, 0, (nuint)SizeInBytes), nameof(CudaDriver.cuMemsetD8_v2));

    public void Dispose()
    {
        if (!pointer.IsNull)
        {
            // A failed free at teardown (context already gone) has nothing left to release, so it is not thrown.
            _ = CudaDriver.cuMemFree_v2(pointer.Address);
            pointer = default;
        }
    }

    private static nuint ByteCount(int elements) => (nuint)((long)elements * Unsafe.SizeOf<T>());

    private static MemoryHandle Pinned(MemoryHandle pin, int result, string function)
    {
        if (result != CudaErrors.Success)
        {
            pin.Dispose();
            CudaErrors.Check(result, function);
        }
        return pin;
    }
}

/// <summary>The bounds rule of every device copy, separate so it is testable without a device.</summary>
internal static class DeviceRange
{
    internal static void Check(long bufferLength, long start, long count)
    {
        if (start < 0 || count < 0 || start > bufferLength || count > bufferLength - start)
        {
            throw new ArgumentOutOfRangeException(nameof(start),
                $"elements [{start}, {start + count}) do not fit a device buffer of {bufferLength} elements");
        }
    }
}
