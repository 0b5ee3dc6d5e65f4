using System.Buffers.Binary;
using System.Reflection;
using System.Runtime.InteropServices;
using GlowQ.Runtime.Cuda;
using ILGPU;
using ILGPU.Runtime;

namespace GlowQ.Kernels.Tests;

/// <summary>
/// <see cref="IGpuDevice"/> on an ILGPU CPU accelerator: device pointers are the host addresses of accelerator buffers,
/// kernels are the [GpuKernel] methods themselves, and each launch is decoded from the very bytes the CUDA driver would
/// receive (views mapped back to the buffers they point into, scalars read at their packed offsets). So a test that
/// runs the GPU model here checks its buffer wiring, the launch wrappers' packing and the kernels' numerics together.
/// </summary>
internal sealed class IlgpuCpuDevice(Accelerator accelerator) : IGpuDevice
{
    private static readonly MethodInfo CastView = typeof(ArrayView<byte>).GetMethod(nameof(ArrayView<byte>.Cast))!;

    private readonly SortedDictionary<ulong, MemoryBuffer1D<byte, Stride1D.Dense>> _buffers = [];
    private readonly List<(MethodInfo Method, Kernel Kernel)> _kernels = [];
    private readonly Dictionary<ulong, long> _mapped = [];
    private readonly Dictionary<int, int[]> _graphKernels = [];
    private List<RecordedLaunch>? _recording;

    public string Description => $"ILGPU CPU accelerator, warp size {accelerator.WarpSize}";

    public bool IsIntegrated { get; init; }

    public int WarpSize => accelerator.WarpSize;

    /// <summary>Launches so far, to show that work ran here rather than on the CPU backend.</summary>
    public int Launches { get; private set; }

    public long AllocatedBytes => _buffers.Values.Sum(b => b.Length);

    /// <summary>Bytes copied device → host so far: what crossed back to the host.</summary>
    public long DownloadedBytes { get; private set; }

    public DevicePointer Allocate(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        MemoryBuffer1D<byte, Stride1D.Dense> buffer = accelerator.Allocate1D<byte>(bytes);
        buffer.MemSetToZero();
        accelerator.Synchronize();
        var address = (ulong)buffer.NativePtr;
        _buffers.Add(address, buffer);
        return new DevicePointer(address);
    }

    /// <summary>Bytes made readable through <see cref="MapHostMemory"/> and not yet unmapped.</summary>
    public long MappedBytes { get; private set; }

    /// <summary>
    /// The CPU accelerator cannot address arbitrary host memory, so a mapping is a copy taken at map time; kernels read
    /// the same bytes either way, because the caller must keep mapped memory unchanged.
    /// </summary>
    public DevicePointer MapHostMemory(nint hostAddress, long bytes)
    {
        DevicePointer pointer = Allocate(bytes);
        unsafe
        {
            new ReadOnlySpan<byte>((void*)hostAddress, checked((int)bytes)).CopyTo(HostBytes(pointer, (int)bytes));
        }

        _mapped.Add(pointer.Address, bytes);
        MappedBytes += bytes;
        return pointer;
    }

    public void UnmapHostMemory(DevicePointer devicePointer)
    {
        if (_mapped.Remove(devicePointer.Address, out long bytes))
        {
            MappedBytes -= bytes;
            Free(devicePointer);
        }
    }

    public void Free(DevicePointer pointer)
    {
        if (_buffers.Remove(pointer.Address, out MemoryBuffer1D<byte, Stride1D.Dense>? buffer))
        {
            buffer.Dispose();
        }
    }

    public void CopyToDevice(ReadOnlySpan<byte> source, DevicePointer destination)
    {
        RefuseWhileRecording();
        accelerator.Synchronize();
        source.CopyTo(HostBytes(destination, source.Length));
    }

    public void CopyToHost(DevicePointer source, Span<byte> destination)
    {
        RefuseWhileRecording();
        accelerator.Synchronize();
        HostBytes(source, destination.Length).CopyTo(destination);
        DownloadedBytes += destination.Length;
    }

