using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace GlowQ.Runtime.Cuda;

/// <summary>One <c>.param</c> of a PTX entry as the kernel manifest lists it, e.g. (".b8", 16, 8) for an ArrayView.</summary>
public sealed record KernelParameter(string PtxType, int Size, int Alignment)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{(PtxType.StartsWith('.') ? PtxType : "." + PtxType)} ({Size} bytes, align {Alignment})");
}

/// <summary>What a packed launch parameter stands for in ILGPU's kernel signature.</summary>
public enum KernelArgumentKind
{
    /// <summary>The Index1D extent an implicitly grouped kernel takes first.</summary>
    Extent,

    /// <summary>An ArrayView&lt;T&gt;: device pointer already offset to the view, then its length in elements.</summary>
    View,
    Int32,
    UInt32,
    Float,
    Half,

    /// <summary>A bool, which ILGPU passes as a 32-bit value.</summary>
    Bool,
}

/// <summary>Where one parameter sits in the packed buffer.</summary>
public readonly record struct PackedKernelArgument(KernelArgumentKind Kind, int Offset, int Size, int Alignment);

/// <summary>
/// Launch parameters packed exactly as ILGPU-generated PTX expects them: each at the next offset that honours its
/// alignment, with ILGPU's sizes (extent 4, view 16 = {pointer, long length}, bool 4, Half 2). Reusable via
/// <see cref="Clear"/>, so a decode loop packs without allocating.
/// </summary>
public sealed class KernelArguments
{
    private readonly List<PackedKernelArgument> arguments = [];
    private byte[] buffer = new byte[64];

    public int Count => arguments.Count;

    /// <summary>Bytes used, including alignment padding.</summary>
    public int SizeInBytes { get; private set; }

    public IReadOnlyList<PackedKernelArgument> Arguments => arguments;

    /// <summary>The packed parameters, as a launch passes them; an <see cref="IGpuDevice"/> reads each at its <see cref="Arguments"/> offset.</summary>
    public ReadOnlySpan<byte> Bytes => buffer.AsSpan(0, SizeInBytes);

    public KernelArguments Clear()
    {
        arguments.Clear();
        SizeInBytes = 0;
        return this;
    }

    /// <summary>The extent of an implicitly grouped kernel (Index1D): the number of threads that do work.</summary>
    public KernelArguments AddExtent(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        BinaryPrimitives.WriteInt32LittleEndian(Reserve(KernelArgumentKind.Extent, 4, 4), length);
        return this;
    }

    /// <summary>An ArrayView&lt;T&gt;: <paramref name="pointer"/> must already point at the view's first element.</summary>
    public KernelArguments AddView(DevicePointer pointer, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var slot = Reserve(KernelArgumentKind.View, 16, 8);
        BinaryPrimitives.WriteUInt64LittleEndian(slot, pointer.Address);
        BinaryPrimitives.WriteInt64LittleEndian(slot[8..], length);
        return this;
    }

