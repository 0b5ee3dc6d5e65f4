using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using GlowQ.Format.Glq;
using GlowQ.GlqFuzz;
using GlowQ.TestSupport;

namespace GlowQ.Format.Tests;

public sealed class GlqRoundTripTests
{
    /// <summary>Every dtype, ranks 1–4, odd U4 rows and BITS rows that are not a multiple of 8; written in a non-name order.</summary>
    private static readonly (GlqTensorSpec Spec, long ExpectedBytes)[] AllDtypes =
    [
        (new("z.f32", GlqDType.F32, 3), 12),
        (new("a.f16", GlqDType.F16, 2, 3), 12),
        (new("m.bf16", GlqDType.BF16, 2, 2, 3), 24),
        (new("c.u8", GlqDType.U8, 1, 1, 1, 5), 5),
        (new("y.i32", GlqDType.I32, 1, 2, 3, 4), 96),
        (new("b.u4.odd", GlqDType.U4, 3, 5), 9),
        (new("b.u4.even", GlqDType.U4, 2, 2, 2, 8), 32),
        (new("b.u4.one", GlqDType.U4, 1), 1),
        (new("x.bits.odd", GlqDType.Bits, 2, 13), 4),
        (new("x.bits.eight", GlqDType.Bits, 8), 1),
        (new("x.bits.nine", GlqDType.Bits, 3, 1, 9), 6),
        (new("d.big", GlqDType.F32, 700), 2800),
    ];

    private static (GlqTensorSpec Spec, byte[] Data)[] AllDtypesWithData()
    {
        var random = new Random(7);
        return [.. AllDtypes.Select(t =>
        {
            var data = new byte[t.ExpectedBytes];
            random.NextBytes(data);
            if (t.Spec.DType == GlqDType.U4 && t.Spec.Shape[^1] % 2 == 1)
            {
                // The unused high nibble at the end of an odd row is zero (spec §5.1).
                long rowBytes = (t.Spec.Shape[^1] + 1) / 2;
                for (long end = rowBytes - 1; end < data.Length; end += rowBytes)
                {
                    data[end] &= 0x0F;
                }
            }

            return (t.Spec, data);
        })];
    }

    private static void Write(string path, GlqMetadata metadata, (GlqTensorSpec Spec, byte[] Data)[] tensors)
    {
        using var writer = GlqWriter.Create(path, metadata, [.. tensors.Select(t => t.Spec)]);
        foreach ((GlqTensorSpec spec, byte[] data) in tensors)
        {
            writer.WriteTensor(spec.Name, data);
        }

        writer.Commit();
    }

    [Fact]
    public void ByteLength_FollowsTheSpecSizeRules()
    {
        foreach ((GlqTensorSpec spec, long expected) in AllDtypes)
        {
            Assert.Equal(expected, spec.ByteLength);
        }

        Assert.Null(GlqDTypes.ByteSize(GlqDType.F32, [1L << 32, 1L << 32]));
        Assert.Null(GlqDTypes.ByteSize(GlqDType.U8, [1L << 32, 1L << 32, 4]));
        Assert.Null(GlqDTypes.ByteSize(GlqDType.F32, []));
        Assert.Equal(1L << 32, GlqDTypes.ByteSize(GlqDType.U4, [1L << 32, 2]));
    }

    [Fact]
    public void WriteThenOpen_EveryDtypeAndRank_ReturnsTheSameBytesShapesAndChecksums()
    {
        using var dir = new TempDirectory();
        string path = dir.File("all.glq");
        var tensors = AllDtypesWithData();
        Write(path, new GlqMetadata().Set("a", GlqValue.U8(1)), tensors);

        using var file = GlqFile.Open(path);
        Assert.Equal(tensors.Length, file.Tensors.Count);
        foreach ((GlqTensorSpec spec, byte[] data) in tensors)
        {
            GlqTensorInfo info = file.RequireTensor(spec.Name);
            Assert.Equal(spec.DType, info.DType);
            Assert.Equal(spec.Shape, info.Shape);
            Assert.Equal((ulong)data.Length, info.Length);
            Assert.Equal(data, file.GetBytes(info).ToArray());
            Assert.Equal(XxHash3.HashToUInt64(data), info.Checksum);
            file.VerifyTensor(info);
            file.VerifyTensor(info); // second call is the cached path
        }
    }

