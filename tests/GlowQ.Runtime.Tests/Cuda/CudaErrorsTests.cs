using GlowQ.Runtime.Cuda;

namespace GlowQ.Runtime.Tests.Cuda;

public sealed class CudaErrorsTests
{
    [Fact]
    public void FailureMessage_NamesFunctionCodeMeaningAndDetail_OnOneLine()
    {
        var message = CudaErrors.FormatFailure("cuModuleLoadDataEx", 218, "JIT log: ptxas fatal: line 3\nsyntax error", askDriver: false);

        Assert.Equal(
            "cuda: cuModuleLoadDataEx failed: CUDA_ERROR_INVALID_PTX (a PTX JIT compilation failed) — JIT log: ptxas fatal: line 3 | syntax error",
            message);
    }

    [Fact]
    public void FailureMessage_WithoutDetail_EndsAtTheMeaning()
    {
        Assert.Equal(
            "cuda: cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (out of memory)",
            CudaErrors.FormatFailure("cuMemAlloc_v2", 2, null, askDriver: false));
    }

    [Theory]
    [InlineData(1, "CUDA_ERROR_INVALID_VALUE")]
    [InlineData(3, "CUDA_ERROR_NOT_INITIALIZED")]
    [InlineData(34, "CUDA_ERROR_STUB_LIBRARY")]
    [InlineData(100, "CUDA_ERROR_NO_DEVICE")]
    [InlineData(209, "CUDA_ERROR_NO_BINARY_FOR_GPU")]
    [InlineData(222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION")]
    [InlineData(500, "CUDA_ERROR_NOT_FOUND")]
    [InlineData(700, "CUDA_ERROR_ILLEGAL_ADDRESS")]
    [InlineData(701, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES")]
    [InlineData(719, "CUDA_ERROR_LAUNCH_FAILED")]
    [InlineData(803, "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH")]
    [InlineData(901, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED")]
    [InlineData(999, "CUDA_ERROR_UNKNOWN")]
    public void KnownCodes_AreNamedAsInCudaH(int code, string name)
    {
        Assert.True(CudaResultCodes.TryGet(code, out var actualName, out var description));
        Assert.Equal(name, actualName);
        Assert.StartsWith(name + " (", CudaErrors.Describe(code, askDriver: false));
        Assert.False(string.IsNullOrWhiteSpace(description));
    }

    [Theory]
    [InlineData(12345)]
    [InlineData(-1)]
    [InlineData(6)]
    public void UnknownCode_IsReportedByNumber(int code)
    {
        Assert.False(CudaResultCodes.TryGet(code, out _, out _));
        Assert.Equal(
            $"cuda: cuLaunchKernel failed: CUresult {code} (a code this build does not know; see cuda.h)",
            CudaErrors.FormatFailure("cuLaunchKernel", code, null, askDriver: false));
    }

    [Fact]
    public void EveryTableEntry_IsAnErrorNameWithAOneLineMeaning()
    {
        var entries = 0;
        for (var code = 0; code <= 1000; code++)
        {
            if (!CudaResultCodes.TryGet(code, out var name, out var description))
            {
                continue;
            }
            entries++;
            Assert.Matches("^CUDA_(SUCCESS|ERROR_[A-Z0-9_]+)$", name);
            Assert.DoesNotContain('\n', description);
            Assert.NotEmpty(description);
        }
        Assert.True(entries >= 40, $"only {entries} codes in the table");
    }

    [Fact]
    public void DriverResultException_CarriesFunctionAndCode()
    {
        var exception = new CudaException("cuMemAlloc_v2", 2, "1024 bytes");

        Assert.Equal("cuMemAlloc_v2", exception.Function);
        Assert.Equal(2, exception.Result);
        // The driver, when present, names codes the same way; only the meaning's wording may differ.
        Assert.StartsWith("cuda: cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (", exception.Message);
        Assert.EndsWith(" — 1024 bytes", exception.Message);
    }

    [Fact]
    public void Success_IsNotAFailure()
    {
        CudaErrors.Check(0, "cuInit");
        Assert.Throws<CudaException>(() => CudaErrors.Check(1, "cuInit"));
    }
}
