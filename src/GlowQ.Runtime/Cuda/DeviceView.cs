using System.Runtime.CompilerServices;

namespace GlowQ.Runtime.Cuda;

/// <summary>
/// A typed range of device memory, passed to a kernel as an ILGPU <c>ArrayView&lt;T&gt;</c>. The element type keeps an
/// fp16 table from being handed to an fp32 parameter; a <see cref="DeviceBuffer{T}"/> converts to its whole view.
/// </summary>
public readonly record struct DeviceView<T>(DevicePointer Pointer, long Length)
    where T : unmanaged
{
    /// <summary>A length-0 view: what kernels take for "no bias" or "no residual add" (they never dereference it).</summary>
    public static DeviceView<T> Empty => default;

    public bool IsEmpty => Length == 0;

    /// <summary>Elements [<paramref name="start"/>, <paramref name="start"/> + <paramref name="length"/>) of the view.</summary>
    public DeviceView<T> Slice(long start, long length)
    {
        DeviceRange.Check(Length, start, length);
        return new DeviceView<T>(Pointer.AddBytes(start * Unsafe.SizeOf<T>()), length);
    }

    public static implicit operator DeviceView<T>(DeviceBuffer<T> buffer)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        return new DeviceView<T>(buffer.Pointer, buffer.Length);
    }
}