    [Fact]
    public void WriteThenOpen_TensorsInNonNameOrder_DirectoryIsNameSortedAndDataIsInWriteOrder()
    {
        using var dir = new TempDirectory();
        string path = dir.File("order.glq");
        var tensors = AllDtypesWithData();
        Write(path, new GlqMetadata(), tensors);

        using var file = GlqFile.Open(path);
        string[] names = [.. file.Tensors.Select(t => t.Name)];
        Assert.Equal(names.Order(StringComparer.Ordinal), names);
        Assert.NotEqual(tensors.Select(t => t.Spec.Name), names); // the test input really is out of name order

        ulong[] offsetsInWriteOrder = [.. tensors.Select(t => file.RequireTensor(t.Spec.Name).Offset)];
        Assert.Equal(0UL, offsetsInWriteOrder[0]);
        for (int i = 1; i < offsetsInWriteOrder.Length; i++)
        {
            ulong previousEnd = offsetsInWriteOrder[i - 1] + (ulong)tensors[i - 1].Data.Length;
            Assert.Equal(GlqHeader.Align(previousEnd, 256), offsetsInWriteOrder[i]);
        }
    }

    [Fact]
    public void WriteThenOpen_Layout_IsAlignedPaddedWithZerosAndExactlyAsLongAsDeclared()
    {
        using var dir = new TempDirectory();
        string path = dir.File("layout.glq");
        var tensors = AllDtypesWithData();
        Write(path, GlqSamples.SampleMetadata(), tensors);
        byte[] raw = File.ReadAllBytes(path);

        using var file = GlqFile.Open(path);
        GlqHeader h = file.Header;
        Assert.Equal(GlqHeader.Magic.ToArray(), raw[..8]);
        Assert.Equal((ushort)1, h.MajorVersion);
        Assert.Equal((ushort)0, h.MinorVersion);
        Assert.Equal(0u, h.Flags);
        Assert.Equal(128u, h.HeaderSize);
        Assert.Equal(256u, h.TensorAlignment);
        Assert.Equal(128UL, h.MetadataOffset);
        Assert.Equal(GlqHeader.Align(h.MetadataOffset + h.MetadataLength, 8), h.DirectoryOffset);
        Assert.Equal(0UL, h.DataOffset % 4096);
        Assert.True(h.DataOffset >= h.DirectoryOffset + h.DirectoryLength);
        Assert.True(h.DataOffset - (h.DirectoryOffset + h.DirectoryLength) < 4096, "data_offset is the NEXT page boundary");
        Assert.Equal((ulong)tensors.Length, h.TensorCount);
        Assert.Equal((uint)GlqSamples.SampleMetadata().Count, h.MetadataCount);
        Assert.All(raw[96..128], b => Assert.Equal(0, b));

        GlqTensorInfo last = file.Tensors.MaxBy(t => t.Offset)!;
        Assert.Equal(last.Offset + last.Length, h.DataLength);
        Assert.Equal(h.DataOffset + h.DataLength, h.FileLength);
        Assert.Equal((long)h.FileLength, raw.LongLength);
        Assert.Equal(raw.LongLength, file.FileLength);
        Assert.All(file.Tensors, t => Assert.Equal(0UL, t.Offset % 256));

        // Everything that is not header, metadata, directory or tensor bytes is zero padding.
        var used = new bool[raw.Length];
        Array.Fill(used, true, 0, (int)(h.MetadataOffset + h.MetadataLength));
        Array.Fill(used, true, (int)h.DirectoryOffset, (int)h.DirectoryLength);
        foreach (GlqTensorInfo t in file.Tensors)
        {
            Array.Fill(used, true, (int)(h.DataOffset + t.Offset), (int)t.Length);
        }

        Assert.All(Enumerable.Range(0, raw.Length).Where(i => !used[i]), i => Assert.Equal(0, raw[i]));
        Assert.Equal(GlqWriter.HeaderChecksum(raw, raw.AsSpan(128, (int)h.MetadataLength), raw.AsSpan((int)h.DirectoryOffset, (int)h.DirectoryLength)), h.Checksum);
    }

    [Fact]
    public void WriteThenOpen_NoTensors_IsOnePageWithAnEmptyDataSection()
    {
        using var dir = new TempDirectory();
        string path = dir.File("empty.glq");
        Write(path, new GlqMetadata().Set("general.name", GlqValue.String("x")), []);

        using var file = GlqFile.Open(path);
        Assert.Empty(file.Tensors);
        Assert.Equal(4096UL, file.Header.DataOffset);
        Assert.Equal(0UL, file.Header.DataLength);
        Assert.Equal(4096L, new FileInfo(path).Length);
        Assert.Equal("x", file.Metadata.GetString("general.name"));
    }

