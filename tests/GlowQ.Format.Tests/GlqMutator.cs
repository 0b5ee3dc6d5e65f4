// Shared by the Format tests (GlqFuzzTests, GlqCorruptionTests) and the long-run fuzzer
// benchmarks/GlowQ.Benchmarks.GlqFuzz, which links this file: keep it free of test-framework types.
using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using GlowQ.Format;
using GlowQ.Format.Glq;

namespace GlowQ.GlqFuzz;

/// <summary>A field of a valid .glq file: where it is, how wide, and what it is (for mutation and for patching).</summary>
public readonly record struct GlqField(int Offset, int Width, string Label);

/// <summary>Where one metadata entry's parts are in the file (absolute offsets).</summary>
public sealed record GlqMetadataEntryMap(string Key, int Start, int KeyOffset, int TypeOffset, int ValueOffset, int End, byte Type, byte? ElementType);

/// <summary>Where one directory entry's parts are in the file (absolute offsets), and where its bytes are.</summary>
public sealed record GlqDirectoryEntryMap(
    string Name, int Start, int NameOffset, int DTypeOffset, int RankOffset, int Rank, int DimsOffset,
    int OffsetOffset, int LengthOffset, int ChecksumOffset, int End, long DataStart, long DataLength);

/// <summary>
/// The structure of a VALID .glq file, walked from the spec (formats/glq-v1.md) without the product's reader, so
/// tests and the fuzzer can aim at fields. It trusts its input: give it only files the writer produced.
/// </summary>
public sealed class GlqFileMap
{
    private GlqFileMap(
        int metadataOffset, int metadataLength, int directoryOffset, int directoryLength, long dataOffset, long dataLength,
        List<GlqField> fields, List<GlqMetadataEntryMap> metadata, List<GlqDirectoryEntryMap> directory)
    {
        MetadataOffset = metadataOffset;
        MetadataLength = metadataLength;
        DirectoryOffset = directoryOffset;
        DirectoryLength = directoryLength;
        DataOffset = dataOffset;
        DataLength = dataLength;
        Fields = fields;
        Metadata = metadata;
        Directory = directory;
    }

    // Header field offsets (glq-v1.md §3).
    public const int MajorVersionAt = 8;
    public const int MinorVersionAt = 10;
    public const int FlagsAt = 12;
    public const int HeaderSizeAt = 16;
    public const int TensorAlignmentAt = 20;
    public const int MetadataOffsetAt = 24;
    public const int MetadataLengthAt = 32;
    public const int DirectoryOffsetAt = 40;
    public const int DirectoryLengthAt = 48;
    public const int DataOffsetAt = 56;
    public const int DataLengthAt = 64;
    public const int FileLengthAt = 72;
    public const int TensorCountAt = 80;
    public const int MetadataCountAt = 84;
    public const int HeaderChecksumAt = 88;

    public int MetadataOffset { get; }

    public int MetadataLength { get; }

    public int MetadataEnd => MetadataOffset + MetadataLength;

    public int DirectoryOffset { get; }

    public int DirectoryLength { get; }

    public int DirectoryEnd => DirectoryOffset + DirectoryLength;

    public long DataOffset { get; }

    public long DataLength { get; }

    public long FileLength => DataOffset + DataLength;

    /// <summary>Every integer field (header fields, lengths, counts, types, dimensions, offsets, checksums).</summary>
    public IReadOnlyList<GlqField> Fields { get; }

    public IReadOnlyList<GlqMetadataEntryMap> Metadata { get; }

    /// <summary>Directory entries in directory (name) order.</summary>
    public IReadOnlyList<GlqDirectoryEntryMap> Directory { get; }

    public GlqMetadataEntryMap Entry(string key) => Metadata.Single(e => e.Key == key);

    public GlqDirectoryEntryMap Tensor(string name) => Directory.Single(e => e.Name == name);

