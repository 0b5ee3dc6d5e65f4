namespace GlowQ.Runtime.Cuda;

/// <summary>A CUDA driver call failed, or CUDA cannot be used here. The message is always one line.</summary>
public sealed class CudaException : Exception
{
    public CudaException()
        : base("cuda: unspecified failure")
    {
    }

    public CudaException(string message)
        : base(message)
    {
    }

    public CudaException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    internal CudaException(string function, int result, string? detail)
        : base(CudaErrors.FormatFailure(function, result, detail, askDriver: true))
    {
        Function = function;
        Result = result;
    }

    /// <summary>The driver function that failed, when a driver call failed.</summary>
    public string? Function { get; }

    /// <summary>The CUresult the driver returned; 0 when the failure was not a driver result.</summary>
    public int Result { get; }
}

/// <summary>The one place a CUresult becomes text.</summary>
internal static class CudaErrors
{
    internal const int Success = 0;
    internal const int NoDevice = 100;
    internal const int NotReady = 600;

    internal static void Check(int result, string function, string? detail = null)
    {
        if (result != Success)
        {
            throw new CudaException(function, result, detail);
        }
    }

    /// <summary>"cuda: {function} failed: {NAME} ({description})[ — {detail}]", flattened to one line.</summary>
    internal static string FormatFailure(string function, int result, string? detail, bool askDriver)
    {
        var text = $"cuda: {function} failed: {Describe(result, askDriver)}";
        if (!string.IsNullOrWhiteSpace(detail))
        {
            text += " — " + detail;
        }
        return OneLine(text);
    }

    /// <summary>"NAME (description)": from the driver when it is loaded and knows the code, else from the table.</summary>
    internal static string Describe(int result, bool askDriver)
    {
        if (askDriver && TryAskDriver(result, out var driverName, out var driverDescription))
        {
            return $"{driverName} ({driverDescription})";
        }
        return CudaResultCodes.TryGet(result, out var name, out var description)
            ? $"{name} ({description})"
            : $"CUresult {result} (a code this build does not know; see cuda.h)";
    }

    /// <summary>Joins the lines of multi-line text (a JIT log) so a failure stays a single log line.</summary>
    internal static string OneLine(string text)
    {
        var lines = text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return string.Join(" | ", lines);
    }

    private static bool TryAskDriver(int result, out string name, out string description)
    {
        name = description = "";
        if (!CudaDriver.IsLoaded)
        {
            return false;
        }
        try
        {
            // Both return CUDA_ERROR_INVALID_VALUE for a code the driver does not know; the table then answers.
            if (CudaDriver.cuGetErrorName(result, out var namePointer) != Success
                || CudaDriver.cuGetErrorString(result, out var descriptionPointer) != Success)
            {
                return false;
            }
            name = System.Runtime.InteropServices.Marshal.PtrToStringUTF8(namePointer) ?? "";
            description = System.Runtime.InteropServices.Marshal.PtrToStringUTF8(descriptionPointer) ?? "";
            return name.Length > 0;
        }
        catch (EntryPointNotFoundException)
        {
            return false;
        }
    }
}