    public int LoadKernel(string name)
    {
        MethodInfo method = typeof(GpuKernelAttribute).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Static))
            .Single(m => m.Name == name && m.IsDefined(typeof(GpuKernelAttribute)));
        _kernels.Add((method, accelerator.LoadAutoGroupedKernel(method)));
        return _kernels.Count - 1;
    }

    /// <summary>Sequences recorded by <see cref="LaunchAsGraph"/> that needed a new graph (a new key or other kernels).</summary>
    public int GraphsBuilt { get; private set; }

    /// <summary>Recorded sequences launched, each one submission on a CUDA device.</summary>
    public int GraphLaunches { get; private set; }

    /// <summary>
    /// As the CUDA device: the launches are recorded (kernels, extents and a copy of their packed bytes), not run, and
    /// a copy or wait meanwhile throws; then the recording runs. A key whose kernel sequence changed counts as a new graph.
    /// </summary>
    public void LaunchAsGraph<TState>(int key, TState state, Action<TState> record)
    {
        Assert.Null(_recording);
        _recording = [];
        List<RecordedLaunch> recorded;
        try
        {
            record(state);
        }
        finally
        {
            recorded = _recording;
            _recording = null;
        }

        int[] kernels = [.. recorded.Select(r => r.Kernel)];
        if (!_graphKernels.TryGetValue(key, out int[]? built) || !built.SequenceEqual(kernels))
        {
            _graphKernels[key] = kernels;
            GraphsBuilt++;
        }

        foreach (RecordedLaunch launch in recorded)
        {
            Run(launch.Kernel, launch.Extent, launch.Packed, launch.Bytes);
        }

        GraphLaunches++;
    }

    public void Launch(int kernel, int extent, KernelArguments arguments)
    {
        if (_recording is not null)
        {
            _recording.Add(new RecordedLaunch(kernel, extent, [.. arguments.Arguments], arguments.Bytes.ToArray()));
            return;
        }

        Run(kernel, extent, arguments.Arguments, arguments.Bytes);
    }

    private void Run(int kernel, int extent, IReadOnlyList<PackedKernelArgument> packed, ReadOnlySpan<byte> bytes)
    {
        (MethodInfo method, Kernel compiled) = _kernels[kernel];
        ParameterInfo[] parameters = method.GetParameters();
        Assert.Equal(parameters.Length, packed.Count);
        Assert.Equal(KernelArgumentKind.Extent, packed[0].Kind);
        Assert.Equal(extent, BinaryPrimitives.ReadInt32LittleEndian(bytes[packed[0].Offset..]));

        var values = new object[parameters.Length - 1];
        for (int i = 1; i < parameters.Length; i++)
        {
            ReadOnlySpan<byte> slot = bytes.Slice(packed[i].Offset, packed[i].Size);
            Type type = parameters[i].ParameterType;
            values[i - 1] = packed[i].Kind switch
            {
                KernelArgumentKind.View => View(type, BinaryPrimitives.ReadUInt64LittleEndian(slot), BinaryPrimitives.ReadInt64LittleEndian(slot[8..])),
                KernelArgumentKind.Int32 when type == typeof(int) => BinaryPrimitives.ReadInt32LittleEndian(slot),
                KernelArgumentKind.UInt32 when type == typeof(uint) => BinaryPrimitives.ReadUInt32LittleEndian(slot),
                KernelArgumentKind.Float when type == typeof(float) => BinaryPrimitives.ReadSingleLittleEndian(slot),
                KernelArgumentKind.Bool when type == typeof(bool) => BinaryPrimitives.ReadInt32LittleEndian(slot) != 0,
                KernelArgumentKind.Half when type == typeof(ILGPU.Half) => (ILGPU.Half)(float)BinaryPrimitives.ReadHalfLittleEndian(slot),
                _ => throw new InvalidOperationException($"{method.Name}: parameter {i} ({type.Name}) was packed as {packed[i].Kind}"),
            };
        }

        compiled.Launch(accelerator.DefaultStream, extent, values);
        Launches++;
    }

    public void Synchronize()
    {
        RefuseWhileRecording();
        accelerator.Synchronize();
    }

    private void RefuseWhileRecording()
    {
        if (_recording is not null)
        {
            throw new InvalidOperationException("a copy or wait inside a launch sequence recorded as a graph");
        }
    }

    public void Dispose()
    {
        foreach (MemoryBuffer1D<byte, Stride1D.Dense> buffer in _buffers.Values)
        {
            buffer.Dispose();
        }

        _buffers.Clear();
        foreach ((_, Kernel compiled) in _kernels)
        {
            compiled.Dispose();
        }

        _kernels.Clear();
    }

    /// <summary>The ArrayView&lt;T&gt; a packed {pointer, length} stands for: a sub-view of the buffer it points into.</summary>
    private object View(Type viewType, ulong address, long length)
    {
        Type element = viewType.GetGenericArguments()[0];
        if (length == 0)
        {
            return Activator.CreateInstance(viewType)!;
        }

        (MemoryBuffer1D<byte, Stride1D.Dense> buffer, long offset) = Locate(address, length * Marshal.SizeOf(element));
        ArrayView<byte> bytes = buffer.View.SubView(offset, length * Marshal.SizeOf(element));
        return CastView.MakeGenericMethod(element).Invoke(bytes, null)!;
    }

    private unsafe Span<byte> HostBytes(DevicePointer pointer, int length)
    {
        (MemoryBuffer1D<byte, Stride1D.Dense> buffer, long offset) = Locate(pointer.Address, length);
        return new Span<byte>((byte*)buffer.NativePtr + offset, length);
    }

    private (MemoryBuffer1D<byte, Stride1D.Dense> Buffer, long Offset) Locate(ulong address, long bytes)
    {
        foreach ((ulong start, MemoryBuffer1D<byte, Stride1D.Dense> buffer) in _buffers)
        {
            if (address >= start && address - start + (ulong)bytes <= (ulong)buffer.Length)
            {
                return (buffer, (long)(address - start));
            }
        }

        throw new InvalidOperationException($"device range 0x{address:x} + {bytes} bytes lies in no allocated buffer");
    }

    private sealed record RecordedLaunch(int Kernel, int Extent, PackedKernelArgument[] Packed, byte[] Bytes);
}
