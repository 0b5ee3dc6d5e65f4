using GlowQ.Engine;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Cuda;
using GlowQ.Runtime.Gpu;

namespace GlowQ.Cli;

/// <summary>The --backend value of the verbs that run a .glq model (auto, cuda or cpu) and what it comes to on this machine.</summary>
internal static class BackendOption
{
    public static string Parse(string? value) => value switch
    {
        null => "auto",
        "auto" or "cuda" or "cpu" => value,
        _ => throw new CliUsageException($"--backend must be auto, cuda or cpu, got '{value}'"),
    };

    /// <summary>
    /// The CUDA probe <paramref name="backend"/> asks for: none for cpu; for cuda, an answering device or a one-line error
    /// naming why there is none; for auto, the probe either way, so the caller can say why it falls back to the CPU.
    /// </summary>
    public static CudaProbeResult? Probe(string backend)
    {
        if (backend == "cpu")
        {
            return null;
        }

        CudaProbeResult probe = CudaAvailability.Probe();
        return backend == "cuda" && !probe.IsAvailable ? throw new CliUsageException($"--backend cuda: {probe.Describe()}") : probe;
    }

    /// <summary>
    /// <paramref name="file"/> on CUDA device 0; the model then owns the file and the device. On failure the device is
    /// released and the file stays the caller's.
    /// </summary>
    public static GpuGlqModel OpenGpu(GlqFile file, byte[] mask, InferenceOptions options)
    {
        CudaGpuDevice device = CudaGpuDevice.Open();
        try
        {
            return GpuGlqModel.Open(file, device, mask, options);
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }
}
