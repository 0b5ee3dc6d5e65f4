using System.Runtime.InteropServices;
using System.Text;
using GlowQ.Runtime.Cuda;

namespace GlowQ.Runtime.Tests.Cuda;

/// <summary>
/// Runs on machines with and without a GPU: each test asserts what must hold on the machine it finds itself on
/// (xunit 2 cannot skip at run time).
/// </summary>
public sealed class CudaAvailabilityTests
{
    private static bool DriverInstalled => NativeLibrary.TryLoad("libcuda.so.1", out _);

    [Fact]
    public void Probe_WithAMissingDriverLibrary_GivesTheOneLineNoDriverReason()
    {
        var result = CudaAvailability.Probe("libcuda-does-not-exist.so.1");

        Assert.False(result.IsAvailable);
        Assert.Null(result.Device);
        Assert.Equal("no CUDA driver (libcuda-does-not-exist.so.1 not found)", result.UnavailableReason);
        Assert.Equal(result.UnavailableReason, result.Describe());
    }

    [Fact]
    public void Probe_OnThisMachine_GivesASaneDeviceOrADocumentedReason()
    {
        var result = CudaAvailability.Probe();

        Assert.DoesNotContain('\n', result.Describe());
        if (!DriverInstalled)
        {
            Assert.False(result.IsAvailable);
            Assert.Equal("no CUDA driver (libcuda.so.1 not found)", result.UnavailableReason);
            return;
        }
        if (!result.IsAvailable)
        {
            var reason = result.UnavailableReason!;
            Assert.True(
                reason == CudaAvailability.NoDeviceReason || reason.StartsWith(CudaAvailability.InitFailedPrefix, StringComparison.Ordinal)
                    || reason.StartsWith("CUDA driver too old", StringComparison.Ordinal),
                $"undocumented reason: {reason}");
            return;
        }
        var device = result.Device!;
        Assert.Equal(0, device.Ordinal);
        Assert.False(string.IsNullOrWhiteSpace(device.Name));
        Assert.InRange(device.ComputeCapabilityMajor, 3, 20);
        Assert.InRange(device.ComputeCapabilityMinor, 0, 9);
        Assert.True(device.TotalMemoryBytes > 256L << 20, $"{device.TotalMemoryBytes} bytes");
        Assert.True(device.MultiprocessorCount > 0);
        Assert.True(device.DriverVersion >= 10000, $"driver version {device.DriverVersion}");
        Assert.True(device.DeviceCount >= 1);
        Assert.StartsWith($"cuda device 0: {device.Name}, compute ", result.Describe());
    }

    [Theory]
    [InlineData(12080, "12.8")]
    [InlineData(13000, "13.0")]
    [InlineData(11040, "11.4")]
    public void DriverVersion_ReadsAsMajorDotMinor(int encoded, string text)
    {
        Assert.Equal(text, CudaDeviceSummary.FormatDriverVersion(encoded));
    }

    [Fact]
    public void DeviceSummary_IsOneLineWithTheFactsBackendSelectionLogs()
    {
        var summary = new CudaDeviceSummary(0, "Orin", 8, 7, 8L << 30, 16, IsIntegrated: true, CanMapHostMemory: true, 12060, 1);

        Assert.Equal("cuda device 0: Orin, compute 8.7, 8.0 GiB, 16 SMs, integrated (shares host memory), driver 12.6", summary.ToString());
    }

    [Fact]
    public void DeviceWork_RoundTripsOnAGpu_OrFailsWithTheNoDriverMessage()
    {
        if (!CudaAvailability.Probe().IsAvailable)
        {
            if (!DriverInstalled)
            {
                var exception = Assert.Throws<CudaException>(() => CudaContext.Create());
                Assert.Equal("cuda: no CUDA driver (libcuda.so.1 not found)", exception.Message);
            }
            return;
        }

        using var context = CudaContext.Create();
        var (free, total) = context.MemoryInfo();
        Assert.InRange(free, 1, total);

        using var buffer = context.Allocate<float>(1000);
        var source = Enumerable.Range(0, 1000).Select(i => i * 0.5f).ToArray();
        buffer.CopyFrom(source);
        var back = new float[1000];
        buffer.CopyTo(back);
        Assert.Equal(source, back);

        buffer.Clear();
        buffer.CopyTo(back.AsSpan(0, 10), sourceIndex: 990);
        Assert.All(back.AsSpan(0, 10).ToArray(), v => Assert.Equal(0f, v));
        Assert.Throws<ArgumentOutOfRangeException>(() => buffer.CopyFrom(source, destinationIndex: 1));

        using var stream = context.CreateStream();
        using var start = context.CreateEvent();
        using var end = context.CreateEvent();
        start.Record(stream);
        using (buffer.EnqueueCopyFrom(source, stream))
        {
            end.Record(stream);
            stream.Synchronize();
        }
        end.Synchronize();
        Assert.True(CudaEvent.ElapsedMilliseconds(start, end) >= 0);

        var broken = CudaException(() => context.LoadModule(Encoding.ASCII.GetBytes(".version 7.0\n.target sm_50\n.address_size 64\nthis is not ptx;\n")));
        Assert.StartsWith("cuda: cuModuleLoadDataEx failed: CUDA_ERROR_INVALID_PTX (", broken.Message);
        Assert.Contains(" — JIT log: ", broken.Message);
        Assert.DoesNotContain('\n', broken.Message);
    }

    private static CudaException CudaException(Action action) => Assert.Throws<CudaException>(action);
}
