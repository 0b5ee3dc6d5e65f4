using System.Runtime.InteropServices;

namespace GlowQ.Runtime.Cuda;

/// <summary>
/// The CUDA driver-API entry points this runtime uses, bound by source-generated marshalling so they stay AOT-clean.
/// Widths follow NVIDIA's cuda.h exactly, because a wrong width corrupts the call silently: CUresult, enums and
/// CUdevice are 32-bit <c>int</c>; <c>unsigned int</c> is <c>uint</c>; <c>size_t</c> is <c>nuint</c>; CUdeviceptr is
/// <c>unsigned long long</c> (the <c>_v2</c> ABI, hence <c>ulong</c>); every other handle is a pointer (<c>nint</c>).
/// Method names are the exported symbols, so error messages name the function a user can look up.
/// </summary>
internal static unsafe partial class CudaDriver
{
    /// <summary>The driver's SONAME; <c>libcuda.so</c> is only a development symlink and is often absent.</summary>
    internal const string LibraryName = "libcuda.so.1";

    internal const int CU_DEVICE_ATTRIBUTE_WARP_SIZE = 10;
    internal const int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
    internal const int CU_DEVICE_ATTRIBUTE_INTEGRATED = 18;
    internal const int CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY = 19;
    internal const int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
    internal const int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
    internal const int CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED = 113;

    internal const int CU_JIT_ERROR_LOG_BUFFER = 5;
    internal const int CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;

    internal const uint CU_MEMHOSTREGISTER_PORTABLE = 1;
    internal const uint CU_MEMHOSTREGISTER_DEVICEMAP = 2;
    internal const uint CU_MEMHOSTREGISTER_READ_ONLY = 8;

    internal const uint CU_EVENT_DEFAULT = 0;
    internal const uint CU_EVENT_DISABLE_TIMING = 2;

    // Initialisation, version, errors
    [LibraryImport(LibraryName)] internal static partial int cuInit(uint flags);
    [LibraryImport(LibraryName)] internal static partial int cuDriverGetVersion(out int driverVersion);
    [LibraryImport(LibraryName)] internal static partial int cuGetErrorName(int error, out nint text);
    [LibraryImport(LibraryName)] internal static partial int cuGetErrorString(int error, out nint text);

