using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace GlowQ.Format;

/// <summary>A tensor stored in a mapped checkpoint file: validated metadata plus the bytes, never copied until asked.</summary>
public sealed class TensorView
{
    private readonly MappedFile _file;

    internal TensorView(MappedFile file, string name, TensorDType dtype, long[] shape, long offset)
    {
        _file = file;
        Name = name;
        DType = dtype;
        Shape = shape;
        Offset = offset;
        ElementCount = 1;
        foreach (long d in shape)
        {
            ElementCount = checked(ElementCount * d);
        }
    }

    public string Name { get; }

    public TensorDType DType { get; }

    public IReadOnlyList<long> Shape { get; }

    /// <summary>Absolute byte offset of the first element in <see cref="SourcePath"/>.</summary>
    public long Offset { get; }

    public long ElementCount { get; }

    public long ByteLength => ElementCount * DType.SizeInBytes();

    public string SourcePath => _file.Path;

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";

    /// <summary>Copies the tensor into <paramref name="destination"/> as fp32, converting F16/BF16.</summary>
    public void CopyTo(Span<float> destination)
    {
        CheckDestination(destination.Length);
        const int Chunk = 1 << 20;
        for (long start = 0; start < ElementCount; start += Chunk)
        {
            int count = (int)Math.Min(Chunk, ElementCount - start);
            Span<float> target = destination.Slice((int)start, count);
            long at = Offset + start * DType.SizeInBytes();
            switch (DType)
            {
                case TensorDType.F32:
                    _file.GetSpan<float>(at, count).CopyTo(target);
                    break;
                case TensorDType.F16:
                    TensorPrimitives.ConvertToSingle(_file.GetSpan<Half>(at, count), target);
                    break;
                case TensorDType.BF16:
                    BFloat16ToSingle(_file.GetSpan<ushort>(at, count), target);
                    break;
            }
        }
    }

    /// <summary>Copies the tensor into <paramref name="destination"/> as fp16 (F32/BF16 rounded to nearest).</summary>
    public void CopyTo(Span<Half> destination)
    {
        CheckDestination(destination.Length);
        if (DType == TensorDType.F16)
        {
            const int Chunk = 1 << 20;
            for (long start = 0; start < ElementCount; start += Chunk)
            {
                int count = (int)Math.Min(Chunk, ElementCount - start);
                _file.GetSpan<Half>(Offset + start * 2, count).CopyTo(destination.Slice((int)start, count));
            }

            return;
        }

        // Convert through fp32 one chunk at a time so no full-size temporary is ever allocated.
        float[] buffer = new float[(int)Math.Min(ElementCount, 1 << 20)];
        for (long start = 0; start < ElementCount; start += buffer.Length)
        {
            int count = (int)Math.Min(buffer.Length, ElementCount - start);
            var part = new TensorView(_file, Name, DType, [count], Offset + start * DType.SizeInBytes());
            part.CopyTo(buffer.AsSpan(0, count));
            TensorPrimitives.ConvertToHalf(buffer.AsSpan(0, count), destination.Slice((int)start, count));
        }
    }

    /// <summary>The tensor's raw bytes (tensors under 2 GiB).</summary>
    public ReadOnlySpan<byte> GetBytes() => _file.GetSpan(Offset, checked((int)ByteLength));

    private void CheckDestination(int length)
    {
        if (length < ElementCount)
        {
            throw new ArgumentException($"{Name}: destination holds {length} elements, tensor has {ElementCount}");
        }
    }

    private static void BFloat16ToSingle(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        Span<uint> bits = MemoryMarshal.Cast<float, uint>(destination);
        for (int i = 0; i < source.Length; i++)
        {
            bits[i] = (uint)source[i] << 16;
        }
    }
}
