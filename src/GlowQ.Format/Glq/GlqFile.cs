using System.IO.Hashing;
using System.Text;

namespace GlowQ.Format.Glq;

/// <summary>
/// A memory-mapped .glq file. <see cref="Open"/> validates the structure (formats/glq-v1.md §9, steps 1–5) before
/// anything is handed out; tensor bytes are zero-copy spans into the mapping, and their checksums are verified on
/// demand. Opening reads the header, metadata and directory only, never the data.
/// </summary>
public sealed class GlqFile : IDisposable
{
    private readonly MappedFile _file;
    private readonly Dictionary<string, GlqTensorInfo> _byName;
    private readonly HashSet<string> _verified = new(StringComparer.Ordinal);

    private GlqFile(MappedFile file, GlqHeader header, GlqMetadata metadata, GlqTensorInfo[] tensors)
    {
        _file = file;
        Header = header;
        Metadata = metadata;
        Tensors = tensors;
        _byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    public string Path => _file.Path;

    public string Name => System.IO.Path.GetFileName(_file.Path);

    public GlqHeader Header { get; }

    public GlqMetadata Metadata { get; }

    /// <summary>Directory entries in directory (name) order.</summary>
    public IReadOnlyList<GlqTensorInfo> Tensors { get; }

    public long FileLength => _file.Length;

    public GlqTensorInfo? FindTensor(string name) => _byName.GetValueOrDefault(name);

    public GlqTensorInfo RequireTensor(string name) =>
        FindTensor(name) ?? throw new ModelFormatException($"{Name}: tensor '{OneLine(name)}' is missing");

    // Names asked for may come from metadata strings; keep the message on one line.
    private static string OneLine(string text) =>
        string.Concat(text.Select(c => char.IsControl(c) || c is '\u2028' or '\u2029' ? $"\\u{(int)c:x4}" : c.ToString()));

    public static GlqFile Open(string path) => MappedFile.OpenAndParse(path, Parse);

    /// <summary>
    /// Opens .glq bytes that are already in memory (a model embedded in the binary as a resource), validated as a
    /// file is; <paramref name="name"/> stands for the file in messages. The returned file owns the stream.
    /// </summary>
    public static GlqFile Open(string name, UnmanagedMemoryStream bytes) =>
        MappedFile.Parse(MappedFile.FromUnmanagedMemory(name, bytes, GlqHeader.MinTensorAlignment), Parse);

    /// <summary>The tensor's bytes, zero-copy (tensors under 2 GiB; use <see cref="GetBytes(GlqTensorInfo, long, int)"/> for larger).</summary>
    public ReadOnlySpan<byte> GetBytes(GlqTensorInfo tensor) => tensor.Length <= int.MaxValue
        ? GetBytes(tensor, 0, (int)tensor.Length)
        : throw new ArgumentOutOfRangeException(nameof(tensor), $"{tensor.Name}: {tensor.Length} bytes do not fit one span; read it in ranges");

    /// <summary>Bytes [start, start+count) of a tensor.</summary>
    public ReadOnlySpan<byte> GetBytes(GlqTensorInfo tensor, long start, int count)
    {
        if (start < 0 || count < 0 || (ulong)start + (ulong)count > tensor.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(start), $"{tensor.Name}: range [{start}, {start + count}) outside its {tensor.Length} bytes");
        }

        return _file.GetSpan((long)(Header.DataOffset + tensor.Offset) + start, count);
    }

    /// <summary>Hashes the tensor's bytes and compares them with the directory; a mismatch is a one-line ModelFormatException.</summary>
    public void VerifyTensor(GlqTensorInfo tensor)
    {
        // Only this file's own entries are remembered as verified; an equal-looking entry from elsewhere is hashed anew.
        bool own = _byName.TryGetValue(tensor.Name, out GlqTensorInfo? entry) && entry == tensor;
        if (own && _verified.Contains(tensor.Name))
        {
            return;
        }

        var hash = new XxHash3();
        const int Chunk = 1 << 24;
        for (long at = 0; at < (long)tensor.Length; at += Chunk)
        {
            hash.Append(GetBytes(tensor, at, (int)Math.Min(Chunk, (long)tensor.Length - at)));
        }

        ulong actual = hash.GetCurrentHashAsUInt64();
        if (actual != tensor.Checksum)
        {
            throw new ModelFormatException($"{Name}: tensor '{tensor.Name}' checksum mismatch (directory {tensor.Checksum:x16}, data {actual:x16}): the data is corrupt");
        }

        if (own)
        {
            _verified.Add(tensor.Name);
        }
    }