    public static GlqFileMap Parse(ReadOnlySpan<byte> file)
    {
        var fields = new List<GlqField>
        {
            new(MajorVersionAt, 2, "header.major_version"), new(MinorVersionAt, 2, "header.minor_version"),
            new(FlagsAt, 4, "header.flags"), new(HeaderSizeAt, 4, "header.header_size"),
            new(TensorAlignmentAt, 4, "header.tensor_alignment"), new(MetadataOffsetAt, 8, "header.metadata_offset"),
            new(MetadataLengthAt, 8, "header.metadata_length"), new(DirectoryOffsetAt, 8, "header.directory_offset"),
            new(DirectoryLengthAt, 8, "header.directory_length"), new(DataOffsetAt, 8, "header.data_offset"),
            new(DataLengthAt, 8, "header.data_length"), new(FileLengthAt, 8, "header.file_length"),
            new(TensorCountAt, 4, "header.tensor_count"), new(MetadataCountAt, 4, "header.metadata_count"),
            new(HeaderChecksumAt, 8, "header.checksum"),
        };
        int metadataOffset = (int)U64(file, MetadataOffsetAt);
        int metadataLength = (int)U64(file, MetadataLengthAt);
        int directoryOffset = (int)U64(file, DirectoryOffsetAt);
        int directoryLength = (int)U64(file, DirectoryLengthAt);
        long dataOffset = (long)U64(file, DataOffsetAt);
        long dataLength = (long)U64(file, DataLengthAt);
        uint metadataCount = BinaryPrimitives.ReadUInt32LittleEndian(file[MetadataCountAt..]);
        uint tensorCount = BinaryPrimitives.ReadUInt32LittleEndian(file[TensorCountAt..]);

        var metadata = new List<GlqMetadataEntryMap>();
        int at = metadataOffset;
        for (uint i = 0; i < metadataCount; i++)
        {
            int start = at;
            int keyLength = BinaryPrimitives.ReadUInt16LittleEndian(file[at..]);
            fields.Add(new(at, 2, "metadata key length"));
            string key = Encoding.ASCII.GetString(file.Slice(at + 2, keyLength));
            at += 2 + keyLength;
            int typeOffset = at;
            byte type = file[at++];
            fields.Add(new(typeOffset, 1, $"metadata '{key}' type"));
            byte? elementType = null;
            if (type == 12)
            {
                elementType = file[at];
                fields.Add(new(at, 1, $"metadata '{key}' element type"));
                ulong count = U64(file, at + 1);
                fields.Add(new(at + 1, 8, $"metadata '{key}' array count"));
                at += 9;
                for (ulong k = 0; k < count; k++)
                {
                    at = SkipScalar(file, at, elementType.Value, key, fields);
                }
            }
            else
            {
                at = SkipScalar(file, typeOffset + 1, type, key, fields);
            }

            metadata.Add(new(key, start, start + 2, typeOffset, typeOffset + 1, at, type, elementType));
        }

        var directory = new List<GlqDirectoryEntryMap>();
        at = directoryOffset;
        for (uint i = 0; i < tensorCount; i++)
        {
            int start = at;
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(file[at..]);
            fields.Add(new(at, 2, "directory name length"));
            string name = Encoding.ASCII.GetString(file.Slice(at + 2, nameLength));
            at += 2 + nameLength;
            int dtypeOffset = at;
            int rank = file[at + 1];
            fields.Add(new(at, 1, $"directory '{name}' dtype"));
            fields.Add(new(at + 1, 1, $"directory '{name}' rank"));
            int dimsOffset = at + 2;
            for (int d = 0; d < rank; d++)
            {
                fields.Add(new(dimsOffset + 8 * d, 8, $"directory '{name}' dimension {d}"));
            }

            int offsetOffset = dimsOffset + 8 * rank;
            fields.Add(new(offsetOffset, 8, $"directory '{name}' offset"));
            fields.Add(new(offsetOffset + 8, 8, $"directory '{name}' length"));
            fields.Add(new(offsetOffset + 16, 8, $"directory '{name}' checksum"));
            long dataStart = dataOffset + (long)U64(file, offsetOffset);
            long length = (long)U64(file, offsetOffset + 8);
            at = offsetOffset + 24;
            directory.Add(new(name, start, start + 2, dtypeOffset, dtypeOffset + 1, rank, dimsOffset, offsetOffset, offsetOffset + 8, offsetOffset + 16, at, dataStart, length));
        }

        return new GlqFileMap(metadataOffset, metadataLength, directoryOffset, directoryLength, dataOffset, dataLength, fields, metadata, directory);
    }

    private static int SkipScalar(ReadOnlySpan<byte> file, int at, byte type, string key, List<GlqField> fields)
    {
        switch (type)
        {
            case 0 or 1 or 10: fields.Add(new(at, 1, $"metadata '{key}' value")); return at + 1;
            case 2 or 3: fields.Add(new(at, 2, $"metadata '{key}' value")); return at + 2;
            case 4 or 5 or 8: fields.Add(new(at, 4, $"metadata '{key}' value")); return at + 4;
            case 6 or 7 or 9: fields.Add(new(at, 8, $"metadata '{key}' value")); return at + 8;
            case 11:
                fields.Add(new(at, 4, $"metadata '{key}' string length"));
                return at + 4 + (int)BinaryPrimitives.ReadUInt32LittleEndian(file[at..]);
            default: throw new ArgumentException($"metadata '{key}': type {type} in a file that should be valid");
        }
    }

