using System.Text;

namespace GlowQ.Runtime.Cuda;

/// <summary>PTX JIT-compiled for the current context's device; unloaded on dispose.</summary>
public sealed unsafe class CudaModule : IDisposable
{
    private const int JitLogCapacity = 16 * 1024;

    private nint handle;

    internal CudaModule(ReadOnlySpan<byte> ptx)
    {
        if (ptx.IsEmpty)
        {
            throw new ArgumentException("PTX image is empty", nameof(ptx));
        }
        // The driver reads PTX as a NUL-terminated string.
        var image = new byte[ptx.Length + 1];
        ptx.CopyTo(image);

        var log = new byte[JitLogCapacity];
        var options = stackalloc int[2] { CudaDriver.CU_JIT_ERROR_LOG_BUFFER, CudaDriver.CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES };
        var values = stackalloc void*[2];
        int result;
        fixed (byte* imagePointer = image)
        fixed (byte* logPointer = log)
        {
            values[0] = logPointer;
            // The size option travels in the pointer slot itself, by value.
            values[1] = (void*)(nuint)JitLogCapacity;
            result = CudaDriver.cuModuleLoadDataEx(out handle, imagePointer, 2, options, values);
        }
        if (result != CudaErrors.Success)
        {
            var logText = ReadLog(log);
            CudaErrors.Check(result, nameof(CudaDriver.cuModuleLoadDataEx), logText.Length > 0 ? "JIT log: " + logText : "JIT log empty");
        }
    }

    internal nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(handle == 0, this);
            return handle;
        }
    }

    /// <summary>The kernel entry <paramref name="entryName"/> (ILGPU names them <c>Kernel_&lt;Method&gt;</c>).</summary>
    public CudaFunction GetFunction(string entryName)
    {
        ArgumentException.ThrowIfNullOrEmpty(entryName);
        CudaErrors.Check(CudaDriver.cuModuleGetFunction(out var function, Handle, entryName), nameof(CudaDriver.cuModuleGetFunction),
            $"entry '{entryName}'");
        return new CudaFunction(function, entryName, this);
    }

    public void Dispose()
    {
        if (handle != 0)
        {
            _ = CudaDriver.cuModuleUnload(handle);
            handle = 0;
        }
    }

    internal static string ReadLog(ReadOnlySpan<byte> log)
    {
        var end = log.IndexOf((byte)0);
        return CudaErrors.OneLine(Encoding.UTF8.GetString(end < 0 ? log : log[..end]));
    }
}

/// <summary>Grid or block dimensions of a launch.</summary>
public readonly record struct Dim3(uint X, uint Y = 1, uint Z = 1);

/// <summary>One kernel entry of a loaded module.</summary>
public sealed unsafe class CudaFunction
{
    private readonly nint handle;
    private readonly CudaModule module;

    internal CudaFunction(nint handle, string name, CudaModule module)
    {
        this.handle = handle;
        this.module = module;
        Name = name;
    }

    public string Name { get; }

    /// <summary>
    /// Launches with <paramref name="arguments"/> as <c>kernelParams</c>: one pointer per parameter into the packed
    /// buffer. The driver copies the values during the call, so the buffer may be reused as soon as this returns.
    /// </summary>
    public void Launch(Dim3 grid, Dim3 block, KernelArguments arguments, CudaStream? stream = null, uint sharedMemoryBytes = 0)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        _ = module.Handle;
        Span<nint> pointers = arguments.Count <= 32 ? stackalloc nint[arguments.Count] : new nint[arguments.Count];
        fixed (byte* packed = arguments.Bytes)
        fixed (nint* parameterPointers = pointers)
        {
            arguments.WriteParameterPointers((nint)packed, pointers);
            var result = CudaDriver.cuLaunchKernel(handle, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, sharedMemoryBytes,
                stream?.Handle ?? 0, arguments.Count == 0 ? null : (void**)parameterPointers, null);
            if (result != CudaErrors.Success)
            {
                // The detail is formatted only on failure, so a successful launch allocates nothing here.
                CudaErrors.Check(result, nameof(CudaDriver.cuLaunchKernel), LaunchDetail(grid, block));
            }
        }
    }

    private string LaunchDetail(Dim3 grid, Dim3 block) =>
        $"kernel '{Name}', grid {grid.X}x{grid.Y}x{grid.Z}, block {block.X}x{block.Y}x{block.Z}";
}