    [Fact]
    public void Append_ChunksAcrossTensorBoundaries_GivesTheSameFileAsWriteTensor()
    {
        using var dir = new TempDirectory();
        var tensors = AllDtypesWithData();
        string whole = dir.File("whole.glq");
        Write(whole, GlqSamples.SampleMetadata(), tensors);
        byte[] all = [.. tensors.SelectMany(t => t.Data)];

        foreach (int chunk in new[] { 1, 7, 13, 256, 1000, all.Length })
        {
            string chunked = dir.File($"chunked-{chunk}.glq");
            using (var writer = GlqWriter.Create(chunked, GlqSamples.SampleMetadata(), [.. tensors.Select(t => t.Spec)]))
            {
                for (int at = 0; at < all.Length; at += chunk)
                {
                    writer.Append(all.AsSpan(at, Math.Min(chunk, all.Length - at)));
                }

                Assert.Null(writer.Next);
                writer.Commit();
            }

            Assert.Equal(File.ReadAllBytes(whole), File.ReadAllBytes(chunked));
        }
    }

    [Fact]
    public void Append_Next_ReportsTheTensorExpectedNext()
    {
        using var dir = new TempDirectory();
        using var writer = GlqWriter.Create(dir.File("n.glq"), new GlqMetadata(), [new("b", GlqDType.U8, 2), new("a", GlqDType.U8, 2)]);
        Assert.Equal("b", writer.Next!.Name);
        writer.Append([1]);
        Assert.Equal("b", writer.Next!.Name);
        writer.Append([2, 3]);
        Assert.Equal("a", writer.Next!.Name);
        writer.Append([4]);
        Assert.Null(writer.Next);
    }

    [Fact]
    public void Write_SameInputTwice_GivesIdenticalBytes()
    {
        using var dir = new TempDirectory();
        var tensors = AllDtypesWithData();
        Write(dir.File("one.glq"), GlqSamples.SampleMetadata(), tensors);
        Write(dir.File("two.glq"), GlqSamples.SampleMetadata(), tensors);
        Assert.Equal(File.ReadAllBytes(dir.File("one.glq")), File.ReadAllBytes(dir.File("two.glq")));
    }

    [Fact]
    public void Write_MetadataSetInAnotherOrder_GivesIdenticalBytes()
    {
        using var dir = new TempDirectory();
        var forward = new GlqMetadata().Set("b.x", GlqValue.U8(1)).Set("a.y", GlqValue.String("s")).Set("a", GlqValue.Bool(false));
        var backward = new GlqMetadata().Set("a", GlqValue.Bool(false)).Set("a.y", GlqValue.String("s")).Set("b.x", GlqValue.U8(1));
        Write(dir.File("f.glq"), forward, []);
        Write(dir.File("b.glq"), backward, []);
        Assert.Equal(File.ReadAllBytes(dir.File("f.glq")), File.ReadAllBytes(dir.File("b.glq")));
    }

    // ---- metadata values ----

    [Fact]
    public void Metadata_PublicFactoryValues_RoundTripThroughAFile()
    {
        using var dir = new TempDirectory();
        string path = dir.File("m.glq");
        Write(path, GlqSamples.SampleMetadata(), []);

        using var file = GlqFile.Open(path);
        GlqMetadata m = file.Metadata;
        Assert.Equal(GlqSamples.SampleMetadata().Entries, m.Entries);
        Assert.Equal("LlamaForCausalLM", m.GetString("general.architecture"));
        Assert.Equal("tiny ✓ 模型", m.GetString("general.name"));
        Assert.Equal("", m.GetString("general.empty"));
        Assert.Equal(8u, m.GetUInt32("model.dim"));
        Assert.Equal(-1, m.GetInt32("model.bos_id"));
        Assert.Equal(-5L, (long)m.Find("model.offset")!.Raw);
        Assert.Equal(1e-5f, (float)m.GetDouble("model.norm_eps"));
        Assert.Equal(10000.0, m.GetDouble("model.rope.theta"));
        Assert.True(m.GetBool("model.tied_embeddings"));
        Assert.Equal([2, -7], m.GetArray<int>("model.eos_ids", GlqValueType.I32));
        Assert.Equal(4u, m.GetUInt32("quant.bits"));
        Assert.Equal((1UL << 40) + 3, m.GetUInt64("glowq.calib.seed"));
        Assert.Equal(["L0.qkv", "L0.o", ""], m.GetArray<string>("glowq.units", GlqValueType.String));
        Assert.Equal([0.5f, 0.25f, float.NaN], m.GetArray<float>("glowq.score.x", GlqValueType.F32));
        Assert.Equal([4u, 8u, 0u], m.GetArray<uint>("glowq.rank.per_unit", GlqValueType.U32));
        Assert.Equal([1, 0, 1], m.GetArray<byte>("glowq.mask.default", GlqValueType.U8));
    }

