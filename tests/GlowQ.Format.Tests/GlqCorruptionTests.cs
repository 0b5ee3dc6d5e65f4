using System.Text;
using GlowQ.Format.Glq;
using GlowQ.GlqFuzz;
using GlowQ.TestSupport;
using static GlowQ.GlqFuzz.GlqFileMap;

namespace GlowQ.Format.Tests;

/// <summary>
/// Each test damages one small valid file (several dtypes, every public metadata value type) and checks that the
/// reader refuses it with a one-line ModelFormatException naming the file and the field. Edits behind the header
/// checksum are re-signed (<see cref="GlqPatch.Resign"/>) so that the deeper check, not the checksum, is what fires.
/// </summary>
public sealed class GlqCorruptionTests : IDisposable
{
    private const string FileName = "corrupt.glq";
    private static readonly byte[] Valid = BuildValid();
    private static readonly GlqFileMap Map = Parse(Valid);

    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static byte[] BuildValid()
    {
        using var dir = new TempDirectory();
        return GlqSamples.WriteSample(dir.File("valid.glq"));
    }

    private static byte[] Copy() => (byte[])Valid.Clone();

    private string WriteFile(byte[] bytes)
    {
        string path = _dir.File(FileName);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>Opening <paramref name="bytes"/> fails with one line that names the file and every one of <paramref name="expected"/>.</summary>
    private ModelFormatException Refused(byte[] bytes, params string[] expected)
    {
        string path = WriteFile(bytes);
        var e = Assert.Throws<ModelFormatException>(() => GlqFile.Open(path).Dispose());
        AssertOneLine(e);
        foreach (string part in expected)
        {
            Assert.Contains(part, e.Message, StringComparison.Ordinal);
        }

        return e;
    }

    /// <summary>Applies <paramref name="edit"/> to a copy, re-signs the header, and expects a refusal naming <paramref name="expected"/>.</summary>
    private ModelFormatException RefusedAfterResign(Action<byte[]> edit, params string[] expected)
    {
        byte[] bytes = Copy();
        edit(bytes);
        Assert.True(GlqPatch.Resign(bytes));
        return Refused(bytes, expected);
    }

    private static void AssertOneLine(ModelFormatException e)
    {
        Assert.DoesNotContain('\n', e.Message);
        Assert.DoesNotContain('\r', e.Message);
        Assert.StartsWith(FileName + ": ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_TheUndamagedSample_OpensAndEveryTensorVerifies()
    {
        using var file = GlqFile.Open(WriteFile(Copy()));
        Assert.Equal(Map.Directory.Select(d => d.Name), file.Tensors.Select(t => t.Name));
        Assert.Equal(Map.Metadata.Select(m => m.Key), file.Metadata.Entries.Select(e => e.Key));
        foreach (GlqTensorInfo t in file.Tensors)
        {
            file.VerifyTensor(t);
        }
    }

    // ---- truncation and length ----

    public static TheoryData<string, int> SectionBoundaries()
    {
        var data = new TheoryData<string, int>
        {
            { "header start", 0 }, { "one byte", 1 }, { "inside magic", 5 }, { "inside header", 64 }, { "header end - 1", 127 },
            { "header end", 128 }, { "metadata end", Map.MetadataEnd }, { "directory start", Map.DirectoryOffset },
            { "directory end", Map.DirectoryEnd }, { "data start", (int)Map.DataOffset }, { "last byte", Valid.Length - 1 },
        };
        foreach (GlqDirectoryEntryMap t in Map.Directory)
        {
            data.Add($"'{t.Name}' start", (int)t.DataStart);
            if (t.DataStart + t.DataLength < Valid.Length)
            {
                data.Add($"'{t.Name}' end", (int)(t.DataStart + t.DataLength));
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(SectionBoundaries))]
    public void Open_TruncatedAtEverySectionBoundary_IsRefusedWithOneLine(string boundary, int length)
    {
        Assert.NotNull(boundary);
        byte[] truncated = Valid[..length];
        _ = length switch
        {
            0 => Refused(truncated, "file is empty"),
            < 128 => Refused(truncated, $"file is {length} bytes, shorter than the 128-byte .glq header"),
            _ => Refused(truncated, "header.file_length", $"the file has {length} bytes", "truncated"),
        };
    }

    [Fact]
    public void Open_TruncatedAtSeededRandomPoints_IsRefusedWithOneLine()
    {
        var random = new Random(20261124);
        for (int i = 0; i < 50; i++)
        {
            int length = random.Next(1, Valid.Length);
            Refused(Valid[..length], length < 128 ? "header" : "header.file_length");
        }
    }

    [Fact]
    public void Open_TrailingBytes_IsRefusedNamingFileLength()
    {
        Refused([.. Valid, 0], "header.file_length", "trailing bytes");
        Refused([.. Valid, .. new byte[4096]], "header.file_length", "trailing bytes");
    }

    // ---- flipped bytes, caught by the layout checks, the header checksum or the tensor checksum ----

    [Fact]
    public void Open_FlippedByteAnywhereInTheCheckedHeader_IsRefusedNamingAHeaderField()
    {
        for (int at = 0; at < 96; at++)
        {
            foreach (byte mask in new byte[] { 0x01, 0x80 })
            {
                byte[] bytes = Copy();
                bytes[at] ^= mask;
                ModelFormatException e = Refused(bytes);
                Assert.True(
                    e.Message.Contains("header.", StringComparison.Ordinal) || e.Message.Contains("newer than this reader", StringComparison.Ordinal),
                    $"byte {at} ^ 0x{mask:X2}: {e.Message}");
                if (at < 8)
                {
                    Assert.Contains("header.magic", e.Message, StringComparison.Ordinal);
                }
                else if (at is >= 88 and < 96 or >= FlagsAt and < FlagsAt + 4 or >= MinorVersionAt and < MinorVersionAt + 2)
                {
                    Assert.Contains("header.checksum", e.Message, StringComparison.Ordinal);
                }
            }
        }
    }

    [Fact]
    public void Open_NonZeroReservedHeaderBytes_AreIgnored()
    {
        byte[] bytes = Copy();
        Array.Fill(bytes, (byte)0xA5, 96, 32);
        using var file = GlqFile.Open(WriteFile(bytes));
        Assert.Equal(Map.Directory.Count, file.Tensors.Count);
    }

    [Fact]
    public void Open_FlippedByteInMetadataOrDirectory_IsRefusedByTheHeaderChecksum()
    {
        var sections = Enumerable.Range(Map.MetadataOffset, Map.MetadataLength).Concat(Enumerable.Range(Map.DirectoryOffset, Map.DirectoryLength));
        foreach (int at in sections)
        {
            byte[] bytes = Copy();
            bytes[at] ^= (byte)(1 << (at % 8));
            Refused(bytes, "header.checksum", "corrupt header, metadata or directory");
        }
    }

    [Fact]
    public void VerifyTensor_FlippedByteInTensorData_NamesTheTensorAndLeavesTheOthersValid()
    {
        foreach (GlqDirectoryEntryMap damaged in Map.Directory)
        {
            foreach (long at in new[] { damaged.DataStart, damaged.DataStart + damaged.DataLength / 2, damaged.DataStart + damaged.DataLength - 1 })
            {
                byte[] bytes = Copy();
                bytes[at] ^= 0x10;
                using var file = GlqFile.Open(WriteFile(bytes)); // opening never reads the data
                foreach (GlqTensorInfo t in file.Tensors)
                {
                    if (t.Name == damaged.Name)
                    {
                        var e = Assert.Throws<ModelFormatException>(() => file.VerifyTensor(t));
                        AssertOneLine(e);
                        Assert.Contains($"tensor '{t.Name}' checksum mismatch", e.Message, StringComparison.Ordinal);
                        Assert.Throws<ModelFormatException>(() => file.VerifyTensor(t)); // a failure is not cached as success
                    }
                    else
                    {
                        file.VerifyTensor(t);
                    }
                }
            }
        }
    }

    [Fact]
    public void VerifyTensor_DirectoryChecksumEdited_NamesTheTensor()
    {
        GlqDirectoryEntryMap t = Map.Tensor("model.embed");
        byte[] bytes = Copy();
        GlqPatch.U64(bytes, t.ChecksumOffset, GlqPatch.ReadU64(bytes, t.ChecksumOffset) + 1);
        Assert.True(GlqPatch.Resign(bytes));
        using var file = GlqFile.Open(WriteFile(bytes));
        var e = Assert.Throws<ModelFormatException>(() => file.VerifyTensor(file.RequireTensor("model.embed")));
        AssertOneLine(e);
        Assert.Contains("'model.embed' checksum mismatch", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("tok\nenizer.file", "tok\\u000aenizer.file")]
    [InlineData("a\r\nb", "a\\u000d\\u000ab")]
    [InlineData("a\u2028b\u0085", "a\\u2028b\\u0085")]
    public void RequireTensor_NameFromMetadataWithLineBreaks_IsRefusedOnOneLine(string name, string shown)
    {
        byte[] bytes;
        using (var dir = new TempDirectory())
        {
            string path = dir.File("m.glq");
            using (var writer = GlqWriter.Create(path, new GlqMetadata().Set("tokenizer.file", GlqValue.String(name)), []))
            {
                writer.Commit();
            }

            bytes = File.ReadAllBytes(path);
        }

        using var file = GlqFile.Open(WriteFile(bytes));
        var e = Assert.Throws<ModelFormatException>(() => file.RequireTensor(file.Metadata.GetString("tokenizer.file")));
        AssertOneLine(e);
        Assert.Equal($"{FileName}: tensor '{shown}' is missing", e.Message);
    }

    // ---- header fields (layout checks run before the checksum; re-signing shows they do not depend on it) ----

    [Fact]
    public void Open_WrongMagic_IsRefusedAsNotAGlqFile()
    {
        RefusedAfterResign(b => b[0] = 0x88, "header.magic", "not a .glq file");
        RefusedAfterResign(b => GlqPatch.Ascii(b, 0, "GGUF"), "header.magic");
        Refused([.. "PK\u0003\u0004"u8, .. new byte[200]], "header.magic");
    }

    [Fact]
    public void Open_FutureMajorVersion_IsRefusedAsNewerThanThisReader()
    {
        ModelFormatException e = RefusedAfterResign(b => GlqPatch.U16(b, MajorVersionAt, 2), "newer than this reader", "upgrade glowq");
        Assert.Equal($"{FileName}: file format version 2.0 is newer than this reader (1.x); upgrade glowq", e.Message);
        RefusedAfterResign(b => { GlqPatch.U16(b, MajorVersionAt, 65535); GlqPatch.U16(b, MinorVersionAt, 3); }, "version 65535.3 is newer");
    }

    [Fact]
    public void Open_MajorVersionZero_IsRefused() => RefusedAfterResign(b => GlqPatch.U16(b, MajorVersionAt, 0), "header.major_version is 0");

    [Theory]
    [InlineData((ushort)1)]
    [InlineData((ushort)7)]
    [InlineData(ushort.MaxValue)]
    public void Open_NewerMinorVersionOfAKnownMajor_IsAccepted(ushort minor)
    {
        byte[] bytes = Copy();
        GlqPatch.U16(bytes, MinorVersionAt, minor);
        GlqPatch.U32(bytes, FlagsAt, 0xFFFF_FFFF); // unknown flag bits are hints; readers ignore them
        Refused(bytes, "header.checksum"); // the version is covered by the checksum ...
        Assert.True(GlqPatch.Resign(bytes));
        using var file = GlqFile.Open(WriteFile(bytes)); // ... and once signed, 1.x opens
        Assert.Equal(minor, file.Header.MinorVersion);
        Assert.All(file.Tensors, file.VerifyTensor);
    }

    [Fact]
    public void Open_LargerHeaderSizeFromANewerMinor_IsAccepted()
    {
        // A 1.x file whose header grew by 8 bytes: the sections move down 8 bytes, the data section stays on its page.
        const int Grow = 8;
        byte[] bytes = [.. Valid.AsSpan(0, 128), .. new byte[Grow], .. Valid.AsSpan(128, (int)Map.DataOffset - 128 - Grow), .. Valid.AsSpan((int)Map.DataOffset)];
        GlqPatch.U16(bytes, MinorVersionAt, 1);
        GlqPatch.U32(bytes, HeaderSizeAt, 128 + Grow);
        GlqPatch.U64(bytes, MetadataOffsetAt, 128 + Grow);
        GlqPatch.U64(bytes, DirectoryOffsetAt, (ulong)(Map.DirectoryOffset + Grow));
        Assert.True(GlqPatch.Resign(bytes));
        using var file = GlqFile.Open(WriteFile(bytes));
        Assert.Equal(GlqSamples.SampleMetadata().Entries, file.Metadata.Entries);
        Assert.All(file.Tensors, file.VerifyTensor);
    }

    public static TheoryData<string, int, int, ulong, string> BadHeaderFields() => new()
    {
        { "header_size not a multiple of 8", HeaderSizeAt, 4, 129, "header.header_size is 129" },
        { "header_size below 128", HeaderSizeAt, 4, 120, "header.header_size is 120" },
        { "header_size huge", HeaderSizeAt, 4, uint.MaxValue, "header.header_size" },
        { "alignment not a power of two", TensorAlignmentAt, 4, 100, "header.tensor_alignment is 100" },
        { "alignment below 64", TensorAlignmentAt, 4, 32, "header.tensor_alignment is 32" },
        { "alignment zero", TensorAlignmentAt, 4, 0, "header.tensor_alignment is 0" },
        { "metadata_offset past header", MetadataOffsetAt, 8, 136, "header.metadata_offset is 136" },
        { "metadata_length past the file", MetadataLengthAt, 8, 1UL << 40, "header.metadata_length" },
        { "metadata_length 2^64-1", MetadataLengthAt, 8, ulong.MaxValue, "header.metadata_length" },
        { "directory_offset off by 8", DirectoryOffsetAt, 8, (ulong)Map.DirectoryOffset + 8, "header.directory_offset" },
        { "directory_offset 2^64-1", DirectoryOffsetAt, 8, ulong.MaxValue, "header.directory_offset" },
        { "directory_length past the file", DirectoryLengthAt, 8, (ulong)Valid.Length, "header.directory_length" },
        { "directory_length 2^64-1", DirectoryLengthAt, 8, ulong.MaxValue, "header.directory_length" },
        { "data_offset not page-aligned", DataOffsetAt, 8, (ulong)Map.DataOffset + 256, "header.data_offset" },
        { "data_offset inside the directory", DataOffsetAt, 8, 0, "header.data_offset is 0" },
        { "data_offset past the file", DataOffsetAt, 8, (ulong)Map.DataOffset + (1UL << 40), "header.data_length" },
        { "data_length off by one", DataLengthAt, 8, (ulong)Map.DataLength + 1, "header.data_length" },
        { "data_length 2^64-1", DataLengthAt, 8, ulong.MaxValue, "header.data_length" },
        { "file_length off by one", FileLengthAt, 8, (ulong)Valid.Length - 1, "header.file_length" },
        { "file_length 2^64-1", FileLengthAt, 8, ulong.MaxValue, "header.file_length" },
        { "tensor_count absurd", TensorCountAt, 4, uint.MaxValue, "header.tensor_count 4294967295" },
        { "metadata_count absurd", MetadataCountAt, 4, uint.MaxValue, "header.metadata_count 4294967295" },
    };

    [Theory]
    [MemberData(nameof(BadHeaderFields))]
    public void Open_InvalidHeaderField_IsRefusedNamingTheField(string what, int at, int width, ulong value, string expected)
    {
        Assert.NotNull(what);
        byte[] bytes = Copy();
        PatchWidth(bytes, at, width, value);
        GlqPatch.Resign(bytes); // where the edited header still names sections inside the file
        Refused(bytes, expected);
    }

    private static void PatchWidth(byte[] b, int at, int width, ulong value)
    {
        switch (width)
        {
            case 2: GlqPatch.U16(b, at, (ushort)value); break;
            case 4: GlqPatch.U32(b, at, (uint)value); break;
            default: GlqPatch.U64(b, at, value); break;
        }
    }

    // ---- directory (header re-signed, so these reach step 5) ----

    /// <summary>Two tensors next to each other in the data section, in data order.</summary>
    private static (GlqDirectoryEntryMap First, GlqDirectoryEntryMap Second) DataNeighbours()
    {
        var byData = Map.Directory.OrderBy(d => d.DataStart).ToArray();
        return (byData[0], byData[1]);
    }

    [Fact]
    public void Open_OverlappingTensorExtents_IsRefusedNamingBothTensors()
    {
        (GlqDirectoryEntryMap first, GlqDirectoryEntryMap second) = DataNeighbours();
        RefusedAfterResign(
            b => GlqPatch.U64(b, second.OffsetOffset, GlqPatch.ReadU64(b, first.OffsetOffset)),
            "directory", "overlap", $"'{first.Name}'", $"'{second.Name}'");
    }

    [Fact]
    public void Open_EveryTensorAtOffsetZero_IsRefusedAsOverlapping()
    {
        RefusedAfterResign(
            b =>
            {
                foreach (GlqDirectoryEntryMap t in Map.Directory)
                {
                    GlqPatch.U64(b, t.OffsetOffset, 0);
                }
            },
            "directory", "overlap");
    }

    [Theory]
    [InlineData("just past the data section")]
    [InlineData("ends past the data section")]
    [InlineData("2^64-256 (offset+length wraps)")]
    [InlineData("2^63")]
    public void Open_TensorExtentOutsideTheDataSection_IsRefusedNamingTheTensor(string where)
    {
        GlqDirectoryEntryMap t = Map.Tensor("model.embed");
        ulong offset = where switch
        {
            "just past the data section" => GlqHeader.Align((ulong)Map.DataLength, 256),
            "ends past the data section" => (ulong)Map.DataLength / 256 * 256,
            "2^63" => 1UL << 63,
            _ => ulong.MaxValue - 255,
        };
        Assert.True(offset + (ulong)t.DataLength > (ulong)Map.DataLength);
        RefusedAfterResign(b => GlqPatch.U64(b, t.OffsetOffset, offset), "directory", "'model.embed'", "lies outside the data section");
    }

    [Theory]
    [InlineData(1UL)]
    [InlineData(64UL)]
    [InlineData(128UL)]
    public void Open_MisalignedTensorOffset_IsRefusedNamingTheTensor(ulong shift)
    {
        GlqDirectoryEntryMap t = Map.Tensor("model.norm");
        RefusedAfterResign(
            b => GlqPatch.U64(b, t.OffsetOffset, GlqPatch.ReadU64(b, t.OffsetOffset) + shift),
            "directory", "'model.norm'", "is not a multiple of the tensor alignment 256");
    }

    [Theory]
    [InlineData(0UL, "dimension 0 is 0, expected 1..2^32")]
    [InlineData((1UL << 32) + 1, "dimension 0 is 4294967297, expected 1..2^32")]
    [InlineData(1UL << 40, "dimension 0 is 1099511627776, expected 1..2^32")]
    [InlineData(ulong.MaxValue, "dimension 0 is 18446744073709551615")]
    public void Open_AbsurdDimension_IsRefusedNamingTheTensor(ulong dimension, string expected)
    {
        GlqDirectoryEntryMap t = Map.Tensor("model.embed");
        RefusedAfterResign(b => GlqPatch.U64(b, t.DimsOffset, dimension), "directory", "'model.embed'", expected);
    }

    [Theory]
    [InlineData("model.layers.0.q.qweight")] // U4 [2^32, 2^32]: 2^32 rows of 2^31 bytes
    [InlineData("model.ids")] // I32 [2^32, 2^32, 2^32, 2^32]
    [InlineData("model.embed")] // F32 [2^32, 2^32]
    public void Open_DimensionProductOverflowing64Bits_IsRefused(string name)
    {
        GlqDirectoryEntryMap t = Map.Tensor(name);
        RefusedAfterResign(
            b =>
            {
                for (int d = 0; d < t.Rank; d++)
                {
                    GlqPatch.U64(b, t.DimsOffset + 8 * d, 1UL << 32);
                }
            },
            "directory", $"'{name}'", "overflows 64-bit sizes");
    }

    [Fact]
    public void Open_LengthDisagreeingWithDtypeAndShape_IsRefused()
    {
        GlqDirectoryEntryMap t = Map.Tensor("model.layers.0.q.qweight"); // U4 [4, 7] needs 4·4 = 16 bytes
        RefusedAfterResign(b => GlqPatch.U64(b, t.LengthOffset, 14), "directory", "length is 14, U4 [4, 7] needs 16");
        RefusedAfterResign(b => GlqPatch.U64(b, t.DimsOffset + 8, 9), "directory", "length is 16, U4 [4, 9] needs 20");
        GlqDirectoryEntryMap bits = Map.Tensor("model.mask"); // BITS [3, 10] needs 3·2 = 6 bytes
        RefusedAfterResign(b => GlqPatch.U64(b, bits.DimsOffset + 8, 17), "directory", "length is 6, BITS [3, 17] needs 9");
    }

    [Theory]
    [InlineData((byte)0)]
    [InlineData((byte)5)]
    [InlineData((byte)255)]
    public void Open_InvalidRank_IsRefusedNamingTheTensor(byte rank)
    {
        GlqDirectoryEntryMap t = Map.Tensor("model.norm");
        RefusedAfterResign(b => b[t.RankOffset] = rank, "directory", $"tensor 'model.norm' has rank {rank}, expected 1..4");
    }

    [Theory]
    [InlineData((byte)7)]
    [InlineData((byte)128)]
    [InlineData((byte)255)]
    public void Open_UnknownDtype_IsRefusedNamingTheTensor(byte dtype)
    {
        GlqDirectoryEntryMap t = Map.Tensor("model.ids");
        RefusedAfterResign(b => b[t.DTypeOffset] = dtype, "directory", $"tensor 'model.ids' has unknown dtype {dtype}");
    }

    [Fact]
    public void Open_DuplicateTensorNames_IsRefused()
    {
        GlqDirectoryEntryMap norm = Map.Tensor("model.norm");
        RefusedAfterResign(b => GlqPatch.Ascii(b, norm.NameOffset, "model.mask"), "directory", "tensor 'model.mask' appears twice");
    }

    [Fact]
    public void Open_UnsortedTensorNames_IsRefused()
    {
        GlqDirectoryEntryMap norm = Map.Tensor("model.norm");
        RefusedAfterResign(b => GlqPatch.Ascii(b, norm.NameOffset, "model.aaaa"), "directory", "'model.aaaa' is out of order (after 'model.mask'");
    }

    [Theory]
    [InlineData("model/norm")]
    [InlineData("model norm")]
    [InlineData("model\u00e9orm")] // one Latin-1 byte, not ASCII
    [InlineData("model\0norm")]
    public void Open_TensorNameWithInvalidCharacters_IsRefused(string name)
    {
        GlqDirectoryEntryMap norm = Map.Tensor("model.norm");
        RefusedAfterResign(b => Encoding.Latin1.GetBytes(name).CopyTo(b, norm.NameOffset), "directory", "name has characters outside [A-Za-z0-9_.-]");
    }

    [Theory]
    [InlineData((ushort)0, "name length 0")]
    [InlineData((ushort)513, "name length 513")]
    [InlineData(ushort.MaxValue, "name length 65535")]
    public void Open_InvalidTensorNameLength_IsRefused(ushort length, string expected)
    {
        GlqDirectoryEntryMap t = Map.Directory[2];
        RefusedAfterResign(b => GlqPatch.U16(b, t.Start, length), "directory", "entry 2", expected);
    }

    [Fact]
    public void Open_TensorCountOneShort_IsRefusedAsTrailingDirectoryBytes() =>
        RefusedAfterResign(b => GlqPatch.U32(b, TensorCountAt, (uint)Map.Directory.Count - 1), "directory", "bytes left after the 6 declared entries");

    [Fact]
    public void Open_TensorCountOneMore_IsRefusedAsTruncatedDirectory() =>
        RefusedAfterResign(b => GlqPatch.U32(b, TensorCountAt, (uint)Map.Directory.Count + 1), "directory", "entry 7", "truncated section");

    [Fact]
    public void Open_DirectoryLengthCoveringPadding_IsRefusedAsTrailingDirectoryBytes() =>
        RefusedAfterResign(b => GlqPatch.U64(b, DirectoryLengthAt, (ulong)Map.DirectoryLength + 8), "directory", "8 bytes left after the 7 declared entries");

    // ---- metadata (header re-signed, so these reach step 4) ----

    [Theory]
    [InlineData((byte)13)]
    [InlineData((byte)200)]
    [InlineData((byte)255)]
    public void Open_UnknownMetadataValueType_IsRefusedNamingTheKey(byte type)
    {
        GlqMetadataEntryMap e = Map.Entry("model.dim");
        RefusedAfterResign(b => b[e.TypeOffset] = type, "metadata", $"key 'model.dim' has unknown value type {type}");
    }

    [Theory]
    [InlineData((byte)12)]
    [InlineData((byte)13)]
    [InlineData((byte)255)]
    public void Open_ArrayOfInvalidElementType_IsRefusedNamingTheKey(byte elementType)
    {
        GlqMetadataEntryMap e = Map.Entry("glowq.units");
        RefusedAfterResign(b => b[e.ValueOffset] = elementType, "metadata", $"key 'glowq.units' has array element type {elementType}", "arrays do not nest");
    }

    [Theory]
    [InlineData(30u)]
    [InlineData(0x7FFF_FFFFu)]
    [InlineData(0xFFFF_FFF0u)]
    [InlineData(uint.MaxValue)]
    public void Open_StringLengthPastTheSection_IsRefusedNamingTheKey(uint length)
    {
        GlqMetadataEntryMap e = Map.Entry("tokenizer.file"); // the last entry, so no later bytes can stand in
        Assert.Equal(Map.Metadata[^1], e);
        RefusedAfterResign(b => GlqPatch.U32(b, e.ValueOffset, length), "metadata", $"key 'tokenizer.file' string of {length} bytes runs past the section");
    }

    [Theory]
    [InlineData(1UL << 60)]
    [InlineData(ulong.MaxValue)]
    [InlineData(1UL << 32)]
    [InlineData(100_000UL)]
    public void Open_AbsurdArrayCount_IsRefusedBeforeAllocating(ulong count)
    {
        foreach (string key in new[] { "glowq.units", "glowq.mask.default", "glowq.score.x", "model.eos_ids" })
        {
            GlqMetadataEntryMap e = Map.Entry(key);
            Assert.Equal((byte)12, e.Type);
            RefusedAfterResign(b => GlqPatch.U64(b, e.ValueOffset + 1, count), "metadata", $"key '{key}' declares {count} elements");
        }
    }

    [Theory]
    [InlineData(new byte[] { 0xFF })]
    [InlineData(new byte[] { 0xC0, 0x80 })] // overlong NUL
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 })] // UTF-16 surrogate
    [InlineData(new byte[] { 0xE6, 0xA8 })] // a three-byte sequence cut short
    public void Open_InvalidUtf8String_IsRefusedNamingTheKey(byte[] bad)
    {
        GlqMetadataEntryMap e = Map.Entry("general.name");
        RefusedAfterResign(b => bad.CopyTo(b, e.ValueOffset + 4), "metadata", "key 'general.name' string is not valid UTF-8");
    }

    [Fact]
    public void Open_InvalidUtf8InAStringArrayElement_IsRefusedNamingTheKey()
    {
        GlqMetadataEntryMap e = Map.Entry("glowq.units");
        RefusedAfterResign(b => b[e.ValueOffset + 1 + 8 + 4] = 0xFE, "metadata", "key 'glowq.units' string is not valid UTF-8");
    }

    [Theory]
    [InlineData((byte)2)]
    [InlineData((byte)0xFF)]
    public void Open_InvalidBoolByte_IsRefusedNamingTheKey(byte value)
    {
        GlqMetadataEntryMap e = Map.Entry("model.tied_embeddings");
        RefusedAfterResign(b => b[e.ValueOffset] = value, "metadata", $"key 'model.tied_embeddings' bool byte is {value}, expected 0 or 1");
    }

    [Fact]
    public void Open_DuplicateMetadataKeys_IsRefused()
    {
        GlqMetadataEntryMap bos = Map.Entry("model.bos_id");
        Assert.Equal("model.layers".Length, bos.Key.Length);
        RefusedAfterResign(b => GlqPatch.Ascii(b, bos.KeyOffset, "model.layers"), "metadata", "key 'model.layers' appears twice");
    }

    [Fact]
    public void Open_MetadataKeysOutOfOrder_AreAcceptedBecauseReadersDoNotRelyOnOrder()
    {
        GlqMetadataEntryMap bos = Map.Entry("model.bos_id");
        byte[] bytes = Copy();
        GlqPatch.Ascii(bytes, bos.KeyOffset, "zzzzz.bos_id");
        Assert.True(GlqPatch.Resign(bytes));
        using var file = GlqFile.Open(WriteFile(bytes));
        Assert.Equal(-1, file.Metadata.GetInt32("zzzzz.bos_id"));
    }

    [Theory]
    [InlineData("Model.dim")]
    [InlineData("model dim")]
    [InlineData("model/dim")]
    [InlineData("model\u00e9dim")]
    [InlineData("model\0dim")]
    public void Open_MetadataKeyWithInvalidCharacters_IsRefused(string key)
    {
        GlqMetadataEntryMap e = Map.Entry("model.dim");
        RefusedAfterResign(b => Encoding.Latin1.GetBytes(key).CopyTo(b, e.KeyOffset), "metadata", "has characters outside [a-z0-9_.-]");
    }

    [Theory]
    [InlineData((ushort)0, "key length 0")]
    [InlineData((ushort)257, "key length 257")]
    [InlineData(ushort.MaxValue, "key length 65535")]
    public void Open_InvalidMetadataKeyLength_IsRefused(ushort length, string expected)
    {
        GlqMetadataEntryMap e = Map.Metadata[3];
        RefusedAfterResign(b => GlqPatch.U16(b, e.Start, length), "metadata", "entry 3", expected);
    }

    [Fact]
    public void Open_MetadataCountOneShort_IsRefusedAsTrailingBytes() =>
        RefusedAfterResign(
            b => GlqPatch.U32(b, MetadataCountAt, (uint)Map.Metadata.Count - 1),
            "metadata", $"bytes left after the {Map.Metadata.Count - 1} declared entries");

    [Fact]
    public void Open_MetadataCountOneMore_IsRefusedAsTruncatedMetadata() =>
        RefusedAfterResign(b => GlqPatch.U32(b, MetadataCountAt, (uint)Map.Metadata.Count + 1), "metadata", $"entry {Map.Metadata.Count}", "truncated section");

    [Fact]
    public void Open_MetadataValueCutShortByTheSectionEnd_IsRefused()
    {
        // Shrink the section by one byte: the last entry's string then runs past it.
        RefusedAfterResign(
            b =>
            {
                GlqPatch.U64(b, MetadataLengthAt, (ulong)Map.MetadataLength - 1);
                GlqPatch.U64(b, DirectoryOffsetAt, GlqHeader.Align((ulong)Map.MetadataEnd - 1, 8));
            },
            "metadata", "'tokenizer.file'");
    }
}