    private static ulong U64(ReadOnlySpan<byte> file, int at) => BinaryPrimitives.ReadUInt64LittleEndian(file[at..]);
}

/// <summary>Byte-level edits of a .glq image, including re-signing the header so deeper validation is reached.</summary>
public static class GlqPatch
{
    public static void U8(byte[] file, int at, byte value) => file[at] = value;

    public static void U16(byte[] file, int at, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(at), value);

    public static void U32(byte[] file, int at, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(at), value);

    public static void U64(byte[] file, int at, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(at), value);

    public static ulong ReadU64(byte[] file, int at) => BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(at));

    public static void Ascii(byte[] file, int at, string text) => Encoding.ASCII.GetBytes(text).CopyTo(file, at);

    /// <summary>
    /// Rewrites header.checksum over the metadata and directory the (possibly edited) header names, so the edit is
    /// judged by the checks after the checksum. Returns false (and leaves the file alone) when those sections do
    /// not lie inside the file.
    /// </summary>
    public static bool Resign(byte[] file)
    {
        if (file.Length < GlqHeader.Size)
        {
            return false;
        }

        ulong mo = ReadU64(file, GlqFileMap.MetadataOffsetAt), ml = ReadU64(file, GlqFileMap.MetadataLengthAt);
        ulong @do = ReadU64(file, GlqFileMap.DirectoryOffsetAt), dl = ReadU64(file, GlqFileMap.DirectoryLengthAt);
        ulong n = (ulong)file.Length;
        if (mo > n || ml > n - mo || @do > n || dl > n - @do)
        {
            return false;
        }

        ulong checksum = GlqWriter.HeaderChecksum(file, file.AsSpan((int)mo, (int)ml), file.AsSpan((int)@do, (int)dl));
        U64(file, GlqFileMap.HeaderChecksumAt, checksum);
        return true;
    }
}

/// <summary>Small valid files to mutate: several dtypes and ranks, every metadata value type the public API builds.</summary>
public static class GlqSamples
{
    /// <summary>Tensors in write order (deliberately not name order) with deterministic contents.</summary>
    public static (GlqTensorSpec Spec, byte[] Data)[] SampleTensors()
    {
        GlqTensorSpec[] specs =
        [
            new("tokenizer.file", GlqDType.U8, 37),
            new("model.layers.0.q.qweight", GlqDType.U4, 4, 7),
            new("model.norm", GlqDType.BF16, 2, 2, 2),
            new("model.embed", GlqDType.F32, 5, 4),
            new("model.mask", GlqDType.Bits, 3, 10),
            new("model.layers.0.q.scales", GlqDType.F16, 4, 1),
            new("model.ids", GlqDType.I32, 1, 1, 2, 3),
        ];
        var random = new Random(1234);
        return [.. specs.Select(s =>
        {
            var data = new byte[s.ByteLength];
            random.NextBytes(data);
            return (s, data);
        })];
    }

    public static GlqMetadata SampleMetadata() => new GlqMetadata()
        .Set("general.architecture", GlqValue.String("LlamaForCausalLM"))
        .Set("general.name", GlqValue.String("tiny ✓ 模型"))
        .Set("general.empty", GlqValue.String(""))
        .Set("model.dim", GlqValue.U32(8))
        .Set("model.layers", GlqValue.U32(1))
        .Set("model.bos_id", GlqValue.I32(-1))
        .Set("model.offset", GlqValue.I64(-5))
        .Set("model.norm_eps", GlqValue.F32(1e-5f))
        .Set("model.rope.theta", GlqValue.F64(10000))
        .Set("model.tied_embeddings", GlqValue.Bool(true))
        .Set("model.eos_ids", GlqValue.Int32s([2, -7]))
        .Set("quant.bits", GlqValue.U8(4))
        .Set("glowq.calib.seed", GlqValue.U64((1UL << 40) + 3))
        .Set("glowq.units", GlqValue.Strings(["L0.qkv", "L0.o", ""]))
        .Set("glowq.score.x", GlqValue.Floats([0.5f, 0.25f, float.NaN]))
        .Set("glowq.rank.per_unit", GlqValue.UInt32s([4, 8, 0]))
        .Set("glowq.mask.default", GlqValue.Bytes([1, 0, 1]))
        .Set("tokenizer.file", GlqValue.String("tokenizer.file"));

