namespace GlowQ.Format;

/// <summary>Element types of checkpoint tensors.</summary>
public enum TensorDType
{
    F32,
    F16,
    BF16,
}

public static class TensorDTypes
{
    public static int SizeInBytes(this TensorDType dtype) => dtype switch
    {
        TensorDType.F32 => 4,
        TensorDType.F16 or TensorDType.BF16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    /// <summary>Parses a safetensors dtype string; null when the dtype is not one the engine reads.</summary>
    public static TensorDType? FromSafetensorsName(string name) => name switch
    {
        "F32" => TensorDType.F32,
        "F16" => TensorDType.F16,
        "BF16" => TensorDType.BF16,
        _ => null,
    };

    public static string ToSafetensorsName(this TensorDType dtype) => dtype switch
    {
        TensorDType.F32 => "F32",
        TensorDType.F16 => "F16",
        TensorDType.BF16 => "BF16",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };
}