    /// <summary>One entry per scalar type, edge values included, encoded by hand from the spec (keys in ordinal order).</summary>
    private static byte[] HandEncodedScalars(out uint count)
    {
        var s = new SpecEncoder();
        s.Entry("b.bool.false", 10, w => w.Add(0));
        s.Entry("b.bool.true", 10, w => w.Add(1));
        s.Entry("f32.inf", 8, w => w.U32(0x7F800000));
        s.Entry("f32.max", 8, w => w.U32(BitConverter.SingleToUInt32Bits(float.MaxValue)));
        s.Entry("f32.nan", 8, w => w.U32(BitConverter.SingleToUInt32Bits(float.NaN)));
        s.Entry("f32.nan.payload", 8, w => w.U32(0x7FC12345));
        s.Entry("f32.neg.inf", 8, w => w.U32(0xFF800000));
        s.Entry("f32.neg.zero", 8, w => w.U32(0x80000000));
        s.Entry("f32.subnormal", 8, w => w.U32(1));
        s.Entry("f64.inf", 9, w => w.U64(0x7FF0000000000000));
        s.Entry("f64.nan.payload", 9, w => w.U64(0x7FF8000000ABCDEF));
        s.Entry("f64.nan.signalling", 9, w => w.U64(0x7FF0000000000001));
        s.Entry("f64.neg.inf", 9, w => w.U64(0xFFF0000000000000));
        s.Entry("f64.neg.nan", 9, w => w.U64(0xFFF8000000000000));
        s.Entry("f64.neg.zero", 9, w => w.U64(0x8000000000000000));
        s.Entry("f64.pi", 9, w => w.U64(BitConverter.DoubleToUInt64Bits(Math.PI)));
        s.Entry("i16.min", 3, w => w.U16(0x8000));
        s.Entry("i16.neg", 3, w => w.U16(unchecked((ushort)-2)));
        s.Entry("i32.min", 5, w => w.U32(0x80000000));
        s.Entry("i32.neg", 5, w => w.U32(unchecked((uint)-123456)));
        s.Entry("i64.min", 7, w => w.U64(0x8000000000000000));
        s.Entry("i64.neg", 7, w => w.U64(unchecked((ulong)-9876543210L)));
        s.Entry("i8.min", 1, w => w.Add(0x80));
        s.Entry("i8.neg", 1, w => w.Add(0xFF));
        s.Entry("s.empty", 11, w => w.String(""));
        s.Entry("s.non-ascii", 11, w => w.String("héllo ✓ 日本語 🙂 \0 end"));
        s.Entry("u16.max", 2, w => w.U16(ushort.MaxValue));
        s.Entry("u32.max", 4, w => w.U32(uint.MaxValue));
        s.Entry("u64.max", 6, w => w.U64(ulong.MaxValue));
        s.Entry("u8.max", 0, w => w.Add(0xFF));
        s.Entry("u8.zero", 0, w => w.Add(0));
        count = s.Count;
        return s.ToArray();
    }

    /// <summary>One array per element type, including empty arrays and arrays of strings.</summary>
    private static byte[] HandEncodedArrays(out uint count)
    {
        var s = new SpecEncoder();
        for (byte type = 0; type <= 11; type++)
        {
            s.Array($"a.{type:D2}.empty", type, 0, _ => { });
        }

        s.Array("a.00.u8", 0, 3, w => w.Add(0, 0x7F, 0xFF));
        s.Array("a.01.i8", 1, 3, w => w.Add(0x80, 0xFF, 0x01));
        s.Array("a.02.u16", 2, 2, w => { w.U16(0); w.U16(0xFFFF); });
        s.Array("a.03.i16", 3, 2, w => { w.U16(0x8000); w.U16(0xFFFF); });
        s.Array("a.04.u32", 4, 2, w => { w.U32(1); w.U32(uint.MaxValue); });
        s.Array("a.05.i32", 5, 2, w => { w.U32(0x80000000); w.U32(0xFFFFFFFF); });
        s.Array("a.06.u64", 6, 2, w => { w.U64(0); w.U64(ulong.MaxValue); });
        s.Array("a.07.i64", 7, 2, w => { w.U64(0x8000000000000000); w.U64(ulong.MaxValue); });
        s.Array("a.08.f32", 8, 5, w => { w.U32(0x7FC12345); w.U32(0xFF800000); w.U32(0x80000000); w.U32(1); w.U32(0x3F800000); });
        s.Array("a.09.f64", 9, 4, w => { w.U64(0x7FF0000000000001); w.U64(0xFFF0000000000000); w.U64(0x8000000000000000); w.U64(1); });
        s.Array("a.10.bool", 10, 3, w => w.Add(1, 0, 1));
        s.Array("a.11.strings", 11, 4, w => { w.String("L0.qkv"); w.String(""); w.String("ü✓🙂"); w.String("x"); });
        count = s.Count;
        return s.ToArray();
    }