    /// <summary>Writes the sample file with <see cref="GlqWriter"/> to <paramref name="path"/> and returns its bytes.</summary>
    public static byte[] WriteSample(string path)
    {
        var tensors = SampleTensors();
        using (var writer = GlqWriter.Create(path, SampleMetadata(), [.. tensors.Select(t => t.Spec)]))
        {
            foreach ((GlqTensorSpec spec, byte[] data) in tensors)
            {
                writer.WriteTensor(spec.Name, data);
            }

            writer.Commit();
        }

        return File.ReadAllBytes(path);
    }

    /// <summary>A second, differently shaped seed: one metadata entry, one tensor of several pages.</summary>
    public static byte[] WriteMinimal(string path)
    {
        var data = new byte[3 * 4096 + 5];
        new Random(99).NextBytes(data);
        using (var writer = GlqWriter.Create(path, new GlqMetadata().Set("a", GlqValue.U8(1)), [new GlqTensorSpec("w", GlqDType.U8, data.Length)]))
        {
            writer.WriteTensor("w", data);
            writer.Commit();
        }

        return File.ReadAllBytes(path);
    }
}

/// <summary>Mutates valid .glq images: bit flips, interesting bytes, field overwrites, truncation, splicing.</summary>
public sealed class GlqMutator
{
    private static readonly byte[] InterestingBytes = [0, 1, (byte)'\n', (byte)'\r', 0x7F, 0x80, 0xFE, 0xFF];

    private static readonly ulong[] InterestingU64 =
    [
        0, 1, 2, 7, 8, 63, 64, 128, 255, 256, 4095, 4096, 4097, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x1_0000,
        0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1UL << 32, (1UL << 32) + 1, 1UL << 40, 1UL << 60, (1UL << 62) + 256,
        long.MaxValue, 1UL << 63, ulong.MaxValue - 255, ulong.MaxValue - 1, ulong.MaxValue,
    ];

    private readonly byte[] _original;
    private readonly GlqFileMap _map;

    public GlqMutator(byte[] validFile)
    {
        _original = validFile;
        _map = GlqFileMap.Parse(validFile);
    }

    public byte[] Original => _original;

    /// <summary>
    /// One to four stacked mutations of the original, described in <paramref name="log"/>. With
    /// <paramref name="resign"/> the header checksum is recomputed afterwards (where the sections still lie in the file).
    /// </summary>
    public byte[] Mutate(Random rng, bool resign, List<string> log)
    {
        byte[] file = (byte[])_original.Clone();
        int count = 1 + (rng.Next(8) switch { < 4 => 0, < 6 => 1, 6 => 2, _ => 3 });
        for (int i = 0; i < count; i++)
        {
            file = MutateOnce(file, rng, resign, log);
        }

        if (resign && GlqPatch.Resign(file))
        {
            log.Add("resign");
        }

        return file;
    }

