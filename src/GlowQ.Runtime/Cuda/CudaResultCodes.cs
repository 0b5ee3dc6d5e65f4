namespace GlowQ.Runtime.Cuda;

/// <summary>
/// CUresult names and meanings for when the driver cannot be asked (not installed, too old, or failed to load):
/// the codes a runtime like this one meets in practice, values as in cuda.h.
/// </summary>
internal static class CudaResultCodes
{
    internal static bool TryGet(int code, out string name, out string description)
    {
        (string Name, string Description)? entry = code switch
        {
            0 => ("CUDA_SUCCESS", "no error"),
            1 => ("CUDA_ERROR_INVALID_VALUE", "invalid argument"),
            2 => ("CUDA_ERROR_OUT_OF_MEMORY", "out of memory"),
            3 => ("CUDA_ERROR_NOT_INITIALIZED", "initialization error"),
            4 => ("CUDA_ERROR_DEINITIALIZED", "driver shutting down"),
            34 => ("CUDA_ERROR_STUB_LIBRARY", "CUDA driver is a stub library"),
            46 => ("CUDA_ERROR_DEVICE_UNAVAILABLE", "CUDA-capable device(s) is/are busy or unavailable"),
            100 => ("CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"),
            101 => ("CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"),
            200 => ("CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"),
            201 => ("CUDA_ERROR_INVALID_CONTEXT", "invalid device context"),
            209 => ("CUDA_ERROR_NO_BINARY_FOR_GPU", "no kernel image is available for execution on the device"),
            214 => ("CUDA_ERROR_ECC_UNCORRECTABLE", "uncorrectable ECC error encountered"),
            218 => ("CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"),
            221 => ("CUDA_ERROR_JIT_COMPILER_NOT_FOUND", "PTX JIT compiler library not found"),
            222 => ("CUDA_ERROR_UNSUPPORTED_PTX_VERSION", "the provided PTX was compiled with an unsupported toolchain"),
            223 => ("CUDA_ERROR_JIT_COMPILATION_DISABLED", "PTX JIT compilation was disabled"),
            300 => ("CUDA_ERROR_INVALID_SOURCE", "device kernel image is invalid"),
            301 => ("CUDA_ERROR_FILE_NOT_FOUND", "file not found"),
            304 => ("CUDA_ERROR_OPERATING_SYSTEM", "OS call failed or operation not supported on this OS"),
            400 => ("CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"),
            401 => ("CUDA_ERROR_ILLEGAL_STATE", "the operation cannot be performed in the present state"),
            500 => ("CUDA_ERROR_NOT_FOUND", "named symbol not found"),
            600 => ("CUDA_ERROR_NOT_READY", "device not ready"),
            700 => ("CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"),
            701 => ("CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", "too many resources requested for launch"),
            702 => ("CUDA_ERROR_LAUNCH_TIMEOUT", "the launch timed out and was terminated"),
            709 => ("CUDA_ERROR_CONTEXT_IS_DESTROYED", "context is destroyed"),
            710 => ("CUDA_ERROR_ASSERT", "device-side assert triggered"),
            712 => ("CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED", "part or all of the requested memory range is already mapped"),
            713 => ("CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED", "pointer does not correspond to a registered memory region"),
            715 => ("CUDA_ERROR_ILLEGAL_INSTRUCTION", "an illegal instruction was encountered"),
            716 => ("CUDA_ERROR_MISALIGNED_ADDRESS", "misaligned address"),
            719 => ("CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"),
            800 => ("CUDA_ERROR_NOT_PERMITTED", "operation not permitted"),
            801 => ("CUDA_ERROR_NOT_SUPPORTED", "operation not supported"),
            802 => ("CUDA_ERROR_SYSTEM_NOT_READY", "system not yet initialized"),
            803 => ("CUDA_ERROR_SYSTEM_DRIVER_MISMATCH", "system has unsupported display driver / cuda driver combination"),
            804 => ("CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE", "forward compatibility was attempted on non supported HW"),
            900 => ("CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", "operation not permitted when stream is capturing"),
            901 => ("CUDA_ERROR_STREAM_CAPTURE_INVALIDATED", "operation failed due to a previous error during capture"),
            906 => ("CUDA_ERROR_STREAM_CAPTURE_IMPLICIT", "operation would make the legacy stream depend on a capturing blocking stream"),
            908 => ("CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD", "attempt to terminate a thread-local capture sequence from another thread"),
            910 => ("CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE", "the graph update was not performed because it included changes which violated constraints specific to instantiated graph update"),
            999 => ("CUDA_ERROR_UNKNOWN", "unknown error"),
            _ => null,
        };
        (name, description) = entry ?? ("", "");
        return entry is not null;
    }
}