    [Theory]
    [InlineData("scalars")]
    [InlineData("arrays")]
    public void Metadata_EveryValueType_DecodesAndReencodesBitExact(string which)
    {
        byte[] section = which == "scalars" ? HandEncodedScalars(out uint count) : HandEncodedArrays(out count);
        GlqMetadata decoded = GlqMetadata.Decode(section, count, "hand");
        Assert.Equal((int)count, decoded.Count);
        Assert.Equal(section, decoded.Encode());
    }

    [Theory]
    [InlineData("scalars")]
    [InlineData("arrays")]
    public void Metadata_EveryValueType_RoundTripsThroughAFileBitExact(string which)
    {
        byte[] section = which == "scalars" ? HandEncodedScalars(out uint count) : HandEncodedArrays(out count);
        GlqMetadata source = GlqMetadata.Decode(section, count, "hand");

        // Copy the values into a fresh metadata object (as a converter would), write, and read back.
        var copy = new GlqMetadata();
        foreach ((string key, GlqValue value) in source.Entries.Reverse())
        {
            copy.Set(key, value);
        }

        using var dir = new TempDirectory();
        string path = dir.File("values.glq");
        Write(path, copy, []);
        byte[] raw = File.ReadAllBytes(path);
        Assert.Equal(section, raw.AsSpan(128, section.Length).ToArray());

        using var file = GlqFile.Open(path);
        Assert.Equal(count, file.Header.MetadataCount);
        Assert.Equal(section, file.Metadata.Encode());
        Assert.Equal(source.Entries, file.Metadata.Entries);
    }

    [Fact]
    public void Metadata_ScalarValues_AreReadWithTheirTypesAndExactValues()
    {
        GlqMetadata m = GlqMetadata.Decode(HandEncodedScalars(out uint count), count, "hand");
        Assert.False(m.GetBool("b.bool.false"));
        Assert.True(m.GetBool("b.bool.true"));
        Assert.Equal(0x7FF8000000ABCDEFUL, BitConverter.DoubleToUInt64Bits(m.GetDouble("f64.nan.payload")));
        Assert.Equal(0x7FF0000000000001UL, BitConverter.DoubleToUInt64Bits(m.GetDouble("f64.nan.signalling")));
        Assert.Equal(0x8000000000000000UL, BitConverter.DoubleToUInt64Bits(m.GetDouble("f64.neg.zero")));
        Assert.Equal(double.NegativeInfinity, m.GetDouble("f64.neg.inf"));
        Assert.Equal(0x7FC12345u, BitConverter.SingleToUInt32Bits((float)m.GetDouble("f32.nan.payload")));
        Assert.Equal(float.PositiveInfinity, (float)m.GetDouble("f32.inf"));
        Assert.Equal(0x80000000u, BitConverter.SingleToUInt32Bits((float)m.GetDouble("f32.neg.zero")));
        Assert.Equal(float.Epsilon, (float)m.GetDouble("f32.subnormal"));
        Assert.Equal(short.MinValue, m.GetInt32("i16.min"));
        Assert.Equal(-2, m.GetInt32("i16.neg"));
        Assert.Equal(int.MinValue, m.GetInt32("i32.min"));
        Assert.Equal(-123456, m.GetInt32("i32.neg"));
        Assert.Equal(long.MinValue, (long)m.Find("i64.min")!.Raw);
        Assert.Equal(-9876543210L, (long)m.Find("i64.neg")!.Raw);
        Assert.Equal(sbyte.MinValue, m.GetInt32("i8.min"));
        Assert.Equal(-1, m.GetInt32("i8.neg"));
        Assert.Equal("", m.GetString("s.empty"));
        Assert.Equal("héllo ✓ 日本語 🙂 \0 end", m.GetString("s.non-ascii"));
        Assert.Equal(65535u, m.GetUInt32("u16.max"));
        Assert.Equal(uint.MaxValue, m.GetUInt32("u32.max"));
        Assert.Equal(ulong.MaxValue, m.GetUInt64("u64.max"));
        Assert.Equal(255u, m.GetUInt32("u8.max"));
        Assert.Equal(0u, m.GetUInt32("u8.zero"));
        Assert.Equal(GlqValueType.I8, m.Find("i8.neg")!.Type);
        Assert.Equal(GlqValueType.U16, m.Find("u16.max")!.Type);
    }