    private byte[] MutateOnce(byte[] file, Random rng, bool resign, List<string> log)
    {
        if (file.Length == 0)
        {
            log.Add("empty");
            return file;
        }

        switch (rng.Next(100))
        {
            case < 18:
            {
                int at = PickOffset(file, rng);
                int bit = rng.Next(8);
                file[at] ^= (byte)(1 << bit);
                log.Add($"flip bit {bit} at {at}");
                return file;
            }

            case < 30:
            {
                int at = PickOffset(file, rng);
                file[at] = InterestingBytes[rng.Next(InterestingBytes.Length)];
                log.Add($"set byte {at} = 0x{file[at]:X2}");
                return file;
            }

            case < 58:
            {
                GlqField field = _map.Fields[rng.Next(_map.Fields.Count)];
                if (field.Offset + field.Width > file.Length)
                {
                    log.Add($"skip {field.Label} (past end)");
                    return file;
                }

                ulong value = rng.Next(4) switch
                {
                    0 => (ulong)rng.NextInt64() ^ ((ulong)rng.Next() << 33),
                    1 => Read(file, field) + (ulong)(rng.Next(17) - 8),
                    2 => Read(file, field) * 2 + 1,
                    _ => InterestingU64[rng.Next(InterestingU64.Length)],
                };
                Write(file, field, value);
                log.Add($"field {field.Label} @{field.Offset} = {Read(file, field)}");
                return file;
            }

            case < 64:
            {
                int at = rng.Next(Math.Max(1, Math.Min(file.Length, _map.DirectoryEnd) - 7));
                ulong value = rng.Next(2) == 0 ? InterestingU64[rng.Next(InterestingU64.Length)] : (ulong)rng.NextInt64();
                int width = Math.Min(8, file.Length - at);
                Span<byte> bytes = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
                bytes[..width].CopyTo(file.AsSpan(at));
                log.Add($"u64 at {at} = {value}");
                return file;
            }

            case < 72:
            {
                int length = PickCut(file, rng);
                log.Add($"truncate to {length}");
                byte[] shorter = file[..length];
                if (resign && rng.Next(2) == 0)
                {
                    FixLengths(shorter, log);
                }

                return shorter;
            }

            case < 76:
            {
                int extra = rng.Next(3) switch { 0 => 1, 1 => rng.Next(1, 300), _ => 4096 };
                byte[] longer = new byte[file.Length + extra];
                file.CopyTo(longer, 0);
                if (rng.Next(2) == 0)
                {
                    rng.NextBytes(longer.AsSpan(file.Length));
                }

                log.Add($"append {extra} bytes");
                if (resign && rng.Next(4) != 0)
                {
                    FixLengths(longer, log);
                }

                return longer;
            }

            case < 86:
            {
                // Overwrite a range with a copy of another range (entries duplicated over their neighbours, etc.).
                int limit = Math.Min(file.Length, rng.Next(4) == 0 ? file.Length : _map.DirectoryEnd);
                int length = rng.Next(1, 64);
                int from = rng.Next(Math.Max(1, limit - length));
                int to = rng.Next(Math.Max(1, limit - length));
                length = Math.Min(length, Math.Min(file.Length - from, file.Length - to));
                Array.Copy(file, from, file, to, length);
                log.Add($"copy [{from}, {from + length}) over {to}");
                return file;
            }

            case < 93:
            {
                // Splice: insert a copy of a range (shifts everything after it), then optionally fix the lengths.
                int limit = Math.Min(file.Length, _map.DirectoryEnd);
                int length = rng.Next(1, 48);
                int from = rng.Next(Math.Max(1, limit - length));
                length = Math.Min(length, file.Length - from);
                int to = rng.Next(Math.Min(file.Length, limit));
                byte[] spliced = [.. file.AsSpan(0, to), .. file.AsSpan(from, length), .. file.AsSpan(to)];
                log.Add($"insert copy of [{from}, {from + length}) at {to}");
                if (resign && rng.Next(2) == 0)
                {
                    FixLengths(spliced, log);
                }

                return spliced;
            }

            default:
            {
                // Delete a range inside the structural part.
                int limit = Math.Min(file.Length, _map.DirectoryEnd);
                int from = rng.Next(Math.Max(1, limit));
                int length = Math.Min(rng.Next(1, 48), file.Length - from);
                byte[] cut = [.. file.AsSpan(0, from), .. file.AsSpan(from + length)];
                log.Add($"delete [{from}, {from + length})");
                if (resign && rng.Next(2) == 0)
                {
                    FixLengths(cut, log);
                }

                return cut;
            }
        }
    }

    /// <summary>Makes header.file_length (and data_length, where it can) agree with the new size, so later checks run.</summary>
    private static void FixLengths(byte[] file, List<string> log)
    {
        if (file.Length < GlqHeader.Size)
        {
            return;
        }

        GlqPatch.U64(file, GlqFileMap.FileLengthAt, (ulong)file.Length);
        ulong dataOffset = GlqPatch.ReadU64(file, GlqFileMap.DataOffsetAt);
        if (dataOffset <= (ulong)file.Length)
        {
            GlqPatch.U64(file, GlqFileMap.DataLengthAt, (ulong)file.Length - dataOffset);
        }

        log.Add("fix lengths");
    }

    /// <summary>Mostly the structural part (header, metadata, directory), sometimes anywhere.</summary>
    private int PickOffset(byte[] file, Random rng)
    {
        int structural = Math.Min(file.Length, _map.DirectoryEnd);
        return rng.Next(10) switch
        {
            < 3 => rng.Next(Math.Min(file.Length, GlqHeader.Size)),
            < 8 => rng.Next(structural),
            _ => rng.Next(file.Length),
        };
    }

    private int PickCut(byte[] file, Random rng)
    {
        int[] boundaries = [0, 1, 8, 127, 128, _map.MetadataEnd, _map.DirectoryOffset, _map.DirectoryEnd, (int)_map.DataOffset, file.Length - 1];
        int cut = rng.Next(3) == 0 ? boundaries[rng.Next(boundaries.Length)] + rng.Next(-2, 3) : rng.Next(file.Length);
        return Math.Clamp(cut, 0, file.Length - 1);
    }

