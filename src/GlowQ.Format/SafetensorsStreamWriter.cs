using System.Buffers.Binary;
using System.Text;

namespace GlowQ.Format;

/// <summary>
/// Writes a .safetensors file streaming: the header is fixed from the tensor list up front, then each tensor's
/// bytes are appended in order, so a multi-gigabyte checkpoint never sits in memory. Written to a temporary file in
/// the destination folder and renamed into place by <see cref="Commit"/>; disposing without committing deletes it.
/// </summary>
public sealed class SafetensorsStreamWriter : IDisposable
{
    private readonly string _destination;
    private readonly string _temporary;
    private readonly FileStream _stream;
    private readonly (string Name, long Bytes)[] _tensors;
    private int _current;
    private long _writtenInCurrent;
    private bool _committed;

    public SafetensorsStreamWriter(string destination, IReadOnlyList<(string Name, TensorDType DType, long[] Shape)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        _destination = Path.GetFullPath(destination);
        var header = new StringBuilder("{");
        header.Append("\"__metadata__\":{");
        header.Append(string.Join(",", (metadata ?? new Dictionary<string, string> { ["format"] = "pt" }).OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{Json(p.Key)}:{Json(p.Value)}")));
        header.Append('}');
        _tensors = new (string, long)[tensors.Count];
        long offset = 0;
        for (int i = 0; i < tensors.Count; i++)
        {
            (string name, TensorDType dtype, long[] shape) = tensors[i];
            long bytes = shape.Aggregate(1L, (a, b) => checked(a * b)) * dtype.SizeInBytes();
            header.Append($",{Json(name)}:{{\"dtype\":\"{dtype.ToSafetensorsName()}\",\"shape\":[{string.Join(",", shape)}],\"data_offsets\":[{offset},{offset + bytes}]}}");
            _tensors[i] = (name, bytes);
            offset += bytes;
        }

        header.Append('}');
        // Pad the header with spaces to 8 bytes, so the data starts aligned for every dtype.
        while ((header.Length + 8) % 8 != 0)
        {
            header.Append(' ');
        }

        byte[] headerBytes = Encoding.UTF8.GetBytes(header.ToString());
        _temporary = Path.Combine(Path.GetDirectoryName(_destination)!, $".{Path.GetFileName(_destination)}.{Guid.NewGuid():N}.tmp");
        _stream = new FileStream(_temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)headerBytes.Length);
        _stream.Write(length);
        _stream.Write(headerBytes);
    }

    /// <summary>The tensor whose bytes are expected next, or null when all are written.</summary>
    public string? Next => _current < _tensors.Length ? _tensors[_current].Name : null;

    /// <summary>Appends bytes to the current tensor, moving on when it is complete.</summary>
    public void Append(ReadOnlySpan<byte> chunk)
    {
        while (!chunk.IsEmpty)
        {
            if (_current >= _tensors.Length)
            {
                throw new InvalidOperationException("more bytes than the declared tensors hold");
            }

            int take = (int)Math.Min(chunk.Length, _tensors[_current].Bytes - _writtenInCurrent);
            _stream.Write(chunk[..take]);
            _writtenInCurrent += take;
            chunk = chunk[take..];
            if (_writtenInCurrent == _tensors[_current].Bytes)
            {
                _current++;
                _writtenInCurrent = 0;
            }
        }
    }

    public void Commit()
    {
        if (Next is { } missing)
        {
            throw new InvalidOperationException($"tensor '{missing}' was not written");
        }

        _stream.Flush(flushToDisk: true);
        _stream.Dispose();
        File.Move(_temporary, _destination, overwrite: true);
        _committed = true;
    }

    private static string Json(string s) => System.Text.Json.JsonEncodedText.Encode(s).ToString() is var e ? $"\"{e}\"" : "";

    public void Dispose()
    {
        if (!_committed)
        {
            _stream.Dispose();
            try
            {
                File.Delete(_temporary);
            }
            catch (IOException)
            {
            }
        }
    }
}