    private static GlqFile Parse(MappedFile file)
    {
        string source = System.IO.Path.GetFileName(file.Path);
        ReadOnlySpan<byte> headerBytes = file.GetSpan(0, (int)Math.Min(file.Length, GlqHeader.Size));
        GlqHeader h = GlqHeader.Decode(headerBytes, source);
        ValidateLayout(h, file.Length, source);

        ReadOnlySpan<byte> metadataBytes = file.GetSpan((long)h.MetadataOffset, (int)h.MetadataLength);
        ReadOnlySpan<byte> directoryBytes = file.GetSpan((long)h.DirectoryOffset, (int)h.DirectoryLength);
        ulong checksum = GlqWriter.HeaderChecksum(headerBytes, metadataBytes, directoryBytes);
        if (checksum != h.Checksum)
        {
            throw new ModelFormatException($"{source}: header.checksum is {h.Checksum:x16}, header+metadata+directory hash to {checksum:x16} (corrupt header, metadata or directory)");
        }

        GlqMetadata metadata = GlqMetadata.Decode(metadataBytes, h.MetadataCount, source);
        GlqTensorInfo[] tensors = DecodeDirectory(directoryBytes, h, source);
        return new GlqFile(file, h, metadata, tensors);
    }

    private static void ValidateLayout(GlqHeader h, long actualLength, string source)
    {
        void Fail(string problem) => throw new ModelFormatException($"{source}: {problem}");

        if (h.HeaderSize < GlqHeader.Size || h.HeaderSize % 8 != 0 || h.HeaderSize > 1 << 16)
        {
            Fail($"header.header_size is {h.HeaderSize}, expected a multiple of 8 from {GlqHeader.Size} to 65536");
        }

        if (h.TensorAlignment < GlqHeader.MinTensorAlignment || h.TensorAlignment > GlqHeader.PageSize || (h.TensorAlignment & (h.TensorAlignment - 1)) != 0)
        {
            Fail($"header.tensor_alignment is {h.TensorAlignment}, expected a power of two from {GlqHeader.MinTensorAlignment} to {GlqHeader.PageSize}");
        }

        if (h.FileLength != (ulong)actualLength)
        {
            Fail($"header.file_length is {h.FileLength} but the file has {actualLength} bytes ({((ulong)actualLength < h.FileLength ? "truncated" : "trailing bytes")})");
        }

        if (h.MetadataOffset != h.HeaderSize)
        {
            Fail($"header.metadata_offset is {h.MetadataOffset}, expected header_size {h.HeaderSize}");
        }

        if (h.MetadataLength > (ulong)actualLength || h.MetadataLength > int.MaxValue)
        {
            Fail($"header.metadata_length {h.MetadataLength} exceeds the file ({actualLength} bytes)");
        }

        ulong expectedDirectory = GlqHeader.Align(h.MetadataOffset + h.MetadataLength, 8);
        if (h.DirectoryOffset != expectedDirectory)
        {
            Fail($"header.directory_offset is {h.DirectoryOffset}, expected {expectedDirectory} (end of metadata, 8-aligned)");
        }

        if (h.DirectoryLength > (ulong)actualLength || h.DirectoryLength > int.MaxValue || h.DirectoryOffset + h.DirectoryLength > (ulong)actualLength)
        {
            Fail($"header.directory_length {h.DirectoryLength} runs past the end of the file ({actualLength} bytes)");
        }

        if (h.DataOffset % GlqHeader.PageSize != 0 || h.DataOffset < h.DirectoryOffset + h.DirectoryLength)
        {
            Fail($"header.data_offset is {h.DataOffset}, expected a multiple of {GlqHeader.PageSize} at or after the directory's end {h.DirectoryOffset + h.DirectoryLength}");
        }

        if (h.DataOffset > (ulong)actualLength || h.DataLength != (ulong)actualLength - h.DataOffset)
        {
            Fail($"header.data_length is {h.DataLength}, but data_offset {h.DataOffset} leaves {Math.Max(0, actualLength - (long)Math.Min(h.DataOffset, (ulong)actualLength))} bytes");
        }

        // Minimum encoded sizes bound the counts, so absurd counts fail here instead of allocating.
        if (h.TensorCount > h.DirectoryLength / 30)
        {
            Fail($"header.tensor_count {h.TensorCount} cannot fit a directory of {h.DirectoryLength} bytes");
        }

        if (h.MetadataCount > h.MetadataLength / 4)
        {
            Fail($"header.metadata_count {h.MetadataCount} cannot fit a metadata section of {h.MetadataLength} bytes");
        }
    }