    private static ulong Read(byte[] file, GlqField f) => f.Width switch
    {
        1 => file[f.Offset],
        2 => BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(f.Offset)),
        4 => BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(f.Offset)),
        _ => BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(f.Offset)),
    };

    private static void Write(byte[] file, GlqField f, ulong v)
    {
        switch (f.Width)
        {
            case 1: file[f.Offset] = (byte)v; break;
            case 2: BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(f.Offset), (ushort)v); break;
            case 4: BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(f.Offset), (uint)v); break;
            default: BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(f.Offset), v); break;
        }
    }
}

/// <summary>Everything a consumer does with an opened file, so any exception other than ModelFormatException surfaces.</summary>
public static class GlqFuzzTarget
{
    /// <summary>
    /// Returns true when the file opened. Lets ModelFormatException escape only from Open; one thrown later is
    /// expected (wrong getter type, bad checksum) but must still be one line naming the file, else this throws
    /// InvalidOperationException.
    /// </summary>
    public static bool Exercise(string path)
    {
        string name = Path.GetFileName(path);
        void Expected(Action action)
        {
            try
            {
                action();
            }
            catch (ModelFormatException e) when (MessageProblem(name, e.Message) is { } problem)
            {
                throw new InvalidOperationException(problem, e);
            }
            catch (ModelFormatException)
            {
            }
        }

        void ExpectedValue<T>(Func<T> action) => Expected(() => { _ = action(); });

        using GlqFile file = GlqFile.Open(path);
        long sink = 0;
        foreach (GlqTensorInfo tensor in file.Tensors)
        {
            ReadOnlySpan<byte> bytes = file.GetBytes(tensor);
            if (bytes.Length != (int)tensor.Length)
            {
                throw new InvalidOperationException($"GetBytes('{tensor.Name}') returned {bytes.Length} bytes, directory says {tensor.Length}");
            }

            sink += bytes[0] + bytes[^1];
            _ = tensor.ShapeText;
            _ = tensor.ElementCount;
            Expected(() => file.VerifyTensor(tensor));
            if (!ReferenceEquals(file.FindTensor(tensor.Name), tensor))
            {
                throw new InvalidOperationException($"FindTensor('{tensor.Name}') does not return the directory entry");
            }
        }

        ExpectedValue(() => file.RequireTensor("no.such.tensor"));
        GlqMetadata metadata = file.Metadata;
        if (metadata.Count != (int)file.Header.MetadataCount)
        {
            throw new InvalidOperationException($"metadata has {metadata.Count} entries, header.metadata_count is {file.Header.MetadataCount}");
        }

        foreach ((string key, GlqValue value) in metadata.Entries)
        {
            sink += value.ToString().Length + value.TypeName().Length + value.GetHashCode();
            if (!value.Equals(metadata.Find(key)))
            {
                throw new InvalidOperationException($"metadata '{key}' is not equal to itself");
            }

            // Every typed getter: the matching ones must succeed, the others fail with ModelFormatException.
            ExpectedValue(() => metadata.GetString(key));
            ExpectedValue(() => metadata.FindString(key));
            ExpectedValue(() => metadata.GetUInt32(key));
            ExpectedValue(() => metadata.FindUInt32(key));
            ExpectedValue(() => metadata.GetInt32(key));
            ExpectedValue(() => metadata.FindInt32(key));
            ExpectedValue(() => metadata.GetUInt64(key));
            ExpectedValue(() => metadata.GetDouble(key));
            ExpectedValue(() => metadata.FindDouble(key));
            ExpectedValue(() => metadata.GetBool(key));
            ExpectedValue(() => metadata.FindBool(key));
            ExpectedValue(() => metadata.GetArray<string>(key, GlqValueType.String));
            if (value.Type == GlqValueType.Array)
            {
                sink += value.ElementType switch
                {
                    GlqValueType.U8 => metadata.GetArray<byte>(key, GlqValueType.U8).Length,
                    GlqValueType.I8 => metadata.GetArray<sbyte>(key, GlqValueType.I8).Length,
                    GlqValueType.U16 => metadata.GetArray<ushort>(key, GlqValueType.U16).Length,
                    GlqValueType.I16 => metadata.GetArray<short>(key, GlqValueType.I16).Length,
                    GlqValueType.U32 => metadata.GetArray<uint>(key, GlqValueType.U32).Length,
                    GlqValueType.I32 => metadata.GetArray<int>(key, GlqValueType.I32).Length,
                    GlqValueType.U64 => metadata.GetArray<ulong>(key, GlqValueType.U64).Length,
                    GlqValueType.I64 => metadata.GetArray<long>(key, GlqValueType.I64).Length,
                    GlqValueType.F32 => metadata.GetArray<float>(key, GlqValueType.F32).Length,
                    GlqValueType.F64 => metadata.GetArray<double>(key, GlqValueType.F64).Length,
                    GlqValueType.Bool => metadata.GetArray<bool>(key, GlqValueType.Bool).Length,
                    GlqValueType.String => metadata.GetArray<string>(key, GlqValueType.String).Sum(s => s.Length),
                    _ => throw new InvalidOperationException($"metadata '{key}' is an array of {value.ElementType}"),
                };
                ExpectedValue(() => metadata.FindArray<float>(key, GlqValueType.F32));
            }

            if (value.Type == GlqValueType.String && metadata.GetString(key) is { Length: > 0 } tensorName)
            {
                ExpectedValue(() => file.RequireTensor(tensorName));
            }
        }

        // A re-encoded section decodes to the same entries (the codec agrees with itself on anything it accepted).
        byte[] reencoded = metadata.Encode();
        GlqMetadata again = GlqMetadata.Decode(reencoded, (uint)metadata.Count, "re-encoded");
        if (again.Count != metadata.Count)
        {
            throw new InvalidOperationException("re-encoded metadata decodes to a different entry count");
        }

        GC.KeepAlive(sink);
        return true;
    }