    [Fact]
    public void Metadata_ArrayValues_AreReadAsTypedArraysWithExactElements()
    {
        GlqMetadata m = GlqMetadata.Decode(HandEncodedArrays(out uint count), count, "hand");
        Assert.Equal([0, 0x7F, 0xFF], m.GetArray<byte>("a.00.u8", GlqValueType.U8));
        Assert.Equal([-128, -1, 1], m.GetArray<sbyte>("a.01.i8", GlqValueType.I8));
        Assert.Equal([0, 0xFFFF], m.GetArray<ushort>("a.02.u16", GlqValueType.U16));
        Assert.Equal([short.MinValue, -1], m.GetArray<short>("a.03.i16", GlqValueType.I16));
        Assert.Equal([1u, uint.MaxValue], m.GetArray<uint>("a.04.u32", GlqValueType.U32));
        Assert.Equal([int.MinValue, -1], m.GetArray<int>("a.05.i32", GlqValueType.I32));
        Assert.Equal([0UL, ulong.MaxValue], m.GetArray<ulong>("a.06.u64", GlqValueType.U64));
        Assert.Equal([long.MinValue, -1L], m.GetArray<long>("a.07.i64", GlqValueType.I64));
        Assert.Equal(
            [0x7FC12345u, 0xFF800000u, 0x80000000u, 1u, 0x3F800000u],
            m.GetArray<float>("a.08.f32", GlqValueType.F32).Select(BitConverter.SingleToUInt32Bits));
        Assert.Equal(
            [0x7FF0000000000001UL, 0xFFF0000000000000UL, 0x8000000000000000UL, 1UL],
            m.GetArray<double>("a.09.f64", GlqValueType.F64).Select(BitConverter.DoubleToUInt64Bits));
        Assert.Equal([true, false, true], m.GetArray<bool>("a.10.bool", GlqValueType.Bool));
        Assert.Equal(["L0.qkv", "", "ü✓🙂", "x"], m.GetArray<string>("a.11.strings", GlqValueType.String));
        Assert.Empty(m.GetArray<string>("a.11.empty", GlqValueType.String));
        Assert.Empty(m.GetArray<double>("a.09.empty", GlqValueType.F64));
        Assert.Empty(m.GetArray<byte>("a.00.empty", GlqValueType.U8));
    }

    [Fact]
    public void Metadata_F32ArrayWithSignallingNaN_IsWrittenBitExact()
    {
        // Built from bytes at run time: the JIT folds float constants through double, which would quiet the NaN
        // before the code under test ever sees it.
        float[] values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(
            new byte[] { 0x01, 0x00, 0x80, 0x7F, 0xFF, 0xFF, 0xBF, 0xFF }).ToArray();
        byte[] encoded = new GlqMetadata().Set("s", GlqValue.Floats(values)).Encode();
        Assert.Equal(0x7F800001u, BinaryPrimitives.ReadUInt32LittleEndian(encoded.AsSpan(encoded.Length - 8)));
        Assert.Equal(0xFFBFFFFFu, BinaryPrimitives.ReadUInt32LittleEndian(encoded.AsSpan(encoded.Length - 4)));
        float[] read = GlqMetadata.Decode(encoded, 1, "s").GetArray<float>("s", GlqValueType.F32);
        Assert.Equal([0x7F800001u, 0xFFBFFFFFu], read.Select(BitConverter.SingleToUInt32Bits));
    }

    [Fact]
    public void Metadata_GettersWithTheWrongType_NameTheKeyAndBothTypes()
    {
        GlqMetadata m = GlqSamples.SampleMetadata();
        var e = Assert.Throws<ModelFormatException>(() => m.GetString("model.dim"));
        Assert.Equal("metadata: metadata key 'model.dim' should be string, found u32", e.Message);
        e = Assert.Throws<ModelFormatException>(() => m.GetUInt32("general.name"));
        Assert.Contains("'general.name'", e.Message);
        e = Assert.Throws<ModelFormatException>(() => m.GetUInt32("model.bos_id"));
        Assert.Contains("-1, outside [0, 4294967295]", e.Message);
        e = Assert.Throws<ModelFormatException>(() => m.GetArray<int>("glowq.units", GlqValueType.I32));
        Assert.Contains("should be array of i32, found array of string", e.Message);
        e = Assert.Throws<ModelFormatException>(() => m.GetString("no.such.key"));
        Assert.Contains("required metadata key 'no.such.key' (string) is missing", e.Message);
    }

