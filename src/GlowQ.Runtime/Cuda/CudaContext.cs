namespace GlowQ.Runtime.Cuda;

/// <summary>How a <see cref="CudaContext"/> holds its device.</summary>
public enum CudaContextKind
{
    /// <summary>The device's primary context, shared with any other library in the process (ILGPU, cuBLAS).</summary>
    Primary,

    /// <summary>A context of this process's own, destroyed on dispose.</summary>
    Created,
}

/// <summary>A device and a context made current on the creating thread; owner of everything allocated through it.</summary>
public sealed class CudaContext : IDisposable
{
    private nint handle;

    private CudaContext(nint handle, int device, CudaContextKind kind, CudaDeviceSummary summary)
    {
        this.handle = handle;
        DeviceHandle = device;
        Kind = kind;
        Device = summary;
    }

    public CudaDeviceSummary Device { get; }

    public CudaContextKind Kind { get; }

    internal int DeviceHandle { get; }

    internal nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(handle == 0, this);
            return handle;
        }
    }

    /// <exception cref="CudaException">No driver, no such device, or the context could not be made.</exception>
    public static CudaContext Create(int deviceOrdinal = 0, CudaContextKind kind = CudaContextKind.Primary)
    {
        CudaDriver.EnsureInitialized();
        var summary = CudaDeviceSummary.Query(deviceOrdinal);
        CudaErrors.Check(CudaDriver.cuDeviceGet(out var device, deviceOrdinal), nameof(CudaDriver.cuDeviceGet));
        nint context;
        if (kind == CudaContextKind.Primary)
        {
            CudaErrors.Check(CudaDriver.cuDevicePrimaryCtxRetain(out context, device), nameof(CudaDriver.cuDevicePrimaryCtxRetain));
            var current = CudaDriver.cuCtxSetCurrent(context);
            if (current != CudaErrors.Success)
            {
                _ = CudaDriver.cuDevicePrimaryCtxRelease_v2(device);
                CudaErrors.Check(current, nameof(CudaDriver.cuCtxSetCurrent));
            }
        }
        else
        {
            // cuCtxCreate makes the new context current itself.
            CudaErrors.Check(CudaDriver.cuCtxCreate_v2(out context, 0, device), nameof(CudaDriver.cuCtxCreate_v2));
        }
        return new CudaContext(context, device, kind, summary);
    }

    /// <summary>Binds this context to the calling thread; needed on every thread that issues work.</summary>
    public void MakeCurrent() => CudaErrors.Check(CudaDriver.cuCtxSetCurrent(Handle), nameof(CudaDriver.cuCtxSetCurrent));

    public void Synchronize() => CudaErrors.Check(CudaDriver.cuCtxSynchronize(), nameof(CudaDriver.cuCtxSynchronize));

    public (long FreeBytes, long TotalBytes) MemoryInfo()
    {
        _ = Handle;
        CudaErrors.Check(CudaDriver.cuMemGetInfo_v2(out var free, out var total), nameof(CudaDriver.cuMemGetInfo_v2));
        return (checked((long)free), checked((long)total));
    }

    public DeviceBuffer<T> Allocate<T>(long length)
        where T : unmanaged
    {
        _ = Handle;
        return new DeviceBuffer<T>(length);
    }

    public CudaStream CreateStream(bool nonBlocking = false)
    {
        _ = Handle;
        return new CudaStream(nonBlocking);
    }

    public CudaEvent CreateEvent(bool enableTiming = true)
    {
        _ = Handle;
        return new CudaEvent(enableTiming);
    }

    /// <summary>JIT-compiles PTX text; a failure carries the JIT's error log.</summary>
    public CudaModule LoadModule(ReadOnlySpan<byte> ptx)
    {
        _ = Handle;
        return new CudaModule(ptx);
    }

    /// <summary>
    /// Page-locks host memory the caller owns (an mmapped weight file) and maps it into the device's address space,
    /// so kernels read it in place: zero-copy on integrated (Jetson) devices.
    /// </summary>
    /// <param name="readOnly">
    /// The device will only read it. Where the driver supports the flag it is passed, because registering pages the
    /// process mapped read-only (a model file opened for reading) requires it.
    /// </param>
    public HostMemoryRegistration RegisterHostMemory(nint hostPointer, long bytes, bool readOnly = false)
    {
        _ = Handle;
        var flags = CudaDriver.CU_MEMHOSTREGISTER_PORTABLE | CudaDriver.CU_MEMHOSTREGISTER_DEVICEMAP;
        // Drivers older than the attribute answer "invalid value": they do not support the flag either.
        if (readOnly
            && CudaDriver.cuDeviceGetAttribute(out var readOnlySupported, CudaDriver.CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED, DeviceHandle) == CudaErrors.Success
            && readOnlySupported != 0)
        {
            flags |= CudaDriver.CU_MEMHOSTREGISTER_READ_ONLY;
        }
        return new HostMemoryRegistration(hostPointer, bytes, flags);
    }

    public void Dispose()
    {
        if (handle == 0)
        {
            return;
        }
        // Teardown failures have no remedy (the process is usually exiting), so they are not thrown.
        _ = Kind == CudaContextKind.Primary
            ? CudaDriver.cuDevicePrimaryCtxRelease_v2(DeviceHandle)
            : CudaDriver.cuCtxDestroy_v2(handle);
        handle = 0;
    }
}

/// <summary>Host memory registered with the driver and its device-side address; unregistered on dispose.</summary>
public sealed unsafe class HostMemoryRegistration : IDisposable
{
    private nint host;

    internal HostMemoryRegistration(nint hostPointer, long bytes, uint flags)
    {
        ArgumentOutOfRangeException.ThrowIfZero(hostPointer);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        CudaErrors.Check(
            CudaDriver.cuMemHostRegister_v2((void*)hostPointer, (nuint)bytes, flags),
            nameof(CudaDriver.cuMemHostRegister_v2), $"{bytes} bytes");
        var mapped = CudaDriver.cuMemHostGetDevicePointer_v2(out var device, (void*)hostPointer, 0);
        if (mapped != CudaErrors.Success)
        {
            _ = CudaDriver.cuMemHostUnregister((void*)hostPointer);
            CudaErrors.Check(mapped, nameof(CudaDriver.cuMemHostGetDevicePointer_v2));
        }
        host = hostPointer;
        SizeInBytes = bytes;
        DevicePointer = new DevicePointer(device);
    }

    public DevicePointer DevicePointer { get; }

    public long SizeInBytes { get; }

    public void Dispose()
    {
        if (host != 0)
        {
            _ = CudaDriver.cuMemHostUnregister((void*)host);
            host = 0;
        }
    }
}