    /// <summary>Null when <paramref name="message"/> is one line starting with the file name, else what is wrong.</summary>
    public static string? MessageProblem(string fileName, string message) =>
        message.Any(c => c is '\n' or '\r' or '\u0085' or '\u2028' or '\u2029') ? $"ModelFormatException message has more than one line: {message}"
        : !message.StartsWith(fileName + ": ", StringComparison.Ordinal) ? $"ModelFormatException message does not start with the file name: {message}"
        : null;
}

public enum GlqFuzzMode
{
    /// <summary>Mutations as they fall: most stop at header.checksum.</summary>
    Raw,

    /// <summary>The header checksum recomputed after every mutation, so metadata and directory validation are reached.</summary>
    Resigned,

    /// <summary>One in four raw, the rest resigned.</summary>
    Mixed,
}

/// <summary>A failure: an exception other than ModelFormatException, a multi-line or anonymous message, or a resource blow-up.</summary>
public sealed record GlqFuzzFailure(ulong Seed, long Iteration, GlqFuzzMode Mode, string Mutations, string Problem)
{
    public override string ToString() =>
        $"seed {Seed} iteration {Iteration} mode {Mode}: {Problem} | mutations: {Mutations} | reproduce: dotnet run -c Release --project benchmarks/GlowQ.Benchmarks.GlqFuzz -- --seed {Seed} --replay {Iteration} --mode {Mode}";
}

public sealed record GlqFuzzResult(long Inputs, long Opened, long Refused, TimeSpan Elapsed, TimeSpan SlowestInput, long LargestAllocation, IReadOnlyList<GlqFuzzFailure> Failures)
{
    public double InputsPerSecond => Inputs / Math.Max(Elapsed.TotalSeconds, 1e-9);
}

/// <summary>The fuzz loop shared by the CI test and the long-run console fuzzer.</summary>
public sealed class GlqFuzzer
{
    /// <summary>An input that takes longer than this, three times running, is reported as a hang.</summary>
    public static readonly TimeSpan SlowInput = TimeSpan.FromSeconds(2);

    /// <summary>An input whose processing allocates more than this (the seeds are a few KiB) is reported.</summary>
    public const long AllocationLimit = 64L << 20;

    private readonly GlqMutator[] _mutators;
    private readonly string _path;
    private long _current = -1;

    /// <param name="seedFiles">Valid .glq images to mutate.</param>
    /// <param name="workPath">File rewritten with each input (one path for the whole run).</param>
    public GlqFuzzer(IEnumerable<byte[]> seedFiles, string workPath)
    {
        _mutators = [.. seedFiles.Select(f => new GlqMutator(f))];
        _path = workPath;
    }

    /// <summary>The iteration running now (for a watchdog that reports a hang).</summary>
    public long CurrentIteration => Interlocked.Read(ref _current);