    // ---- atomicity and misuse ----

    [Fact]
    public void Dispose_WithoutCommit_LeavesNoDestinationAndNoTemporaryFile()
    {
        using var dir = new TempDirectory();
        string path = dir.File("never.glq");
        using (var writer = GlqWriter.Create(path, GlqSamples.SampleMetadata(), [new("w", GlqDType.U8, 4)]))
        {
            writer.WriteTensor("w", [1, 2, 3, 4]);
            Assert.False(File.Exists(path), "the destination appears only on Commit");
            string temporary = Assert.Single(Directory.GetFiles(dir.Path));
            Assert.StartsWith(".never.glq.", Path.GetFileName(temporary), StringComparison.Ordinal);
        }

        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void WriteFailingMidway_OverAnExistingFile_LeavesItByteIdentical()
    {
        using var dir = new TempDirectory();
        string path = dir.File("model.glq");
        byte[] existing = GlqSamples.WriteSample(path);

        using (var writer = GlqWriter.Create(path, new GlqMetadata(), [new("a", GlqDType.U8, 4), new("b", GlqDType.F32, 2)]))
        {
            writer.WriteTensor("a", [9, 9, 9, 9]);
            Assert.Throws<ArgumentException>(() => writer.WriteTensor("b", new byte[7]));
            Assert.Equal(existing, File.ReadAllBytes(path));
        }

        Assert.Equal(existing, File.ReadAllBytes(path));
        Assert.Equal([path], Directory.GetFiles(dir.Path));
        using var file = GlqFile.Open(path);
        Assert.Equal(GlqSamples.SampleTensors().Length, file.Tensors.Count);
    }

    [Fact]
    public void Commit_OverAnExistingFile_ReplacesIt()
    {
        using var dir = new TempDirectory();
        string path = dir.File("model.glq");
        GlqSamples.WriteSample(path);
        Write(path, new GlqMetadata().Set("v", GlqValue.U8(2)), [(new GlqTensorSpec("only", GlqDType.U8, 3), [1, 2, 3])]);

        using var file = GlqFile.Open(path);
        Assert.Equal("only", Assert.Single(file.Tensors).Name);
        Assert.Equal([path], Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Commit_WithTensorsMissing_ThrowsAndLeavesNothing()
    {
        using var dir = new TempDirectory();
        string path = dir.File("partial.glq");
        using (var writer = GlqWriter.Create(path, new GlqMetadata(), [new("a", GlqDType.U8, 4), new("b", GlqDType.U8, 4)]))
        {
            writer.Append([1, 2, 3, 4, 5]);
            var e = Assert.Throws<InvalidOperationException>(writer.Commit);
            Assert.Contains("'b'", e.Message);
            Assert.Contains("1 of 2 missing", e.Message);
        }

        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void Commit_AfterMetadataChangedSinceCreate_WritesTheMetadataAsItWasAtCreate()
    {
        using var dir = new TempDirectory();
        string path = dir.File("m.glq");
        var metadata = new GlqMetadata().Set("a", GlqValue.U32(1));
        using (var writer = GlqWriter.Create(path, metadata, []))
        {
            metadata.Set("b", GlqValue.U32(2));
            writer.Commit();
        }

        using var file = GlqFile.Open(path);
        Assert.Equal(1u, file.Header.MetadataCount);
        Assert.Equal(1u, file.Metadata.GetUInt32("a"));
        Assert.False(file.Metadata.Contains("b"));
    }

    [Fact]
    public void WriteTensor_OutOfOrder_Throws()
    {
        using var dir = new TempDirectory();
        using var writer = GlqWriter.Create(dir.File("o.glq"), new GlqMetadata(), [new("b", GlqDType.U8, 1), new("a", GlqDType.U8, 1)]);
        var e = Assert.Throws<InvalidOperationException>(() => writer.WriteTensor("a", [1]));
        Assert.Contains("'b' is next", e.Message);
        writer.WriteTensor("b", [1]);
        writer.WriteTensor("a", [2]);
        Assert.Throws<InvalidOperationException>(() => writer.WriteTensor("c", [3]));
    }

    [Fact]
    public void WriteTensor_WrongSize_Throws()
    {
        using var dir = new TempDirectory();
        using var writer = GlqWriter.Create(dir.File("s.glq"), new GlqMetadata(), [new("u4", GlqDType.U4, 3, 5)]);
        Assert.Throws<ArgumentException>(() => writer.WriteTensor("u4", new byte[8]));
        Assert.Throws<ArgumentException>(() => writer.WriteTensor("u4", new byte[10]));
        Assert.Throws<ArgumentException>(() => writer.WriteTensor("u4", new byte[15]));
        writer.Append(new byte[4]);
        Assert.Throws<ArgumentException>(() => writer.WriteTensor("u4", new byte[9])); // part of it is already written
    }

    [Fact]
    public void Append_MoreBytesThanDeclared_Throws()
    {
        using var dir = new TempDirectory();
        using var writer = GlqWriter.Create(dir.File("x.glq"), new GlqMetadata(), [new("a", GlqDType.U8, 2)]);
        Assert.Throws<InvalidOperationException>(() => writer.Append([1, 2, 3]));
    }

    [Theory]
    [InlineData("dup")]
    [InlineData("bad name")]
    [InlineData("empty name")]
    [InlineData("rank 0")]
    [InlineData("rank 5")]
    [InlineData("dimension 0")]
    [InlineData("dimension 2^32+1")]
    [InlineData("overflow")]
    public void Create_InvalidSpecs_ThrowsAndCreatesNoFile(string problem)
    {
        GlqTensorSpec[] specs = problem switch
        {
            "dup" => [new("a", GlqDType.U8, 1), new("a", GlqDType.U8, 1)],
            "bad name" => [new("a/b", GlqDType.U8, 1)],
            "empty name" => [new("", GlqDType.U8, 1)],
            "rank 0" => [new("a", GlqDType.U8)],
            "rank 5" => [new("a", GlqDType.U8, 1, 1, 1, 1, 1)],
            "dimension 0" => [new("a", GlqDType.U8, 2, 0)],
            "dimension 2^32+1" => [new("a", GlqDType.U8, (1L << 32) + 1)],
            _ => [new("a", GlqDType.F32, 1L << 32, 1L << 32)],
        };
        using var dir = new TempDirectory();
        Assert.Throws<ArgumentException>(() => GlqWriter.Create(dir.File("bad.glq"), new GlqMetadata(), specs));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void Set_InvalidKey_Throws()
    {
        var m = new GlqMetadata();
        Assert.Throws<ArgumentException>(() => m.Set("Upper", GlqValue.U8(1)));
        Assert.Throws<ArgumentException>(() => m.Set("", GlqValue.U8(1)));
        Assert.Throws<ArgumentException>(() => m.Set(new string('a', 257), GlqValue.U8(1)));
        m.Set(new string('a', 256), GlqValue.U8(1));
        Assert.Equal(1, m.Count);
    }

    /// <summary>Encodes metadata entries straight from the spec's tables, independently of GlqMetadata; entries in ordinal key order.</summary>
    private sealed class SpecEncoder
    {
        private readonly SortedDictionary<string, byte[]> _entries = new(StringComparer.Ordinal);
        private List<byte> _bytes = [];

        public uint Count => (uint)_entries.Count;

        public void Entry(string key, byte type, Action<SpecEncoder> value)
        {
            _bytes = [];
            Key(key);
            Add(type);
            value(this);
            _entries.Add(key, [.. _bytes]);
        }

        public void Array(string key, byte elementType, ulong count, Action<SpecEncoder> values)
        {
            _bytes = [];
            Key(key);
            Add(12, elementType);
            U64(count);
            values(this);
            _entries.Add(key, [.. _bytes]);
        }

        public void Add(params byte[] bytes) => _bytes.AddRange(bytes);

        public void U16(ushort v) => Add(Le(2, v));

        public void U32(uint v) => Add(Le(4, v));

        public void U64(ulong v) => Add(Le(8, v));

        public void String(string s)
        {
            byte[] utf8 = Encoding.UTF8.GetBytes(s);
            U32((uint)utf8.Length);
            Add(utf8);
        }

        public byte[] ToArray() => [.. _entries.Values.SelectMany(e => e)];

        private static byte[] Le(int count, ulong v)
        {
            var b = new byte[count];
            for (int i = 0; i < b.Length; i++)
            {
                b[i] = (byte)(v >> (8 * i));
            }

            return b;
        }

        private void Key(string key)
        {
            U16((ushort)key.Length);
            Add(Encoding.ASCII.GetBytes(key));
        }
    }
}
