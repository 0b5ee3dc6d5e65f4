using System.Buffers.Binary;
using System.Security.Cryptography;
using GlowQ.Format;
using GlowQ.Format.Glq;
using GlowQ.TestSupport;

namespace GlowQ.Format.Tests;

/// <summary>
/// formats/test-vectors/tiny-glowq-v1.glq: the bytes the product writes for the tiny model never change by accident,
/// the reader accepts them, and they hold the values formats/test-vectors/README.md documents.
/// </summary>
public sealed class GlqTestVectorTests
{
    private const string VectorName = "tiny-glowq-v1.glq";
    private const string DocumentedSha256 = "ad1f81cc8da7005dd03f9a433822bed9da7961d1538b60d7a85aec1d695e67ef";

    private static readonly Lazy<string> VectorDirectory = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "formats", "test-vectors");
            if (File.Exists(Path.Combine(candidate, VectorName)))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException($"formats/test-vectors/{VectorName} not found above {AppContext.BaseDirectory}");
    });

    private static string VectorPath => Path.Combine(VectorDirectory.Value, VectorName);

    [Fact]
    public void Regenerating_the_vector_with_TinyGlqModel_gives_exactly_the_committed_bytes()
    {
        using var dir = new TempDirectory();
        byte[] regenerated = File.ReadAllBytes(TinyGlqModel.WriteFile(dir.File(VectorName)));
        byte[] committed = File.ReadAllBytes(VectorPath);
        int firstDifference = regenerated.AsSpan().CommonPrefixLength(committed);
        Assert.True(regenerated.Length == committed.Length && firstDifference == committed.Length,
            $"the writer or TinyGlqModel changed the bytes: {regenerated.Length} vs {committed.Length} committed bytes, first difference at {firstDifference}. "
            + "If the change is deliberate, regenerate the vector and update formats/test-vectors/README.md and this test.");
    }

    [Fact]
    public void The_committed_vector_has_the_documented_sha256()
    {
        Assert.Equal(DocumentedSha256, Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(VectorPath))));
        Assert.Contains(DocumentedSha256, File.ReadAllText(Path.Combine(VectorDirectory.Value, "README.md")));
    }

    [Fact]
    public void The_header_fields_equal_the_documented_values()
    {
        using GlqFile file = GlqFile.Open(VectorPath);
        GlqHeader h = file.Header;
        Assert.Equal(
            (1, 0, 0u, 128u, 256u, 128ul, 2367ul, 2496ul, 5244ul, 8192ul, 22081ul, 30273ul, 71u, 61u, 0xb966224585a62f39ul),
            (h.MajorVersion, h.MinorVersion, h.Flags, h.HeaderSize, h.TensorAlignment, h.MetadataOffset, h.MetadataLength, h.DirectoryOffset,
                h.DirectoryLength, h.DataOffset, h.DataLength, h.FileLength, h.TensorCount, h.MetadataCount, h.Checksum));
        byte[] bytes = File.ReadAllBytes(VectorPath);
        Assert.Equal(GlqHeader.Magic.ToArray(), bytes[..8]);
        Assert.All(bytes[96..128], b => Assert.Equal(0, b));
    }

    [Fact]
    public void The_first_metadata_entry_and_the_first_directory_entry_are_as_documented()
    {
        byte[] bytes = File.ReadAllBytes(VectorPath);
        Assert.Equal("0b00" + Convert.ToHexStringLower("chat.format"u8) + "0b" + "05000000" + Convert.ToHexStringLower("plain"u8),
            Convert.ToHexStringLower(bytes.AsSpan(128, 23)));
        Assert.Equal("0a00" + Convert.ToHexStringLower("quant.bits"u8) + "00" + "04", Convert.ToHexStringLower(bytes.AsSpan(2319, 14)));

        using GlqFile file = GlqFile.Open(VectorPath);
        GlqTensorInfo first = file.Tensors[0];
        Assert.Equal(("glowq.l0.down.A.down_proj", GlqDType.F16, "[16, 4]", 11008ul, 128ul, 0x4df8b9a3fdb49eaaul),
            (first.Name, first.DType, first.ShapeText, first.Offset, first.Length, first.Checksum));
        Assert.Equal(25, BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(2496)));
    }

    [Fact]
    public void GlqFile_and_GlqModel_accept_the_vector_with_the_documented_model()
    {
        using GlqFile file = GlqFile.Open(VectorPath);
        GlqModel model = GlqModel.Read(file);
        ModelConfig c = model.Config;
        Assert.Equal(("LlamaForCausalLM", 16, 36, 2, 4, 2, 4, 32, 64), (c.Architecture, c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KvHeads, c.HeadDim, c.VocabSize, c.MaxSequenceLength));
        Assert.Equal((RopeLayout.RotateHalf, 10000.0, true, false), (c.RopeLayout, c.RopeTheta, c.TiedEmbeddings, c.QkvBias));
        Assert.Equal(new GlqQuantization(4, 8, "asymmetric", "f16", "rtn", "f16"), model.Quantization);
        Assert.Equal("glowq", model.Method);
        Assert.Equal(["l0.qkv", "l0.o", "l0.mlp", "l0.down", "l1.qkv", "l1.o", "l1.mlp", "l1.down"], model.Units.Select(u => u.Name));
        Assert.All(model.Units, u => Assert.Equal(4, u.Rank));
        Assert.Equal([1, 0, 1, 1, 0, 0, 1, 0], model.DefaultMask);
        Assert.Equal(("llama2c", "tokenizer.file", "plain"), (model.TokenizerType, model.TokenizerTensor, model.ChatFormat));
        Assert.Equal(TinyGlqModel.TokenizerBytes(), file.GetBytes(file.RequireTensor("tokenizer.file")).ToArray());
    }

    [Fact]
    public void Every_tensor_of_the_vector_verifies()
    {
        using GlqFile file = GlqFile.Open(VectorPath);
        Assert.Equal(71, file.Tensors.Count);
        foreach (GlqTensorInfo t in file.Tensors)
        {
            file.VerifyTensor(t);
        }

        Assert.Equal(9201ul, file.Tensors.Aggregate(0ul, (sum, t) => sum + t.Length));
    }

    [Fact]
    public void Tensors_are_stored_in_stream_order_each_at_the_next_aligned_offset_and_the_last_ends_the_file()
    {
        TinyGlqModel tiny = TinyGlqModel.Create();
        using GlqFile file = GlqFile.Open(VectorPath);
        ulong at = 0;
        foreach (TinyGlqTensor t in tiny.Tensors)
        {
            GlqTensorInfo info = file.RequireTensor(t.Name);
            at = GlqHeader.Align(at, 256);
            Assert.Equal(at, info.Offset);
            Assert.Equal(t.Data, file.GetBytes(info).ToArray());
            at += info.Length;
        }

        Assert.Equal(file.Header.DataLength, at);
        Assert.Equal(LlamaTensorNames.Embedding, tiny.Tensors[0].Name);
        Assert.Equal("tokenizer.file", tiny.Tensors[^1].Name);
    }

    [Fact]
    public void Padding_codes_of_down_proj_equal_the_zero_point_of_their_group_and_odd_zero_rows_end_in_a_zero_nibble()
    {
        using GlqFile file = GlqFile.Open(VectorPath);
        foreach (int layer in new[] { 0, 1 })
        {
            ReadOnlySpan<byte> q = file.GetBytes(file.RequireTensor($"model.layers.{layer}.mlp.down_proj.qweight"));
            ReadOnlySpan<byte> z = file.GetBytes(file.RequireTensor($"model.layers.{layer}.mlp.down_proj.zeros"));
            for (int row = 0; row < 16; row++)
            {
                int zeroPoint = z[row * 3 + 2] & 0xF;
                Assert.Equal(0, z[row * 3 + 2] >> 4);
                for (int col = 36; col < 40; col++)
                {
                    Assert.Equal(zeroPoint, (q[row * 20 + col / 2] >> (4 * (col % 2))) & 0xF);
                }
            }
        }
    }

    [Fact]
    public void A_different_seed_gives_a_different_file_with_the_same_layout()
    {
        using var dir = new TempDirectory();
        byte[] other = File.ReadAllBytes(TinyGlqModel.WriteFile(dir.File("seed2.glq"), new TinyGlqOptions { Seed = 2 }));
        byte[] committed = File.ReadAllBytes(VectorPath);
        Assert.Equal(committed.Length, other.Length);
        Assert.NotEqual(committed, other);
    }
}