    public GlqFuzzResult Run(ulong seed, long maxInputs, TimeSpan budget, GlqFuzzMode mode, int maxFailures = 20, CancellationToken cancel = default)
    {
        var failures = new List<GlqFuzzFailure>();
        var clock = Stopwatch.StartNew();
        long inputs = 0, opened = 0;
        TimeSpan slowest = TimeSpan.Zero;
        long largest = 0;
        for (long i = 0; i < maxInputs && clock.Elapsed < budget && failures.Count < maxFailures && !cancel.IsCancellationRequested; i++)
        {
            Interlocked.Exchange(ref _current, i);
            long before = GC.GetAllocatedBytesForCurrentThread();
            TimeSpan start = clock.Elapsed;
            (bool ok, GlqFuzzFailure? failure) = RunOne(seed, i, mode);
            TimeSpan took = clock.Elapsed - start;
            for (int retry = 0; retry < 2 && took > SlowInput && failure is null; retry++)
            {
                // A stall of the machine (disk, scheduler) is not a hang: only a slowness that repeats is reported.
                TimeSpan again = clock.Elapsed;
                RunOne(seed, i, mode);
                took = TimeSpan.FromTicks(Math.Min(took.Ticks, (clock.Elapsed - again).Ticks));
            }

            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            inputs++;
            opened += ok ? 1 : 0;
            slowest = took > slowest ? took : slowest;
            largest = Math.Max(largest, allocated);
            failure ??= took > SlowInput ? Describe(seed, i, mode, $"took {took.TotalMilliseconds:F0} ms (hang?)")
                : allocated > AllocationLimit ? Describe(seed, i, mode, $"allocated {allocated} bytes")
                : null;
            if (failure is not null)
            {
                failures.Add(failure);
            }
        }

        return new GlqFuzzResult(inputs, opened, inputs - opened, clock.Elapsed, slowest, largest, failures);
    }

    /// <summary>Runs iteration <paramref name="iteration"/> of <paramref name="seed"/>: (opened, failure or null).</summary>
    public (bool Opened, GlqFuzzFailure? Failure) RunOne(ulong seed, long iteration, GlqFuzzMode mode)
    {
        (byte[] input, List<string> log, GlqFuzzMode actual) = Input(seed, iteration, mode);
        File.WriteAllBytes(_path, input);
        string name = Path.GetFileName(_path);
        try
        {
            return (GlqFuzzTarget.Exercise(_path), null);
        }
        catch (ModelFormatException e)
        {
            return (false, GlqFuzzTarget.MessageProblem(name, e.Message) is { } problem ? new(seed, iteration, actual, string.Join("; ", log), problem) : null);
        }
#pragma warning disable CA1031 // The fuzzer's job is to catch and report every other exception.
        catch (Exception e)
#pragma warning restore CA1031
        {
            string where = e.StackTrace?.Split('\n').FirstOrDefault()?.Trim() ?? "";
            return (false, new(seed, iteration, actual, string.Join("; ", log), $"{e.GetType().FullName}: {e.Message} {where}"));
        }
    }

    /// <summary>The mutated input of an iteration; each iteration has its own generator, so any one replays alone.</summary>
    public (byte[] Input, List<string> Log, GlqFuzzMode Mode) Input(ulong seed, long iteration, GlqFuzzMode mode)
    {
        var rng = new Random(IterationSeed(seed, iteration));
        GlqFuzzMode actual = mode == GlqFuzzMode.Mixed ? (rng.Next(4) == 0 ? GlqFuzzMode.Raw : GlqFuzzMode.Resigned) : mode;
        GlqMutator mutator = _mutators[rng.Next(_mutators.Length)];
        var log = new List<string>();
        byte[] input = mutator.Mutate(rng, actual == GlqFuzzMode.Resigned, log);
        return (input, log, actual);
    }

    public static int IterationSeed(ulong seed, long iteration)
    {
        // SplitMix64 finaliser: stable across processes and runtimes (unlike string or HashCode hashing).
        ulong z = seed + 0x9E3779B97F4A7C15UL * (ulong)(iteration + 1);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (int)(z & 0x7FFF_FFFF);
    }

    private GlqFuzzFailure Describe(ulong seed, long iteration, GlqFuzzMode mode, string problem) =>
        new(seed, iteration, mode, string.Join("; ", Input(seed, iteration, mode).Log), problem);

    public static string Summary(GlqFuzzResult r) => string.Create(
        CultureInfo.InvariantCulture,
        $"{r.Inputs} inputs in {r.Elapsed.TotalSeconds:F1} s ({r.InputsPerSecond:F0} inputs/s): {r.Opened} opened, {r.Refused} refused, {r.Failures.Count} failures; slowest input {r.SlowestInput.TotalMilliseconds:F1} ms, largest allocation {r.LargestAllocation} bytes");
}