    private static GlqTensorInfo[] DecodeDirectory(ReadOnlySpan<byte> bytes, GlqHeader h, string source)
    {
        var reader = new SectionReader(bytes, source, "directory");
        var tensors = new GlqTensorInfo[h.TensorCount];
        string? previous = null;
        for (int i = 0; i < tensors.Length; i++)
        {
            int nameLength = reader.U16($"entry {i} name length");
            if (nameLength is 0 or > GlqTensorInfo.MaxNameBytes)
            {
                throw reader.Error($"entry {i} name length {nameLength}, expected 1..{GlqTensorInfo.MaxNameBytes}");
            }

            string name = Encoding.ASCII.GetString(reader.Bytes(nameLength, $"entry {i} name"));
            if (!GlqTensorInfo.IsValidName(name))
            {
                throw reader.Error($"entry {i} name has characters outside [A-Za-z0-9_.-]");
            }

            if (previous is not null && string.CompareOrdinal(previous, name) >= 0)
            {
                throw reader.Error(previous == name ? $"tensor '{name}' appears twice" : $"tensor '{name}' is out of order (after '{previous}'; entries are sorted by name)");
            }

            byte dtypeCode = reader.U8($"'{name}' dtype");
            if (!GlqDTypes.IsKnown(dtypeCode))
            {
                throw reader.Error($"tensor '{name}' has unknown dtype {dtypeCode}");
            }

            int rank = reader.U8($"'{name}' rank");
            if (rank is 0 or > GlqTensorInfo.MaxRank)
            {
                throw reader.Error($"tensor '{name}' has rank {rank}, expected 1..{GlqTensorInfo.MaxRank}");
            }

            var shape = new long[rank];
            for (int d = 0; d < rank; d++)
            {
                ulong dim = reader.U64($"'{name}' dimension {d}");
                if (dim is 0 or > GlqTensorInfo.MaxDimension)
                {
                    throw reader.Error($"tensor '{name}' dimension {d} is {dim}, expected 1..2^32");
                }

                shape[d] = (long)dim;
            }

            var dtype = (GlqDType)dtypeCode;
            ulong offset = reader.U64($"'{name}' offset");
            ulong length = reader.U64($"'{name}' length");
            ulong checksum = reader.U64($"'{name}' checksum");
            long? expected = GlqDTypes.ByteSize(dtype, shape);
            if (expected is null)
            {
                throw reader.Error($"tensor '{name}' shape [{string.Join(", ", shape)}] overflows 64-bit sizes");
            }

            if ((ulong)expected.Value != length)
            {
                throw reader.Error($"tensor '{name}' length is {length}, {dtype.Name()} [{string.Join(", ", shape)}] needs {expected}");
            }

            if (offset % h.TensorAlignment != 0)
            {
                throw reader.Error($"tensor '{name}' offset {offset} is not a multiple of the tensor alignment {h.TensorAlignment}");
            }

            if (offset > h.DataLength || length > h.DataLength - offset)
            {
                throw reader.Error($"tensor '{name}' extent [{offset}, {offset + length}) lies outside the data section ({h.DataLength} bytes)");
            }

            tensors[i] = new GlqTensorInfo(name, dtype, shape, offset, length, checksum);
            previous = name;
        }

        if (reader.Remaining != 0)
        {
            throw reader.Error($"{reader.Remaining} bytes left after the {tensors.Length} declared entries");
        }

        GlqTensorInfo[] byOffset = [.. tensors.OrderBy(t => t.Offset)];
        for (int i = 1; i < byOffset.Length; i++)
        {
            if (byOffset[i - 1].Offset + byOffset[i - 1].Length > byOffset[i].Offset)
            {
                throw new ModelFormatException($"{source}: directory: tensors '{byOffset[i - 1].Name}' and '{byOffset[i].Name}' overlap");
            }
        }

        return tensors;
    }

    public void Dispose() => _file.Dispose();
}
