using GlowQ.Runtime.Cuda.Ptx;

namespace GlowQ.Runtime.Cuda;

/// <summary>
/// <see cref="IGpuDevice"/> on the CUDA driver: a context on one device, the embedded PTX JIT-compiled per kernel on
/// first load, and every launch and copy on the context's legacy default stream, so they run in issue order and a
/// synchronous copy waits for the launches before it.
/// </summary>
public sealed unsafe class CudaGpuDevice : IGpuDevice
{
    private readonly CudaContext context;
    private readonly List<CudaModule> modules = [];
    private readonly List<CudaFunction> functions = [];
    private readonly Dictionary<string, int> loaded = new(StringComparer.Ordinal);
    private readonly Dictionary<DevicePointer, HostMemoryRegistration> mappings = [];
    private readonly Dictionary<int, nint> graphs = [];
    private CudaStream? captureStream;
    private bool capturing;

    private CudaGpuDevice(CudaContext context, int warpSize)
    {
        this.context = context;
        WarpSize = warpSize;
    }

    public CudaDeviceSummary Device => context.Device;

    public string Description => context.Device.ToString();

    public bool IsIntegrated => context.Device.IsIntegrated;

    public int WarpSize { get; }

    /// <summary>Opens device <paramref name="ordinal"/> through its primary context.</summary>
    /// <exception cref="CudaException">No driver, no such device, or no context.</exception>
    public static CudaGpuDevice Open(int ordinal = 0)
    {
        var context = CudaContext.Create(ordinal);
        try
        {
            CudaErrors.Check(CudaDriver.cuDeviceGet(out var device, ordinal), nameof(CudaDriver.cuDeviceGet));
            return new CudaGpuDevice(context, CudaDeviceSummary.Attribute(device, CudaDriver.CU_DEVICE_ATTRIBUTE_WARP_SIZE));
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    public (long FreeBytes, long TotalBytes) MemoryInfo() => context.MemoryInfo();

    /// <summary>Page-locks the host range and maps it into the device's address space (<c>cuMemHostRegister</c>, device map).</summary>
    public DevicePointer MapHostMemory(nint hostAddress, long bytes)
    {
        var registration = context.RegisterHostMemory(hostAddress, bytes, readOnly: true);
        mappings.Add(registration.DevicePointer, registration);
        return registration.DevicePointer;
    }

    public void UnmapHostMemory(DevicePointer devicePointer)
    {
        if (mappings.Remove(devicePointer, out var registration))
        {
            registration.Dispose();
        }
    }

    public DevicePointer Allocate(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        _ = context.Handle;
        CudaErrors.Check(CudaDriver.cuMemAlloc_v2(out var address, (nuint)bytes), nameof(CudaDriver.cuMemAlloc_v2), $"{bytes} bytes");
        var result = CudaDriver.cuMemsetD8_v2(address, 0, (nuint)bytes);
        if (result != CudaErrors.Success)
        {
            _ = CudaDriver.cuMemFree_v2(address);
            CudaErrors.Check(result, nameof(CudaDriver.cuMemsetD8_v2));
        }
        return new DevicePointer(address);
    }

    public void Free(DevicePointer pointer)
    {
        if (!pointer.IsNull)
        {
            // A failed free at teardown has nothing left to release, so it is not thrown.
            _ = CudaDriver.cuMemFree_v2(pointer.Address);
        }
    }

    public void CopyToDevice(ReadOnlySpan<byte> source, DevicePointer destination)
    {
        RefuseWhileCapturing(nameof(CopyToDevice));
        fixed (byte* host = source)
        {
            CudaErrors.Check(CudaDriver.cuMemcpyHtoD_v2(destination.Address, host, (nuint)source.Length), nameof(CudaDriver.cuMemcpyHtoD_v2));
        }
    }

    public void CopyToHost(DevicePointer source, Span<byte> destination)
    {
        RefuseWhileCapturing(nameof(CopyToHost));
        fixed (byte* host = destination)
        {
            CudaErrors.Check(CudaDriver.cuMemcpyDtoH_v2(host, source.Address, (nuint)destination.Length), nameof(CudaDriver.cuMemcpyDtoH_v2));
        }
    }

    public int LoadKernel(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (loaded.TryGetValue(name, out var existing))
        {
            return existing;
        }
        var module = context.LoadModule(EmbeddedKernels.GetPtx(name));
        modules.Add(module);
        functions.Add(module.GetFunction(EmbeddedKernels.GetEntry(name).Entry));
        loaded[name] = functions.Count - 1;
        return functions.Count - 1;
    }

    public void Launch(int kernel, int extent, KernelArguments arguments)
    {
        var geometry = LaunchGeometry.ForExtent(extent);
        functions[kernel].Launch(geometry.Grid, geometry.Block, arguments, capturing ? captureStream : null);
    }

    public void Synchronize()
    {
        RefuseWhileCapturing(nameof(Synchronize));
        context.Synchronize();
    }

    /// <summary>
    /// Captures the launches on a stream of their own (capture is not allowed on the legacy default stream), then
    /// launches the graph on the default stream, where it is ordered with every copy before and after it.
    /// </summary>
    public void LaunchAsGraph<TState>(int key, TState state, Action<TState> record)
    {
        ArgumentNullException.ThrowIfNull(record);
        captureStream ??= context.CreateStream(nonBlocking: true);
        CudaErrors.Check(CudaDriver.cuStreamBeginCapture_v2(captureStream.Handle, (int)CudaCaptureMode.ThreadLocal), nameof(CudaDriver.cuStreamBeginCapture_v2));
        capturing = true;
        try
        {
            record(state);
        }
        catch
        {
            capturing = false;
            // Capture must end even when recording failed, or the stream stays unusable; the recording's error is the one reported.
            if (CudaDriver.cuStreamEndCapture(captureStream.Handle, out var abandoned) == CudaErrors.Success && abandoned != 0)
            {
                _ = CudaDriver.cuGraphDestroy(abandoned);
            }
            throw;
        }
        capturing = false;
        CudaErrors.Check(CudaDriver.cuStreamEndCapture(captureStream.Handle, out var graph), nameof(CudaDriver.cuStreamEndCapture));
        try
        {
            if (!graphs.TryGetValue(key, out var executable)
                || CudaDriver.cuGraphExecUpdate(executable, graph, out _, out var updateResult) != CudaErrors.Success
                || updateResult != 0)
            {
                if (graphs.Remove(key, out var stale))
                {
                    _ = CudaDriver.cuGraphExecDestroy(stale);
                }
                CudaErrors.Check(CudaDriver.cuGraphInstantiateWithFlags(out executable, graph, 0), nameof(CudaDriver.cuGraphInstantiateWithFlags));
                graphs[key] = executable;
            }
            CudaErrors.Check(CudaDriver.cuGraphLaunch(executable, 0), nameof(CudaDriver.cuGraphLaunch));
        }
        finally
        {
            _ = CudaDriver.cuGraphDestroy(graph);
        }
    }

    private void RefuseWhileCapturing(string operation)
    {
        if (capturing)
        {
            throw new InvalidOperationException($"{operation} inside a launch sequence recorded as a CUDA graph: only launches can be recorded");
        }
    }

    public void Dispose()
    {
        // Executable graphs refer to the modules' functions, so they go first.
        foreach (var executable in graphs.Values)
        {
            _ = CudaDriver.cuGraphExecDestroy(executable);
        }
        graphs.Clear();
        captureStream?.Dispose();
        captureStream = null;
        foreach (var module in modules)
        {
            module.Dispose();
        }
        modules.Clear();
        functions.Clear();
        loaded.Clear();
        foreach (var registration in mappings.Values)
        {
            registration.Dispose();
        }
        mappings.Clear();
        context.Dispose();
    }
}
