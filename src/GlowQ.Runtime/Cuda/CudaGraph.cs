namespace GlowQ.Runtime.Cuda;

/// <summary>Which other threads' CUDA calls a stream capture forbids while it runs (CUstreamCaptureMode).</summary>
public enum CudaCaptureMode
{
    Global = 0,
    ThreadLocal = 1,
    Relaxed = 2,
}

/// <summary>
/// Work recorded once from a stream and replayed with a single launch, so a decode step's many small kernels cost one
/// submission instead of one each.
/// </summary>
public sealed class CudaGraph : IDisposable
{
    private nint graph;
    private nint executable;

    private CudaGraph(nint graph, nint executable)
    {
        this.graph = graph;
        this.executable = executable;
    }

    /// <summary>Records what <paramref name="enqueueWork"/> queues on <paramref name="stream"/> (nothing runs yet) and instantiates it.</summary>
    public static CudaGraph Capture(CudaStream stream, Action<CudaStream> enqueueWork, CudaCaptureMode mode = CudaCaptureMode.ThreadLocal)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(enqueueWork);
        CudaErrors.Check(CudaDriver.cuStreamBeginCapture_v2(stream.Handle, (int)mode), nameof(CudaDriver.cuStreamBeginCapture_v2));
        try
        {
            enqueueWork(stream);
        }
        catch
        {
            // Capture must end even when the work failed, or the stream stays unusable; the work's failure is the one reported.
            if (CudaDriver.cuStreamEndCapture(stream.Handle, out var abandoned) == CudaErrors.Success && abandoned != 0)
            {
                _ = CudaDriver.cuGraphDestroy(abandoned);
            }
            throw;
        }
        CudaErrors.Check(CudaDriver.cuStreamEndCapture(stream.Handle, out var graph), nameof(CudaDriver.cuStreamEndCapture));
        var instantiated = CudaDriver.cuGraphInstantiateWithFlags(out var executable, graph, 0);
        if (instantiated != CudaErrors.Success)
        {
            _ = CudaDriver.cuGraphDestroy(graph);
            CudaErrors.Check(instantiated, nameof(CudaDriver.cuGraphInstantiateWithFlags));
        }
        return new CudaGraph(graph, executable);
    }

    public void Launch(CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ObjectDisposedException.ThrowIf(executable == 0, this);
        CudaErrors.Check(CudaDriver.cuGraphLaunch(executable, stream.Handle), nameof(CudaDriver.cuGraphLaunch));
    }

    public void Dispose()
    {
        if (executable != 0)
        {
            _ = CudaDriver.cuGraphExecDestroy(executable);
            executable = 0;
        }
        if (graph != 0)
        {
            _ = CudaDriver.cuGraphDestroy(graph);
            graph = 0;
        }
    }
}
