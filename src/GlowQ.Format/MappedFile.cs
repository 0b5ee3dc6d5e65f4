using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace GlowQ.Format;

/// <summary>
/// A read-only memory mapping of a whole file, or of a file's bytes already in memory (a model embedded in the
/// binary). This is the one place in the format layer that touches raw pointers: every span it hands out is
/// bounds-checked against the length first.
/// </summary>
public sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly IDisposable? _memoryOwner;
    private readonly bool _ownsAlignedCopy;
    private byte* _base;

    public string Path { get; }

    public long Length { get; }

    private MappedFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, long length)
    {
        Path = path;
        _map = map;
        _view = view;
        Length = length;
        byte* pointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        _base = pointer + view.PointerOffset;
    }

    private MappedFile(string path, byte* start, long length, IDisposable? memoryOwner, bool ownsAlignedCopy)
    {
        Path = path;
        Length = length;
        _base = start;
        _memoryOwner = memoryOwner;
        _ownsAlignedCopy = ownsAlignedCopy;
    }

    /// <summary>
    /// Views bytes that are already in unmanaged memory and never move (a manifest resource of the running binary),
    /// named <paramref name="path"/> in messages. The bytes are used in place when they start on an
    /// <paramref name="alignment"/>-byte boundary, as a mapped file's do; otherwise they are copied once to an aligned
    /// block, because readers view tensors as typed spans at aligned offsets. The view owns <paramref name="stream"/>.
    /// </summary>
    public static MappedFile FromUnmanagedMemory(string path, UnmanagedMemoryStream stream, int alignment)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (alignment <= 0 || (alignment & (alignment - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(alignment), $"alignment must be a power of two, got {alignment}");
        }

        long length = stream.Length;
        if (length == 0)
        {
            stream.Dispose();
            throw ModelFormatException.For(path, "file is empty");
        }

        byte* start = stream.PositionPointer - stream.Position;
        if ((nuint)start % (nuint)alignment == 0)
        {
            return new MappedFile(path, start, length, stream, ownsAlignedCopy: false);
        }

        byte* copy = (byte*)NativeMemory.AlignedAlloc((nuint)length, (nuint)alignment);
        Buffer.MemoryCopy(start, copy, length, length);
        stream.Dispose();
        return new MappedFile(path, copy, length, memoryOwner: null, ownsAlignedCopy: true);
    }

    /// <summary>Maps <paramref name="path"/> read-only. Throws FileNotFoundException or ModelFormatException (empty file).</summary>
    public static MappedFile Open(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new FileNotFoundException($"{path}: file not found", path);
        }

        if (info.Length == 0)
        {
            throw ModelFormatException.For(path, "file is empty");
        }

        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            return new MappedFile(path, map, view, info.Length);
        }
        catch
        {
            map.Dispose();
            throw;
        }
    }

    /// <summary>Maps <paramref name="path"/> and hands it to <paramref name="parse"/>; the mapping is released if parsing fails.</summary>
    public static T OpenAndParse<T>(string path, Func<MappedFile, T> parse) => Parse(Open(path), parse);

    /// <summary>Hands <paramref name="file"/> to <paramref name="parse"/>, which takes it over; it is released if parsing fails.</summary>
    public static T Parse<T>(MappedFile file, Func<MappedFile, T> parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        try
        {
            return parse(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Bytes [offset, offset+length) of the file; throws ModelFormatException when they lie outside it.</summary>
    public ReadOnlySpan<byte> GetSpan(long offset, int length)
    {
        CheckRange(offset, length);
        return new ReadOnlySpan<byte>(_base + offset, length);
    }

    /// <summary>Elements of type <typeparamref name="T"/> starting at <paramref name="offset"/>.</summary>
    public ReadOnlySpan<T> GetSpan<T>(long offset, int count) where T : unmanaged
    {
        long bytes = (long)count * sizeof(T);
        CheckRange(offset, bytes);
        if (((nuint)(_base + offset) % (nuint)sizeof(T)) != 0)
        {
            // Misaligned element access is legal on x64/arm64 but slow; callers copy such tensors instead.
            return MemoryMarshal.Cast<byte, T>(new ReadOnlySpan<byte>(_base + offset, checked((int)bytes)));
        }

        return new ReadOnlySpan<T>(_base + offset, count);
    }

    public int ReadInt32(long offset) => BitConverterLe.ReadInt32(GetSpan(offset, 4));

    public ulong ReadUInt64(long offset) => BitConverterLe.ReadUInt64(GetSpan(offset, 8));

    private void CheckRange(long offset, long length)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        if (offset < 0 || length < 0 || offset > Length || length > Length - offset)
        {
            throw ModelFormatException.For(Path, $"range [{offset}, {offset + length}) lies outside the file (size {Length})");
        }
    }

    public void Dispose()
    {
        if (_base != null)
        {
            if (_ownsAlignedCopy)
            {
                NativeMemory.AlignedFree(_base);
            }

            _view?.SafeMemoryMappedViewHandle.ReleasePointer();
            _base = null;
        }

        _view?.Dispose();
        _map?.Dispose();
        _memoryOwner?.Dispose();
    }
}

internal static class BitConverterLe
{
    public static int ReadInt32(ReadOnlySpan<byte> bytes) => System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(bytes);

    public static ulong ReadUInt64(ReadOnlySpan<byte> bytes) => System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(bytes);
}