    // Devices
    [LibraryImport(LibraryName)] internal static partial int cuDeviceGetCount(out int count);
    [LibraryImport(LibraryName)] internal static partial int cuDeviceGet(out int device, int ordinal);
    [LibraryImport(LibraryName)] internal static partial int cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(LibraryName)] internal static partial int cuDeviceGetAttribute(out int value, int attribute, int device);
    [LibraryImport(LibraryName)] internal static partial int cuDeviceTotalMem_v2(out nuint bytes, int device);

    // Contexts
    [LibraryImport(LibraryName)] internal static partial int cuDevicePrimaryCtxRetain(out nint context, int device);
    [LibraryImport(LibraryName)] internal static partial int cuDevicePrimaryCtxRelease_v2(int device);
    [LibraryImport(LibraryName)] internal static partial int cuCtxCreate_v2(out nint context, uint flags, int device);
    [LibraryImport(LibraryName)] internal static partial int cuCtxDestroy_v2(nint context);
    [LibraryImport(LibraryName)] internal static partial int cuCtxSetCurrent(nint context);
    [LibraryImport(LibraryName)] internal static partial int cuCtxSynchronize();

    // Modules and launches
    [LibraryImport(LibraryName)] internal static partial int cuModuleLoadDataEx(out nint module, void* image, uint optionCount, int* options, void** optionValues);
    [LibraryImport(LibraryName)] internal static partial int cuModuleUnload(nint module);
    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)] internal static partial int cuModuleGetFunction(out nint function, nint module, string name);
    [LibraryImport(LibraryName)]
    internal static partial int cuLaunchKernel(
        nint function, uint gridDimX, uint gridDimY, uint gridDimZ, uint blockDimX, uint blockDimY, uint blockDimZ,
        uint sharedMemBytes, nint stream, void** kernelParams, void** extra);

    // Memory
    [LibraryImport(LibraryName)] internal static partial int cuMemAlloc_v2(out ulong devicePointer, nuint bytes);
    [LibraryImport(LibraryName)] internal static partial int cuMemFree_v2(ulong devicePointer);
    [LibraryImport(LibraryName)] internal static partial int cuMemGetInfo_v2(out nuint free, out nuint total);
    [LibraryImport(LibraryName)] internal static partial int cuMemcpyHtoD_v2(ulong destination, void* source, nuint bytes);
    [LibraryImport(LibraryName)] internal static partial int cuMemcpyDtoH_v2(void* destination, ulong source, nuint bytes);
    [LibraryImport(LibraryName)] internal static partial int cuMemcpyHtoDAsync_v2(ulong destination, void* source, nuint bytes, nint stream);
    [LibraryImport(LibraryName)] internal static partial int cuMemcpyDtoHAsync_v2(void* destination, ulong source, nuint bytes, nint stream);
    [LibraryImport(LibraryName)] internal static partial int cuMemsetD8_v2(ulong destination, byte value, nuint count);
    [LibraryImport(LibraryName)] internal static partial int cuMemHostRegister_v2(void* host, nuint bytes, uint flags);
    [LibraryImport(LibraryName)] internal static partial int cuMemHostUnregister(void* host);
    [LibraryImport(LibraryName)] internal static partial int cuMemHostGetDevicePointer_v2(out ulong devicePointer, void* host, uint flags);

    // Streams and events
    [LibraryImport(LibraryName)] internal static partial int cuStreamCreate(out nint stream, uint flags);
    [LibraryImport(LibraryName)] internal static partial int cuStreamDestroy_v2(nint stream);
    [LibraryImport(LibraryName)] internal static partial int cuStreamSynchronize(nint stream);
    [LibraryImport(LibraryName)] internal static partial int cuEventCreate(out nint evt, uint flags);
    [LibraryImport(LibraryName)] internal static partial int cuEventDestroy_v2(nint evt);
    [LibraryImport(LibraryName)] internal static partial int cuEventRecord(nint evt, nint stream);
    [LibraryImport(LibraryName)] internal static partial int cuEventSynchronize(nint evt);
    [LibraryImport(LibraryName)] internal static partial int cuEventElapsedTime(out float milliseconds, nint start, nint end);

    // Graphs: capture a stream's work once, replay it with one launch
    [LibraryImport(LibraryName)] internal static partial int cuStreamBeginCapture_v2(nint stream, int mode);
    [LibraryImport(LibraryName)] internal static partial int cuStreamEndCapture(nint stream, out nint graph);
    // flags is unsigned long long in cuda.h, unlike most driver flags.
    [LibraryImport(LibraryName)] internal static partial int cuGraphInstantiateWithFlags(out nint graphExec, nint graph, ulong flags);
    [LibraryImport(LibraryName)] internal static partial int cuGraphLaunch(nint graphExec, nint stream);
    // The CUDA 10.2 signature; later drivers keep exporting it beside cuGraphExecUpdate_v2. updateResult 0 = success.
    [LibraryImport(LibraryName)] internal static partial int cuGraphExecUpdate(nint graphExec, nint graph, out nint errorNode, out int updateResult);
    [LibraryImport(LibraryName)] internal static partial int cuGraphExecDestroy(nint graphExec);
    [LibraryImport(LibraryName)] internal static partial int cuGraphDestroy(nint graph);

    private static readonly Lock InitLock = new();
    private static volatile bool libraryLoaded;
    private static int initResult = -1;

    /// <summary>True once <see cref="LibraryName"/> has been found, so error formatting may ask the driver for names.</summary>
    internal static bool IsLoaded => libraryLoaded;

    /// <summary>
    /// Whether <paramref name="libraryName"/> can be loaded. The name is injectable so tests can take the
    /// "driver missing" path on any machine; only the real SONAME marks the bindings above as callable.
    /// </summary>
    internal static bool TryLoad(string libraryName)
    {
        if (!NativeLibrary.TryLoad(libraryName, out _))
        {
            return false;
        }
        if (libraryName == LibraryName)
        {
            libraryLoaded = true;
        }
        return true;
    }

    /// <summary>Loads the driver and runs cuInit once per process; every handle-creating type calls this first.</summary>
    internal static void EnsureInitialized()
    {
        lock (InitLock)
        {
            if (initResult == 0)
            {
                return;
            }
            if (!TryLoad(LibraryName))
            {
                throw new CudaException($"cuda: no CUDA driver ({LibraryName} not found)");
            }
            initResult = cuInit(0);
            CudaErrors.Check(initResult, nameof(cuInit));
        }
    }
}
