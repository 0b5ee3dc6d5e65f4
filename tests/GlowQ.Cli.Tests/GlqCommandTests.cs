using System.Text.Json;
using GlowQ.Format.Glq;
using GlowQ.TestSupport;
using GlowQ.Tokenizers;

namespace GlowQ.Cli.Tests;

/// <summary><c>glowq inspect</c> and <c>glowq verify</c> on tiny .glq models, sound and damaged.</summary>
public sealed class GlqCommandTests
{
    private static string Write(TempDirectory dir, TinyGlqOptions? options = null, string name = "tiny.glq") =>
        TinyGlqModel.WriteFile(dir.File(name), options);

    private static JsonElement InspectJson(string path, int expectedExit = 0)
    {
        CliRun run = CliRun.Of("inspect", path, "--json");
        Assert.Equal(expectedExit, run.ExitCode);
        string[] lines = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        return JsonDocument.Parse(lines[0]).RootElement.Clone();
    }

    private static void FlipByte(string path, long offset)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = offset;
        int b = stream.ReadByte();
        stream.Position = offset;
        stream.WriteByte((byte)(b ^ 0x5A));
    }

    // ---- inspect ----

    [Fact]
    public void Inspect_prints_header_metadata_model_units_tensors_totals_and_bits_per_weight()
    {
        using var dir = new TempDirectory();
        CliRun run = CliRun.Of("inspect", Write(dir));
        Assert.Equal(0, run.ExitCode);
        Assert.Equal("", run.Stderr);
        string o = run.Stdout;
        Assert.Contains("file: tiny.glq (30273 bytes)", o);
        Assert.Contains("version           1.0", o);
        Assert.Contains("tensor_alignment  256", o);
        Assert.Contains("metadata          offset 128, length 2367, 61 entries", o);
        Assert.Contains("data              offset 8192, length 22081", o);
        Assert.Contains("metadata (61 entries):", o);
        Assert.Contains("glowq.mask.default          array of u8      [1, 0, 1, 1, 0, 0, 1, 0]", o);
        Assert.Contains("model.norm_eps              f32              1E-05", o);
        Assert.Contains("model: LlamaForCausalLM, dim 16, hidden 36, 2 layers, 4/2 heads of 4, vocab 32", o);
        Assert.Contains("quantisation: 4-bit asymmetric, group 8, f16 scales, base rtn, head f16", o);
        Assert.Contains("method: glowq, 8 units, requested rank 4, 4 restored by the default mask", o);
        Assert.Contains("unit     rank  mask    gsvd  norm_error  members", o);
        Assert.Contains("l0.qkv      4     1  1.3364         0.5  q_proj, k_proj, v_proj", o);
        Assert.Contains("model.layers.0.mlp.down_proj.qweight            U4     [16, 40]    320    6656  qweight", o);
        Assert.Contains("base int4 (qweight)", o);
        Assert.Contains("all tensors                                             71   9201  100.0%", o);
        Assert.Contains("projections  12.3333", o);
        Assert.Contains("file         43.3711", o);
    }

    [Theory]
    [InlineData("glowq", false, true)]
    [InlineData("layerwise", true, false)]
    [InlineData("rtn", true, true)]
    public void Inspect_json_is_one_object_whose_totals_add_up_to_the_tensor_bytes(string method, bool bias, bool tied)
    {
        using var dir = new TempDirectory();
        string path = Write(dir, new TinyGlqOptions { Method = method, QkvBias = bias, TiedEmbeddings = tied });
        JsonElement j = InspectJson(path);
        using GlqFile file = GlqFile.Open(path);

        JsonElement totals = j.GetProperty("totals");
        long tensorBytes = file.Tensors.Sum(t => (long)t.Length);
        string[] kinds = ["qweight", "scales_zeros", "a", "b", "other"];
        Assert.Equal(tensorBytes, kinds.Sum(k => totals.GetProperty(k).GetProperty("bytes").GetInt64()));
        Assert.Equal(file.Tensors.Count, kinds.Sum(k => totals.GetProperty(k).GetProperty("tensors").GetInt32()));
        Assert.Equal(tensorBytes, totals.GetProperty("tensor_bytes").GetInt64());
        Assert.Equal(file.FileLength, totals.GetProperty("file_bytes").GetInt64());
        Assert.Equal(file.FileLength, tensorBytes + totals.GetProperty("other_file_bytes").GetInt64());

        // Each kind's total is the sum of the tensors the JSON labels with it.
        JsonElement[] tensors = [.. j.GetProperty("tensors").EnumerateArray()];
        Assert.Equal(file.Tensors.Count, tensors.Length);
        foreach (string kind in kinds)
        {
            Assert.Equal(totals.GetProperty(kind).GetProperty("bytes").GetInt64(),
                tensors.Where(t => t.GetProperty("kind").GetString() == kind).Sum(t => t.GetProperty("bytes").GetInt64()));
        }

        Assert.Equal(method == "rtn" ? 0 : file.Tensors.Count(t => t.Name.EndsWith(".B", StringComparison.Ordinal)), totals.GetProperty("b").GetProperty("tensors").GetInt32());
        Assert.Equal(file.Metadata.Count, j.GetProperty("metadata").EnumerateObject().Count());
        Assert.Equal(method, j.GetProperty("method").GetString());
        Assert.Equal(file.Header.Checksum.ToString("x16"), j.GetProperty("header").GetProperty("header_checksum").GetString());
    }

    [Theory]
    [InlineData("glowq", false, true, 4)]
    [InlineData("layerwise", true, false, 20)]
    [InlineData("rtn", false, false, 4)]
    public void Inspect_json_bits_per_weight_follow_the_documented_formulas(string method, bool bias, bool tied, int rank)
    {
        using var dir = new TempDirectory();
        string path = Write(dir, new TinyGlqOptions { Method = method, QkvBias = bias, TiedEmbeddings = tied, Rank = rank });
        JsonElement j = InspectJson(path);
        JsonElement model = j.GetProperty("model");
        int d = model.GetProperty("dim").GetInt32(), h = model.GetProperty("hidden_dim").GetInt32(), layers = model.GetProperty("layers").GetInt32();
        int q = model.GetProperty("heads").GetInt32() * model.GetProperty("head_dim").GetInt32();
        int kv = model.GetProperty("kv_heads").GetInt32() * model.GetProperty("head_dim").GetInt32();
        int vocab = model.GetProperty("vocab_size").GetInt32();

        // (a) projections: 8 × stored bytes of qweight, scales, zeros, A, B and biases ÷ unpadded d_out × d_in.
        long weights = layers * ((long)q * d + 2L * kv * d + (long)d * q + 2L * h * d + (long)d * h);
        long projectionBytes = j.GetProperty("tensors").EnumerateArray()
            .Where(t => t.GetProperty("kind").GetString() is "qweight" or "scales_zeros" or "a" or "b" || t.GetProperty("name").GetString()!.EndsWith(".bias", StringComparison.Ordinal))
            .Sum(t => t.GetProperty("bytes").GetInt64());
        JsonElement bpw = j.GetProperty("bits_per_weight");
        Assert.Equal(weights, bpw.GetProperty("projection_weights").GetInt64());
        Assert.Equal(projectionBytes, bpw.GetProperty("projection_bytes").GetInt64());
        Assert.Equal(8.0 * projectionBytes / weights, bpw.GetProperty("projections").GetDouble(), 12);

        // (b) file: 8 × file bytes ÷ parameters (projections, biases, embedding, untied head, norms).
        long parameters = weights + (bias ? layers * (q + 2L * kv) : 0) + (long)vocab * d * (tied ? 1 : 2) + (long)d * (2 * layers + 1);
        Assert.Equal(parameters, bpw.GetProperty("parameters").GetInt64());
        Assert.Equal(8.0 * new FileInfo(path).Length / parameters, bpw.GetProperty("file").GetDouble(), 12);
    }

    [Fact]
    public void Inspect_json_lists_units_with_members_rank_mask_and_every_score()
    {
        using var dir = new TempDirectory();
        JsonElement j = InspectJson(Write(dir, new TinyGlqOptions { Rank = 20 }));
        JsonElement[] units = [.. j.GetProperty("units").EnumerateArray()];
        Assert.Equal(8, units.Length);
        JsonElement mlp = units[2];
        Assert.Equal("l0.mlp", mlp.GetProperty("name").GetString());
        Assert.Equal(["model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj"], mlp.GetProperty("members").EnumerateArray().Select(m => m.GetString()));
        Assert.Equal(16, mlp.GetProperty("rank").GetInt32());
        Assert.InRange(mlp.GetProperty("mask").GetInt32(), 0, 1);
        Assert.Equal(["gsvd", "norm_error"], mlp.GetProperty("scores").EnumerateObject().Select(p => p.Name));
        Assert.Equal(0.1667, mlp.GetProperty("scores").GetProperty("norm_error").GetDouble(), 6);
        Assert.Equal("array of f32", j.GetProperty("metadata").GetProperty("glowq.score.gsvd").GetProperty("type").GetString());
        Assert.Equal(8, j.GetProperty("metadata").GetProperty("glowq.score.gsvd").GetProperty("count").GetInt32());
        Assert.Equal(1e-5, j.GetProperty("metadata").GetProperty("model.norm_eps").GetProperty("value").GetDouble());
    }

    [Fact]
    public void Inspect_of_a_sound_file_with_a_bad_model_prints_the_structure_then_one_error_line_and_exits_1()
    {
        using var dir = new TempDirectory();
        string path = TinyGlqModel.Create().SetKey("glowq.method", GlqValue.String("svd")).Write(dir.File("bad.glq"));
        CliRun run = CliRun.Of("inspect", path);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("header:", run.Stdout);
        Assert.Contains("tensors (71, directory order):", run.Stdout);
        Assert.Contains("bytes by kind:", run.Stdout);
        Assert.DoesNotContain("bits per weight", run.Stdout);
        Assert.Contains("bad.glq: metadata key 'glowq.method' is 'svd'", run.SingleErrorLine());

        JsonElement j = InspectJson(path, expectedExit: 1);
        Assert.Equal(71, j.GetProperty("tensors").GetArrayLength());
        Assert.False(j.TryGetProperty("model", out _));
        Assert.False(j.TryGetProperty("bits_per_weight", out _));
    }

    [Fact]
    public void Inspect_elides_long_arrays_and_escapes_control_characters_so_each_key_stays_on_one_line()
    {
        using var dir = new TempDirectory();
        string path = TinyGlqModel.Create()
            .SetKey("chat.template", GlqValue.String("{% for m in messages %}\n{{ m.content }}\n{% endfor %}"))
            .SetKey("general.long", GlqValue.UInt32s(Enumerable.Range(0, 1000).Select(i => (uint)i)))
            .Write(dir.File("t.glq"));
        CliRun run = CliRun.Of("inspect", path);
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("{% for m in messages %}\\n{{ m.content }}\\n{% endfor %}", run.Stdout);
        Assert.Contains("[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, … (1000 items)]", run.Stdout);

        JsonElement j = InspectJson(path);
        JsonElement longArray = j.GetProperty("metadata").GetProperty("general.long");
        Assert.Equal(1000, longArray.GetProperty("count").GetInt32());
        Assert.True(longArray.GetProperty("elided").GetBoolean());
        Assert.True(longArray.GetProperty("value").GetArrayLength() < 1000);
        Assert.Equal("{% for m in messages %}\n{{ m.content }}\n{% endfor %}", j.GetProperty("metadata").GetProperty("chat.template").GetProperty("value").GetString());
    }

    [Fact]
    public void Inspect_json_writes_nan_scores_as_strings_so_the_output_stays_valid_json()
    {
        using var dir = new TempDirectory();
        string path = TinyGlqModel.Create().SetKey("glowq.score.gsvd", GlqValue.Floats([float.NaN, 1, 1, 1, 1, 1, 1, float.PositiveInfinity])).Write(dir.File("nan.glq"));
        JsonElement j = InspectJson(path);
        Assert.Equal("NaN", j.GetProperty("units")[0].GetProperty("scores").GetProperty("gsvd").GetString());
        Assert.Equal("Infinity", j.GetProperty("metadata").GetProperty("glowq.score.gsvd").GetProperty("value")[7].GetString());
    }

    // ---- verify ----

    [Fact]
    public void Verify_of_a_sound_file_prints_ok_with_tensor_count_and_bytes_and_exits_0()
    {
        using var dir = new TempDirectory();
        CliRun run = CliRun.Of("verify", Write(dir));
        Assert.Equal(0, run.ExitCode);
        Assert.Equal("ok: 71 tensors, 9201 bytes verified", run.Stdout.TrimEnd());
        Assert.Equal("", run.Stderr);
    }

    [Theory]
    [InlineData("layerwise", true, false)]
    [InlineData("rtn", false, true)]
    public void Verify_accepts_every_method(string method, bool bias, bool tied)
    {
        using var dir = new TempDirectory();
        string path = Write(dir, new TinyGlqOptions { Method = method, QkvBias = bias, TiedEmbeddings = tied });
        using GlqFile file = GlqFile.Open(path);
        CliRun run = CliRun.Of("verify", path);
        Assert.Equal(0, run.ExitCode);
        Assert.Equal($"ok: {file.Tensors.Count} tensors, {file.Tensors.Sum(t => (long)t.Length)} bytes verified", run.Stdout.TrimEnd());
    }

    [Theory]
    [InlineData("model.layers.1.mlp.down_proj.qweight", 0)]
    [InlineData("glowq.l0.qkv.B", 127)]
    [InlineData("tokenizer.file", 320)]
    public void Verify_of_a_file_with_one_flipped_data_byte_exits_1_naming_the_tensor(string tensor, int byteInTensor)
    {
        using var dir = new TempDirectory();
        string path = Write(dir);
        long at;
        using (GlqFile file = GlqFile.Open(path))
        {
            at = (long)(file.Header.DataOffset + file.RequireTensor(tensor).Offset) + byteInTensor;
        }

        FlipByte(path, at);
        CliRun run = CliRun.Of("verify", path);
        Assert.Equal(1, run.ExitCode);
        Assert.Equal("", run.Stdout);
        string line = run.SingleErrorLine();
        Assert.Contains($"tensor '{tensor}' checksum mismatch", line);
        Assert.Contains("corrupt", line);
    }

    [Fact]
    public void Verify_of_a_file_with_two_corrupt_tensors_names_the_first_and_counts_the_rest()
    {
        using var dir = new TempDirectory();
        string path = Write(dir);
        long first, second;
        using (GlqFile file = GlqFile.Open(path))
        {
            first = (long)(file.Header.DataOffset + file.RequireTensor("model.embed_tokens.weight").Offset);
            second = (long)(file.Header.DataOffset + file.RequireTensor("model.norm.weight").Offset);
        }

        FlipByte(path, first);
        FlipByte(path, second);
        string line = CliRun.Of("verify", path).SingleErrorLine();
        Assert.Contains("tensor 'model.embed_tokens.weight' checksum mismatch", line);
        Assert.Contains("(1 more corrupt: 'model.norm.weight')", line);
    }

    [Fact]
    public void Verify_of_a_file_with_a_non_zero_padding_byte_exits_1()
    {
        using var dir = new TempDirectory();
        string path = Write(dir);
        long at;
        using (GlqFile file = GlqFile.Open(path))
        {
            GlqTensorInfo norm = file.RequireTensor("model.layers.0.input_layernorm.weight");
            at = (long)(file.Header.DataOffset + norm.Offset + norm.Length) + 7; // inside the zero padding after this 32-byte tensor
        }

        FlipByte(path, at);
        CliRun run = CliRun.Of("verify", path);
        Assert.Equal(1, run.ExitCode);
        string line = run.SingleErrorLine();
        Assert.Contains($"byte {at} between tensor 'model.layers.0.input_layernorm.weight' and tensor", line);
        Assert.Contains("padding must be zero", line);
    }

    [Fact]
    public void Verify_of_a_truncated_file_exits_1_saying_so()
    {
        using var dir = new TempDirectory();
        string path = Write(dir);
        byte[] bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 100)]);
        CliRun run = CliRun.Of("verify", path);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("truncated", run.SingleErrorLine());
    }

    [Fact]
    public void Verify_of_a_file_cut_inside_the_header_exits_1()
    {
        using var dir = new TempDirectory();
        string path = Write(dir);
        File.WriteAllBytes(path, File.ReadAllBytes(path)[..60]);
        CliRun run = CliRun.Of("verify", path);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("shorter than the 128-byte .glq header", run.SingleErrorLine());
    }

    [Fact]
    public void Verify_of_a_missing_file_exits_1_naming_it()
    {
        CliRun run = CliRun.Of("verify", "/nonexistent/model.glq");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("/nonexistent/model.glq", run.SingleErrorLine());
    }

    [Fact]
    public void Verify_and_inspect_of_a_file_that_is_not_glq_exit_1_saying_so()
    {
        using var dir = new TempDirectory();
        string text = dir.Write("notes.glq", string.Concat(Enumerable.Repeat("not a model at all\n", 20)));
        string empty = dir.Write("empty.glq", "");
        foreach (string verb in new[] { "verify", "inspect" })
        {
            CliRun run = CliRun.Of(verb, text);
            Assert.Equal(1, run.ExitCode);
            Assert.Contains("not a .glq file", run.SingleErrorLine());
            Assert.Equal(1, CliRun.Of(verb, empty).ExitCode);
            Assert.Contains("empty", CliRun.Of(verb, empty).SingleErrorLine());
        }
    }

    [Fact]
    public void Verify_of_a_sound_file_with_a_bad_model_exits_1_naming_the_tensor()
    {
        using var dir = new TempDirectory();
        string path = TinyGlqModel.Create().RemoveTensor("glowq.l1.down.B").Write(dir.File("bad.glq"));
        CliRun run = CliRun.Of("verify", path);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("bad.glq: tensor 'glowq.l1.down.B' is missing", run.SingleErrorLine());
    }

    [Fact]
    public void Verify_and_inspect_of_a_file_with_a_corrupt_directory_exit_1_without_a_stack_trace()
    {
        using var dir = new TempDirectory();
        string path = Write(dir);
        FlipByte(path, 2496 + 10); // inside the first directory entry's name
        foreach (string verb in new[] { "verify", "inspect" })
        {
            CliRun run = CliRun.Of(verb, path);
            Assert.Equal(1, run.ExitCode);
            Assert.Contains("header.checksum", run.SingleErrorLine());
        }
    }

    // ---- usage ----

    [Theory]
    [InlineData("inspect", "--json")]
    [InlineData("verify", "ok: N tensors, M bytes verified")]
    public void Help_describes_each_verb_and_its_file_argument(string verb, string mentioned)
    {
        CliRun run = CliRun.Of(verb, "--help");
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("<FILE>", run.Stdout);
        Assert.Contains(mentioned, run.Stdout);
    }

    [Theory]
    [InlineData("inspect")]
    [InlineData("verify")]
    public void A_verb_without_its_file_is_a_usage_error(string verb)
    {
        CliRun run = CliRun.Of(verb);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("FILE", run.Stderr);
    }

    [Fact]
    public void The_tokenizer_TinyGlqModel_embeds_is_a_valid_llama2c_tokenizer_of_the_model_vocabulary()
    {
        var tokenizer = Llama2cTokenizer.Parse(TinyGlqModel.TokenizerBytes(), "tokenizer.file", TinyGlqModel.VocabSize);
        int[] ids = tokenizer.Encode("the cat", addBos: true);
        Assert.Equal([1, 27, 3, 16, 6, 5], ids);
        Assert.Equal("the cat", tokenizer.Decode(ids));
    }
}
