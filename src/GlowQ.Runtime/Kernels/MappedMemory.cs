using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace GlowQ.Runtime.Kernels;

/// <summary>
/// Memory&lt;T&gt; over bytes that live outside the GC heap (a file mapping), so a weight view can be stored in a
/// field and sliced like an array while the kernels read the mapping in place. The owner of the mapping (GlqFile)
/// must outlive every view; nothing here pins or frees anything.
/// </summary>
internal sealed unsafe class MappedMemory<T> : MemoryManager<T> where T : unmanaged
{
    private readonly T* _pointer;
    private readonly int _length;

    private MappedMemory(T* pointer, int length)
    {
        _pointer = pointer;
        _length = length;
    }

    /// <summary>
    /// Views <paramref name="mapped"/> as Memory&lt;T&gt;. The span must point into unmanaged memory that stays
    /// mapped (a span from GlqFile.GetBytes); a span over a managed array would move under the GC.
    /// </summary>
    public static ReadOnlyMemory<T> Over(ReadOnlySpan<byte> mapped)
    {
        if (mapped.Length % sizeof(T) != 0)
        {
            throw new ArgumentException($"{mapped.Length} bytes are not a whole number of {typeof(T).Name} values");
        }

        if (mapped.IsEmpty)
        {
            return ReadOnlyMemory<T>.Empty;
        }

        byte* start = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(mapped));
        if ((nuint)start % (nuint)sizeof(T) != 0)
        {
            throw new ArgumentException($"mapped {typeof(T).Name} data is not {sizeof(T)}-byte aligned");
        }

        return new MappedMemory<T>((T*)start, mapped.Length / sizeof(T)).Memory;
    }

    public override Span<T> GetSpan() => new(_pointer, _length);

    public override MemoryHandle Pin(int elementIndex = 0)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)elementIndex, (uint)_length, nameof(elementIndex));
        return new MemoryHandle(_pointer + elementIndex);
    }

    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
    }
}
