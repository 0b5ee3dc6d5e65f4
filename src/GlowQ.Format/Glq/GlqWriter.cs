using System.IO.Hashing;
using System.Text;

namespace GlowQ.Format.Glq;

/// <summary>
/// Writes a .glq file streaming: the layout is fixed up front from the tensor specs, tensor bytes are written (and
/// hashed) as they arrive, one tensor or chunk at a time, and the directory and header are filled in at the end.
/// The file is written to a temporary name in the destination folder, flushed to disk and renamed over the
/// destination only by <see cref="Commit"/>; disposing without committing deletes it, so a failed or interrupted
/// write never leaves a partial file and never damages an existing one. The same input gives the same bytes.
/// </summary>
public sealed class GlqWriter : IDisposable
{
    private readonly string _destination;
    private readonly string _temporary;
    private readonly FileStream _stream;
    private byte[] _metadataBytes;
    private uint _metadataCount;
    private readonly GlqTensorSpec[] _specs;
    private readonly ulong[] _offsets;
    private readonly ulong[] _checksums;
    private readonly ulong _directoryOffset;
    private readonly ulong _directoryLength;
    private readonly ulong _dataOffset;
    private readonly ulong _dataLength;
    private readonly XxHash3 _hash = new();
    private int _current;
    private long _writtenInCurrent;
    private bool _committed;

    private GlqWriter(string destination, GlqMetadata metadata, IReadOnlyList<GlqTensorSpec> specs)
    {
        _destination = Path.GetFullPath(destination);
        _specs = [.. specs];
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (GlqTensorSpec spec in _specs)
        {
            if (!GlqTensorInfo.IsValidName(spec.Name))
            {
                throw new ArgumentException($"tensor name '{spec.Name}' must be 1..{GlqTensorInfo.MaxNameBytes} characters of [A-Za-z0-9_.-]");
            }

            if (!names.Add(spec.Name))
            {
                throw new ArgumentException($"tensor '{spec.Name}' is listed twice");
            }

            if (spec.Shape.Length is 0 or > GlqTensorInfo.MaxRank || spec.Shape.Any(d => d is <= 0 or > GlqTensorInfo.MaxDimension))
            {
                throw new ArgumentException($"tensor '{spec.Name}': rank must be 1..{GlqTensorInfo.MaxRank} and every dimension 1..2^32, got [{string.Join(", ", spec.Shape)}]");
            }

            _ = spec.ByteLength;
        }

        _metadataBytes = metadata.Encode();
        _metadataCount = (uint)metadata.Count; // with the bytes: later changes to the caller's metadata must not split them
        _directoryOffset = GlqHeader.Align(GlqHeader.Size + (ulong)_metadataBytes.Length, 8);
        _directoryLength = (ulong)_specs.Sum(s => 2 + s.Name.Length + 2 + 8 * s.Shape.Length + 24);
        _dataOffset = GlqHeader.Align(_directoryOffset + _directoryLength, GlqHeader.PageSize);
        _offsets = new ulong[_specs.Length];
        _checksums = new ulong[_specs.Length];
        ulong at = 0;
        for (int i = 0; i < _specs.Length; i++)
        {
            at = GlqHeader.Align(at, GlqHeader.DefaultTensorAlignment);
            _offsets[i] = at;
            at += (ulong)_specs[i].ByteLength;
        }

        _dataLength = at;

        string directory = Path.GetDirectoryName(_destination)!;
        if (!Directory.Exists(directory))
        {
            throw new DirectoryNotFoundException($"{directory}: output directory does not exist");
        }

        _temporary = Path.Combine(directory, $".{Path.GetFileName(_destination)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            _stream = new FileStream(_temporary, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 20);
        }
        catch (Exception e) when (IsWriteFailure(e))
        {
            throw WriteFailed(e);
        }

        try
        {
            // Placeholder header, the metadata, and zeros for the directory and padding; filled in by Commit.
            _stream.Write(new byte[GlqHeader.Size]);
            _stream.Write(_metadataBytes);
            _stream.Write(new byte[_dataOffset - (ulong)_stream.Position]);
        }
        catch (Exception e) when (IsWriteFailure(e))
        {
            Abandon();
            throw WriteFailed(e);
        }
        catch
        {
            Abandon();
            throw;
        }
    }

    /// <summary>Starts a file at <paramref name="destination"/>; tensors must then be written in the order of <paramref name="tensors"/>.</summary>
    public static GlqWriter Create(string destination, GlqMetadata metadata, IReadOnlyList<GlqTensorSpec> tensors) =>
        new(destination, metadata, tensors);

    /// <summary>The tensor whose bytes are expected next, or null when all have been written.</summary>
    public GlqTensorSpec? Next => _current < _specs.Length ? _specs[_current] : null;

    /// <summary>Writes the whole of the next tensor, which must be <paramref name="name"/>.</summary>
    public void WriteTensor(string name, ReadOnlySpan<byte> data)
    {
        GlqTensorSpec spec = Next ?? throw new InvalidOperationException($"tensor '{name}' written after the last declared tensor");
        if (spec.Name != name)
        {
            throw new InvalidOperationException($"tensor '{name}' written out of order: '{spec.Name}' is next");
        }

        if (_writtenInCurrent != 0 || data.Length != spec.ByteLength)
        {
            throw new ArgumentException($"tensor '{name}' is {data.Length} bytes, its spec needs {spec.ByteLength}");
        }

        Append(data);
    }

    /// <summary>Appends bytes to the current tensor; moves to the next once the current one is complete.</summary>
    public void Append(ReadOnlySpan<byte> chunk)
    {
        try
        {
            AppendUnguarded(chunk);
        }
        catch (Exception e) when (IsWriteFailure(e))
        {
            throw WriteFailed(e);
        }
    }

