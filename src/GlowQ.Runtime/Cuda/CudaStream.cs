using System.Diagnostics.CodeAnalysis;

namespace GlowQ.Runtime.Cuda;

/// <summary>An ordered queue of device work.</summary>
[SuppressMessage("Naming", "CA1711:Identifiers should not have incorrect suffix", Justification = "CUDA's own term (CUstream), not a System.IO.Stream.")]
public sealed class CudaStream : IDisposable
{
    private nint handle;

    internal CudaStream(bool nonBlocking)
    {
        // CU_STREAM_NON_BLOCKING (1): no implicit ordering with the legacy default stream.
        CudaErrors.Check(CudaDriver.cuStreamCreate(out handle, nonBlocking ? 1u : 0u), nameof(CudaDriver.cuStreamCreate));
    }

    internal nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(handle == 0, this);
            return handle;
        }
    }

    /// <summary>Waits until all queued work has finished.</summary>
    public void Synchronize() => CudaErrors.Check(CudaDriver.cuStreamSynchronize(Handle), nameof(CudaDriver.cuStreamSynchronize));

    public void Dispose()
    {
        if (handle != 0)
        {
            _ = CudaDriver.cuStreamDestroy_v2(handle);
            handle = 0;
        }
    }
}

/// <summary>A point in a stream, for waiting on or timing work.</summary>
public sealed class CudaEvent : IDisposable
{
    private nint handle;

    internal CudaEvent(bool enableTiming)
    {
        CudaErrors.Check(
            CudaDriver.cuEventCreate(out handle, enableTiming ? CudaDriver.CU_EVENT_DEFAULT : CudaDriver.CU_EVENT_DISABLE_TIMING),
            nameof(CudaDriver.cuEventCreate));
        TimingEnabled = enableTiming;
    }

    public bool TimingEnabled { get; }

    internal nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(handle == 0, this);
            return handle;
        }
    }

    public void Record(CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        CudaErrors.Check(CudaDriver.cuEventRecord(Handle, stream.Handle), nameof(CudaDriver.cuEventRecord));
    }

    public void Synchronize() => CudaErrors.Check(CudaDriver.cuEventSynchronize(Handle), nameof(CudaDriver.cuEventSynchronize));

    /// <summary>Device time between two recorded events (both with timing enabled; <paramref name="end"/> completed).</summary>
    public static float ElapsedMilliseconds(CudaEvent start, CudaEvent end)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(end);
        CudaErrors.Check(CudaDriver.cuEventElapsedTime(out var milliseconds, start.Handle, end.Handle), nameof(CudaDriver.cuEventElapsedTime));
        return milliseconds;
    }

    public void Dispose()
    {
        if (handle != 0)
        {
            _ = CudaDriver.cuEventDestroy_v2(handle);
            handle = 0;
        }
    }
}