    /// <summary>The whole buffer as a view.</summary>
    public KernelArguments AddView<T>(DeviceBuffer<T> buffer)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(buffer);
        return AddView(buffer.Pointer, buffer.Length);
    }

    public KernelArguments AddInt32(int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(Reserve(KernelArgumentKind.Int32, 4, 4), value);
        return this;
    }

    public KernelArguments AddUInt32(uint value)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(Reserve(KernelArgumentKind.UInt32, 4, 4), value);
        return this;
    }

    public KernelArguments AddFloat(float value)
    {
        BinaryPrimitives.WriteSingleLittleEndian(Reserve(KernelArgumentKind.Float, 4, 4), value);
        return this;
    }

    public KernelArguments AddHalf(Half value)
    {
        BinaryPrimitives.WriteHalfLittleEndian(Reserve(KernelArgumentKind.Half, 2, 2), value);
        return this;
    }

    public KernelArguments AddBool(bool value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(Reserve(KernelArgumentKind.Bool, 4, 4), value ? 1 : 0);
        return this;
    }

    /// <summary>
    /// Whether the packed arguments fit a kernel's PTX parameter list: same count, and at each position the same size
    /// and alignment and a PTX type that can hold the value. <paramref name="mismatch"/> names the first position that
    /// does not, in one line.
    /// </summary>
    public bool Matches(IReadOnlyList<KernelParameter> parameters, [NotNullWhen(false)] out string? mismatch)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var shared = Math.Min(parameters.Count, arguments.Count);
        for (var index = 0; index < shared; index++)
        {
            var expected = parameters[index];
            var packed = arguments[index];
            if (expected.Size != packed.Size || expected.Alignment != packed.Alignment || !Accepts(expected.PtxType, packed.Kind))
            {
                mismatch = string.Create(CultureInfo.InvariantCulture,
                    $"parameter [{index}]: kernel expects {expected} but {Describe(packed)} was packed");
                return false;
            }
        }
        if (parameters.Count != arguments.Count)
        {
            mismatch = parameters.Count > arguments.Count
                ? string.Create(CultureInfo.InvariantCulture,
                    $"parameter [{shared}]: kernel takes {parameters.Count} parameters but only {arguments.Count} were packed (missing {parameters[shared]})")
                : string.Create(CultureInfo.InvariantCulture,
                    $"parameter [{shared}]: kernel takes {parameters.Count} parameters but {arguments.Count} were packed (extra {Describe(arguments[shared])})");
            return false;
        }
        mismatch = null;
        return true;
    }

    /// <summary>kernelParams for a launch: entry i points at argument i inside the packed buffer at <paramref name="packedBase"/>.</summary>
    internal void WriteParameterPointers(nint packedBase, Span<nint> pointers)
    {
        if (pointers.Length != arguments.Count)
        {
            throw new ArgumentException($"{pointers.Length} pointer slots for {arguments.Count} arguments", nameof(pointers));
        }
        for (var index = 0; index < arguments.Count; index++)
        {
            pointers[index] = packedBase + arguments[index].Offset;
        }
    }

    private Span<byte> Reserve(KernelArgumentKind kind, int size, int alignment)
    {
        var offset = (SizeInBytes + alignment - 1) & -alignment;
        var end = offset + size;
        if (end > buffer.Length)
        {
            Array.Resize(ref buffer, Math.Max(buffer.Length * 2, end));
        }
        // Padding bytes are zeroed so identical argument lists pack to identical bytes.
        buffer.AsSpan(SizeInBytes, end - SizeInBytes).Clear();
        arguments.Add(new PackedKernelArgument(kind, offset, size, alignment));
        SizeInBytes = end;
        return buffer.AsSpan(offset, size);
    }

    private static bool Accepts(string ptxType, KernelArgumentKind kind)
    {
        var type = ptxType.TrimStart('.');
        return kind switch
        {
            // ILGPU declares structs (the extent, views) as byte arrays: `.param .align A .b8 name[size]`.
            KernelArgumentKind.Extent => IsAny(type, "b8", "b32", "s32", "u32"),
            KernelArgumentKind.View => IsAny(type, "b8"),
            KernelArgumentKind.Int32 or KernelArgumentKind.UInt32 or KernelArgumentKind.Bool => IsAny(type, "b32", "s32", "u32"),
            KernelArgumentKind.Float => IsAny(type, "f32"),
            KernelArgumentKind.Half => IsAny(type, "b16", "f16"),
            _ => false,
        };
    }

    private static bool IsAny(string type, params ReadOnlySpan<string> accepted)
    {
        foreach (var candidate in accepted)
        {
            if (string.Equals(type, candidate, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }
        return false;
    }

    private static string Describe(PackedKernelArgument argument) => string.Create(CultureInfo.InvariantCulture,
        $"{(argument.Kind == KernelArgumentKind.Extent ? "an extent" : argument.Kind == KernelArgumentKind.View ? "a view" : "a " + argument.Kind.ToString())} ({argument.Size} bytes, align {argument.Alignment})");
}
