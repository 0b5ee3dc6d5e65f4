using System.Globalization;
using System.Text;

namespace GlowQ.Runtime.Cuda;

/// <summary>What one CUDA device offers, as a one-line summary for logs and <c>--backend auto</c>.</summary>
public sealed record CudaDeviceSummary(
    int Ordinal,
    string Name,
    int ComputeCapabilityMajor,
    int ComputeCapabilityMinor,
    long TotalMemoryBytes,
    int MultiprocessorCount,
    bool IsIntegrated,
    bool CanMapHostMemory,
    int DriverVersion,
    int DeviceCount)
{
    /// <summary>cuDriverGetVersion's encoding, 1000 × major + 10 × minor, as "major.minor".</summary>
    public string DriverVersionText => FormatDriverVersion(DriverVersion);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"cuda device {Ordinal}: {Name}, compute {ComputeCapabilityMajor}.{ComputeCapabilityMinor}, " +
        $"{TotalMemoryBytes / (1024.0 * 1024 * 1024):F1} GiB, {MultiprocessorCount} SMs, " +
        $"{(IsIntegrated ? "integrated (shares host memory)" : "discrete")}, driver {DriverVersionText}");

    internal static string FormatDriverVersion(int version) =>
        string.Create(CultureInfo.InvariantCulture, $"{version / 1000}.{version % 1000 / 10}");

    /// <summary>Asks the (initialised) driver about one device.</summary>
    internal static unsafe CudaDeviceSummary Query(int ordinal)
    {
        CudaErrors.Check(CudaDriver.cuDeviceGetCount(out var count), nameof(CudaDriver.cuDeviceGetCount));
        CudaErrors.Check(CudaDriver.cuDeviceGet(out var device, ordinal), nameof(CudaDriver.cuDeviceGet), $"device ordinal {ordinal} of {count}");
        CudaErrors.Check(CudaDriver.cuDriverGetVersion(out var driverVersion), nameof(CudaDriver.cuDriverGetVersion));

        const int NameCapacity = 256;
        var nameBytes = stackalloc byte[NameCapacity];
        CudaErrors.Check(CudaDriver.cuDeviceGetName(nameBytes, NameCapacity, device), nameof(CudaDriver.cuDeviceGetName));
        var nameLength = new ReadOnlySpan<byte>(nameBytes, NameCapacity).IndexOf((byte)0);
        var name = Encoding.UTF8.GetString(nameBytes, nameLength < 0 ? NameCapacity : nameLength);

        CudaErrors.Check(CudaDriver.cuDeviceTotalMem_v2(out var totalBytes, device), nameof(CudaDriver.cuDeviceTotalMem_v2));
        return new CudaDeviceSummary(
            ordinal,
            name,
            Attribute(device, CudaDriver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
            Attribute(device, CudaDriver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR),
            checked((long)totalBytes),
            Attribute(device, CudaDriver.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
            Attribute(device, CudaDriver.CU_DEVICE_ATTRIBUTE_INTEGRATED) != 0,
            Attribute(device, CudaDriver.CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY) != 0,
            driverVersion,
            count);
    }

    internal static int Attribute(int device, int attribute)
    {
        CudaErrors.Check(CudaDriver.cuDeviceGetAttribute(out var value, attribute, device), nameof(CudaDriver.cuDeviceGetAttribute), $"attribute {attribute}");
        return value;
    }
}

/// <summary>Either a usable device or the one-line reason there is none.</summary>
public sealed class CudaProbeResult
{
    private CudaProbeResult(CudaDeviceSummary? device, string? unavailableReason)
    {
        Device = device;
        UnavailableReason = unavailableReason;
    }

    public CudaDeviceSummary? Device { get; }

    public string? UnavailableReason { get; }

    public bool IsAvailable => Device is not null;

    /// <summary>The device summary, or why CUDA cannot be used: one line either way.</summary>
    public string Describe() => Device?.ToString() ?? UnavailableReason ?? "";

    internal static CudaProbeResult Available(CudaDeviceSummary device) => new(device, null);

    internal static CudaProbeResult Unavailable(string reason) => new(null, CudaErrors.OneLine(reason));
}

/// <summary>
/// Decides whether CUDA can be used, without throwing: what <c>--backend auto</c> asks before choosing the GPU, so
/// that a machine without one falls back to the CPU with one line saying why.
/// </summary>
public static class CudaAvailability
{
    public const string NoDriverPrefix = "no CUDA driver";
    public const string NoDeviceReason = "CUDA driver found but no device";
    public const string InitFailedPrefix = "cuInit failed: ";

    /// <summary>Probes the real driver, <c>libcuda.so.1</c>, and device 0.</summary>
    public static CudaProbeResult Probe() => Probe(CudaDriver.LibraryName);

    /// <summary>
    /// Probes with <paramref name="driverLibrary"/> standing in for the driver's name in the presence check, so a
    /// missing driver can be simulated; the driver calls themselves always bind <c>libcuda.so.1</c>.
    /// </summary>
    public static CudaProbeResult Probe(string driverLibrary)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(driverLibrary);
        if (!CudaDriver.TryLoad(driverLibrary))
        {
            return CudaProbeResult.Unavailable($"{NoDriverPrefix} ({driverLibrary} not found)");
        }
        try
        {
            var init = CudaDriver.cuInit(0);
            if (init == CudaErrors.NoDevice)
            {
                return CudaProbeResult.Unavailable(NoDeviceReason);
            }
            if (init != CudaErrors.Success)
            {
                return CudaProbeResult.Unavailable(InitFailedPrefix + CudaErrors.Describe(init, askDriver: true));
            }
            var count = CountDevices();
            if (count <= 0)
            {
                return CudaProbeResult.Unavailable(NoDeviceReason);
            }
            return CudaProbeResult.Available(CudaDeviceSummary.Query(0));
        }
        catch (DllNotFoundException)
        {
            // Only reachable when a stand-in name loaded but the real SONAME does not.
            return CudaProbeResult.Unavailable($"{NoDriverPrefix} ({CudaDriver.LibraryName} not found)");
        }
        catch (EntryPointNotFoundException exception)
        {
            return CudaProbeResult.Unavailable($"CUDA driver too old for this runtime: {exception.Message}");
        }
        catch (CudaException exception)
        {
            return CudaProbeResult.Unavailable(exception.Message);
        }
    }

    private static int CountDevices()
    {
        var result = CudaDriver.cuDeviceGetCount(out var count);
        return result == CudaErrors.NoDevice ? 0 : result == CudaErrors.Success ? count : throw new CudaException(nameof(CudaDriver.cuDeviceGetCount), result, null);
    }
}