    private void AppendUnguarded(ReadOnlySpan<byte> chunk)
    {
        while (!chunk.IsEmpty)
        {
            GlqTensorSpec spec = Next ?? throw new InvalidOperationException("more bytes than the declared tensors hold");
            if (_writtenInCurrent == 0)
            {
                long padding = (long)(_dataOffset + _offsets[_current]) - _stream.Position;
                _stream.Write(new byte[padding]);
            }

            int take = (int)Math.Min(chunk.Length, spec.ByteLength - _writtenInCurrent);
            _stream.Write(chunk[..take]);
            _hash.Append(chunk[..take]);
            _writtenInCurrent += take;
            chunk = chunk[take..];
            if (_writtenInCurrent == spec.ByteLength)
            {
                _checksums[_current++] = _hash.GetCurrentHashAsUInt64();
                _hash.Reset();
                _writtenInCurrent = 0;
            }
        }
    }

    /// <summary>
    /// Replaces the metadata before <see cref="Commit"/>, for values known only after the tensors are produced
    /// (importance scores, the default mask). The new encoding must have the same length and entry count, which holds
    /// when only fixed-size values change (numbers, and arrays of the same length).
    /// </summary>
    public void ReplaceMetadata(GlqMetadata metadata)
    {
        byte[] encoded = metadata.Encode();
        if (encoded.Length != _metadataBytes.Length || metadata.Count != _metadataCount)
        {
            throw new ArgumentException(
                $"replacement metadata encodes to {encoded.Length} bytes in {metadata.Count} entries; the file reserved {_metadataBytes.Length} bytes in {_metadataCount}");
        }

        _metadataBytes = encoded;
        try
        {
            _stream.Position = GlqHeader.Size;
            _stream.Write(encoded);
            _stream.Position = _stream.Length;
        }
        catch (Exception e) when (IsWriteFailure(e))
        {
            throw WriteFailed(e);
        }
    }

    /// <summary>Writes directory and header, flushes to disk and atomically renames the file into place.</summary>
    public void Commit()
    {
        if (Next is { } missing)
        {
            throw new InvalidOperationException($"tensor '{missing.Name}' was not written ({_specs.Length - _current} of {_specs.Length} missing)");
        }

        byte[] directory = EncodeDirectory();
        var header = new GlqHeader
        {
            MetadataOffset = GlqHeader.Size,
            MetadataLength = (ulong)_metadataBytes.Length,
            DirectoryOffset = _directoryOffset,
            DirectoryLength = _directoryLength,
            DataOffset = _dataOffset,
            DataLength = _dataLength,
            FileLength = _dataOffset + _dataLength,
            TensorCount = (uint)_specs.Length,
            MetadataCount = _metadataCount,
        };
        header = header with { Checksum = HeaderChecksum(header.Encode(), _metadataBytes, directory) };

        try
        {
            // An empty data section still needs the file to reach data_offset.
            _stream.SetLength((long)header.FileLength);
            _stream.Position = (long)_directoryOffset;
            _stream.Write(directory);
            _stream.Position = 0;
            _stream.Write(header.Encode());
            _stream.Flush(flushToDisk: true);
            _stream.Dispose();
            File.Move(_temporary, _destination, overwrite: true);
        }
        catch (Exception e) when (IsWriteFailure(e))
        {
            throw WriteFailed(e);
        }

        _committed = true;
    }

    // A full disk surfaces as IOException (ENOSPC); a file-size limit (EFBIG) as ArgumentOutOfRangeException.
    private static bool IsWriteFailure(Exception e) => e is IOException or ArgumentOutOfRangeException or UnauthorizedAccessException;

    private IOException WriteFailed(Exception e) => new(
        $"{_destination}: cannot write the output file: "
        + (e is ArgumentOutOfRangeException ? "file too large for the file system or the file-size limit (ulimit -f)" : e.Message),
        e);

    /// <summary>XXH3-64 of header bytes [0, 88), the metadata section and the directory, as one stream.</summary>
    public static ulong HeaderChecksum(ReadOnlySpan<byte> header, ReadOnlySpan<byte> metadata, ReadOnlySpan<byte> directory)
    {
        var hash = new XxHash3();
        hash.Append(header[..GlqHeader.ChecksumOffset]);
        hash.Append(metadata);
        hash.Append(directory);
        return hash.GetCurrentHashAsUInt64();
    }

    private byte[] EncodeDirectory()
    {
        var w = new LittleEndianWriter();
        foreach (int i in Enumerable.Range(0, _specs.Length).OrderBy(i => _specs[i].Name, StringComparer.Ordinal))
        {
            GlqTensorSpec s = _specs[i];
            w.U16((ushort)s.Name.Length);
            w.Bytes(Encoding.ASCII.GetBytes(s.Name));
            w.U8((byte)s.DType);
            w.U8((byte)s.Shape.Length);
            foreach (long d in s.Shape)
            {
                w.U64((ulong)d);
            }

            w.U64(_offsets[i]);
            w.U64((ulong)s.ByteLength);
            w.U64(_checksums[i]);
        }

        return w.ToArray();
    }

    private void Abandon()
    {
        try
        {
            // Disposing flushes what is buffered, which fails again when the write that brought us here failed.
            _stream.Dispose();
        }
        catch (Exception e) when (IsWriteFailure(e))
        {
        }

        try
        {
            File.Delete(_temporary);
        }
        catch (IOException)
        {
        }
    }

    public void Dispose()
    {
        if (!_committed)
        {
            Abandon();
        }
    }
}
