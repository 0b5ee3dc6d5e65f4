using GlowQ.Format;
using GlowQ.Format.Glq;
using GlowQ.TestSupport;

namespace GlowQ.Format.Tests;

/// <summary>
/// GlqModel.Read (formats/glq-v1.md §9 step 6) accepts every model the tiny generator writes and refuses each broken
/// variant with one line naming the key or tensor at fault.
/// </summary>
public sealed class GlqModelTests
{
    private static GlqModel Read(TinyGlqModel tiny)
    {
        using var dir = new TempDirectory();
        using GlqFile file = GlqFile.Open(tiny.Write(dir.File("tiny.glq")));
        return GlqModel.Read(file);
    }

    /// <summary>Writes the variant, opens it (which must succeed: the file is structurally sound) and returns GlqModel.Read's message.</summary>
    private static string Refusal(TinyGlqModel tiny)
    {
        using var dir = new TempDirectory();
        using GlqFile file = GlqFile.Open(tiny.Write(dir.File("tiny.glq")));
        var e = Assert.Throws<ModelFormatException>(() => GlqModel.Read(file));
        Assert.DoesNotContain('\n', e.Message);
        Assert.StartsWith("tiny.glq: ", e.Message, StringComparison.Ordinal);
        return e.Message;
    }

    private static TinyGlqModel Tiny(TinyGlqOptions? options = null) => TinyGlqModel.Create(options);

    // ---- Valid models ----

    [Theory]
    [InlineData("glowq", false, true, "f16")]
    [InlineData("glowq", true, false, "f32")]
    [InlineData("layerwise", false, true, "f16")]
    [InlineData("layerwise", true, false, "f16")]
    [InlineData("rtn", false, true, "f16")]
    [InlineData("rtn", true, false, "f32")]
    public void Read_accepts_every_method_with_or_without_qkv_bias_tied_embeddings_and_f32_head(string method, bool bias, bool tied, string head)
    {
        var options = new TinyGlqOptions { Method = method, QkvBias = bias, TiedEmbeddings = tied, HeadDType = head };
        GlqModel model = Read(Tiny(options));
        Assert.Equal(method, model.Method);
        Assert.Equal(bias, model.Config.QkvBias);
        Assert.Equal(tied, model.Config.TiedEmbeddings);
        Assert.Equal(head, model.Quantization.HeadDType);
        Assert.Equal(method switch { "glowq" => 8, "layerwise" => 14, _ => 0 }, model.Units.Count);
        Assert.Equal(model.Units.Count, model.DefaultMask.Length);
        Assert.Equal(["gsvd", "norm_error"], model.Scores.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Read_returns_the_config_quantisation_units_mask_tokenizer_and_chat_format_that_were_written()
    {
        TinyGlqModel tiny = Tiny();
        GlqModel model = Read(tiny);
        Assert.Equal(tiny.Config with { EosTokenIds = [] }, model.Config with { EosTokenIds = [] });
        Assert.Equal([2], model.Config.EosTokenIds);
        Assert.Equal(new GlqQuantization(4, 8, "asymmetric", "f16", "rtn", "f16"), model.Quantization);
        Assert.Equal(tiny.Units.Select(u => (u.Name, string.Join(",", u.Members), u.Rank)), model.Units.Select(u => (u.Name, string.Join(",", u.Members), u.Rank)));
        Assert.Equal(["l0.qkv", "l0.o", "l0.mlp", "l0.down", "l1.qkv", "l1.o", "l1.mlp", "l1.down"], model.Units.Select(u => u.Name));
        Assert.Equal(4, model.DefaultMask.Count(b => b == 1));
        Assert.Equal(("llama2c", TinyGlqModel.TokenizerTensor, "plain"), (model.TokenizerType, model.TokenizerTensor, model.ChatFormat));
    }

    [Fact]
    public void Unit_ranks_are_the_requested_rank_clamped_by_each_unit_shape()
    {
        GlqModel glowq = Read(Tiny(new TinyGlqOptions { Rank = 20 }));
        Assert.All(glowq.Units, u => Assert.Equal(16, u.Rank)); // every glowq unit is bounded by d = 16 (inputs or rows)
        GlqModel layerwise = Read(Tiny(new TinyGlqOptions { Method = "layerwise", Rank = 20 }));
        Assert.Equal(8, layerwise.Units.Single(u => u.Name == "l0.k").Rank); // k_proj: 8 rows
        Assert.Equal(16, layerwise.Units.Single(u => u.Name == "l1.down").Rank); // down_proj: 16 rows, 36 inputs
    }

    // ---- Metadata ----

    [Theory]
    [InlineData("general.architecture")]
    [InlineData("general.converter")]
    [InlineData("model.dim")]
    [InlineData("model.hidden_dim")]
    [InlineData("model.layers")]
    [InlineData("model.heads")]
    [InlineData("model.kv_heads")]
    [InlineData("model.head_dim")]
    [InlineData("model.vocab_size")]
    [InlineData("model.max_seq_len")]
    [InlineData("model.norm_eps")]
    [InlineData("model.rope.theta")]
    [InlineData("model.rope.layout")]
    [InlineData("model.tied_embeddings")]
    [InlineData("model.qkv_bias")]
    [InlineData("quant.bits")]
    [InlineData("quant.group_size")]
    [InlineData("quant.scheme")]
    [InlineData("quant.scale_dtype")]
    [InlineData("quant.base")]
    [InlineData("glowq.method")]
    [InlineData("glowq.units")]
    [InlineData("glowq.unit.l0.qkv.members")]
    [InlineData("glowq.unit.l1.down.rank")]
    [InlineData("glowq.mask.default")]
    [InlineData("tokenizer.type")]
    [InlineData("tokenizer.file")]
    [InlineData("chat.format")]
    public void Read_rejects_a_file_missing_a_required_key_naming_the_key(string key)
    {
        string message = Refusal(Tiny().RemoveKey(key));
        Assert.Contains($"required metadata key '{key}'", message);
        Assert.Contains("is missing", message);
    }

    [Theory]
    [InlineData("model.dim", "string", "an integer")]
    [InlineData("model.norm_eps", "string", "f32 or f64")]
    [InlineData("model.tied_embeddings", "u8", "bool")]
    [InlineData("glowq.method", "u32", "string")]
    [InlineData("glowq.units", "array of u8", "array of string")]
    [InlineData("glowq.mask.default", "array of f32", "array of u8")]
    [InlineData("glowq.unit.l0.o.rank", "string", "an integer")]
    [InlineData("glowq.score.gsvd", "array of u8", "array of f32")]
    [InlineData("chat.format", "bool", "string")]
    public void Read_rejects_a_key_of_the_wrong_type_naming_key_expected_and_found_types(string key, string found, string expected)
    {
        GlqValue value = found switch
        {
            "string" => GlqValue.String("16"),
            "u8" => GlqValue.U8(1),
            "u32" => GlqValue.U32(1),
            "bool" => GlqValue.Bool(true),
            "array of u8" => GlqValue.Bytes([1, 2]),
            _ => GlqValue.Floats([1, 0]),
        };
        string message = Refusal(Tiny().SetKey(key, value));
        Assert.Contains($"metadata key '{key}' should be {expected}, found {found}", message);
    }

    [Theory]
    [InlineData("glowq.method", "svd")]
    [InlineData("tokenizer.type", "tiktoken")]
    [InlineData("chat.format", "vicuna")]
    [InlineData("general.architecture", "FalconForCausalLM")]
    public void Read_rejects_an_unknown_method_tokenizer_type_chat_format_or_architecture(string key, string value)
    {
        string message = Refusal(Tiny().SetKey(key, GlqValue.String(value)));
        Assert.Contains($"'{key}' is '{value}', expected one of", message);
    }

    [Fact]
    public void Read_rejects_a_unit_member_that_is_not_a_projection_of_the_model()
    {
        string message = Refusal(Tiny().SetKey("glowq.unit.l0.o.members", GlqValue.Strings(["model.layers.0.self_attn.x_proj"])));
        Assert.Contains("unit 'l0.o' member 'model.layers.0.self_attn.x_proj' is not a projection of this model", message);
    }

    [Fact]
    public void Read_rejects_a_unit_member_of_a_layer_the_model_does_not_have()
    {
        string message = Refusal(Tiny().SetKey("glowq.unit.l1.o.members", GlqValue.Strings(["model.layers.2.self_attn.o_proj"])));
        Assert.Contains("'model.layers.2.self_attn.o_proj' is not a projection", message);
    }

    [Fact]
    public void Read_rejects_a_module_that_belongs_to_two_units()
    {
        string message = Refusal(Tiny().SetKey("glowq.unit.l0.o.members", GlqValue.Strings(["model.layers.0.self_attn.q_proj"])));
        Assert.Contains("module 'model.layers.0.self_attn.q_proj' belongs to more than one unit", message);
    }

    [Fact]
    public void Read_rejects_a_unit_whose_members_read_inputs_of_different_sizes()
    {
        string message = Refusal(Tiny().SetKey("glowq.unit.l0.o.members",
            GlqValue.Strings(["model.layers.0.self_attn.o_proj", "model.layers.0.mlp.down_proj"])).SetKey("glowq.unit.l0.down.members", GlqValue.Strings([])));
        Assert.Contains("unit 'l0.o' members read inputs of different sizes (16 and 36)", message);
    }

    [Fact]
    public void Read_rejects_a_unit_without_members()
    {
        string message = Refusal(Tiny().SetKey("glowq.unit.l0.o.members", GlqValue.Strings([])));
        Assert.Contains("unit 'l0.o' has no members", message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(17)]
    public void Read_rejects_a_unit_rank_outside_one_to_the_unit_shape(uint rank)
    {
        string message = Refusal(Tiny().SetKey("glowq.unit.l0.qkv.rank", GlqValue.U32(rank)));
        Assert.Contains($"unit 'l0.qkv' rank {rank} is outside 1..16", message);
    }

    [Fact]
    public void Read_rejects_a_unit_listed_in_glowq_units_without_its_keys()
    {
        TinyGlqModel tiny = Tiny();
        tiny.SetKey("glowq.units", GlqValue.Strings([.. tiny.Units.Select(u => u.Name), "l2.qkv"]));
        Assert.Contains("required metadata key 'glowq.unit.l2.qkv.members'", Refusal(tiny));
    }

    [Fact]
    public void Read_rejects_a_default_mask_with_one_entry_too_few()
    {
        string message = Refusal(Tiny().SetKey("glowq.mask.default", GlqValue.Bytes([1, 0, 1, 1, 0, 0, 1])));
        Assert.Contains("'glowq.mask.default' has 7 entries, expected 8 values of 0 or 1", message);
    }

    [Fact]
    public void Read_rejects_a_default_mask_entry_of_2()
    {
        string message = Refusal(Tiny().SetKey("glowq.mask.default", GlqValue.Bytes([1, 0, 2, 1, 0, 0, 1, 0])));
        Assert.Contains("'glowq.mask.default'", message);
        Assert.Contains("values of 0 or 1", message);
    }

    [Fact]
    public void Read_rejects_a_score_array_whose_length_is_not_the_unit_count()
    {
        string message = Refusal(Tiny().SetKey("glowq.score.norm_error", GlqValue.Floats([1, 2, 3])));
        Assert.Contains("'glowq.score.norm_error' has 3 scores, expected one per unit (8)", message);
    }

    [Fact]
    public void Read_rejects_a_listed_metric_without_scores()
    {
        string message = Refusal(Tiny().SetKey("glowq.metrics", GlqValue.Strings(["gsvd", "norm_error", "fisher"])));
        Assert.Contains("required metadata key 'glowq.score.fisher'", message);
    }

    [Fact]
    public void Read_rejects_a_group_size_that_is_not_a_multiple_of_8()
    {
        string message = Refusal(Tiny().SetKey("quant.group_size", GlqValue.U32(12)));
        Assert.Contains("'quant.group_size' is 12", message);
    }

    [Fact]
    public void Read_rejects_quantisation_other_than_4_bit_asymmetric_with_f16_scales()
    {
        Assert.Contains("not supported", Refusal(Tiny().SetKey("quant.bits", GlqValue.U8(3))));
        Assert.Contains("not supported", Refusal(Tiny().SetKey("quant.scheme", GlqValue.String("symmetric"))));
    }

    // ---- Tensors ----

    [Theory]
    [InlineData("model.layers.1.self_attn.k_proj.qweight")]
    [InlineData("model.layers.0.mlp.down_proj.scales")]
    [InlineData("model.layers.1.mlp.up_proj.zeros")]
    [InlineData("glowq.l1.mlp.B")]
    [InlineData("glowq.l0.qkv.A.v_proj")]
    [InlineData("model.embed_tokens.weight")]
    [InlineData("model.norm.weight")]
    [InlineData("model.layers.1.post_attention_layernorm.weight")]
    [InlineData("tokenizer.file")]
    public void Read_rejects_a_file_missing_a_tensor_naming_it(string name)
    {
        Assert.Contains($"tensor '{name}' is missing", Refusal(Tiny().RemoveTensor(name)));
    }

    [Fact]
    public void Read_rejects_an_untied_model_without_its_output_head()
    {
        Assert.Contains("tensor 'lm_head.weight' is missing", Refusal(Tiny(new TinyGlqOptions { TiedEmbeddings = false }).RemoveTensor("lm_head.weight")));
    }

    [Fact]
    public void Read_rejects_a_model_with_qkv_bias_but_no_bias_tensor()
    {
        Assert.Contains("tensor 'model.layers.0.self_attn.v_proj.bias' is missing",
            Refusal(Tiny(new TinyGlqOptions { QkvBias = true }).RemoveTensor("model.layers.0.self_attn.v_proj.bias")));
    }

    [Fact]
    public void Read_rejects_a_qweight_not_padded_to_the_group_size()
    {
        // down_proj reads 36 inputs: with group size 8 its rows hold 40 codes.
        string message = Refusal(Tiny().ReplaceTensor("model.layers.0.mlp.down_proj.qweight", GlqDType.U4, 16, 36));
        Assert.Contains("tensor 'model.layers.0.mlp.down_proj.qweight' is U4 [16, 36], expected U4 [16, 40]", message);
    }

    [Fact]
    public void Read_rejects_scales_of_the_wrong_dtype()
    {
        string message = Refusal(Tiny().ReplaceTensor("model.layers.1.self_attn.q_proj.scales", GlqDType.F32, 16, 2));
        Assert.Contains("tensor 'model.layers.1.self_attn.q_proj.scales' is F32 [16, 2], expected F16 [16, 2]", message);
    }

    [Fact]
    public void Read_rejects_zeros_stored_as_bytes_instead_of_U4()
    {
        string message = Refusal(Tiny().ReplaceTensor("model.layers.0.mlp.gate_proj.zeros", GlqDType.U8, 36, 2));
        Assert.Contains("'model.layers.0.mlp.gate_proj.zeros' is U8 [36, 2], expected U4 [36, 2]", message);
    }

    [Fact]
    public void Read_rejects_a_B_factor_whose_rank_differs_from_the_unit_rank()
    {
        string message = Refusal(Tiny().ReplaceTensor("glowq.l0.mlp.B", GlqDType.F16, 5, 16));
        Assert.Contains("tensor 'glowq.l0.mlp.B' is F16 [5, 16], expected F16 [4, 16]", message);
    }

    [Fact]
    public void Read_rejects_an_A_factor_of_the_wrong_shape()
    {
        string message = Refusal(Tiny().ReplaceTensor("glowq.l1.qkv.A.k_proj", GlqDType.F16, 16, 4));
        Assert.Contains("tensor 'glowq.l1.qkv.A.k_proj' is F16 [16, 4], expected F16 [8, 4]", message);
    }

    [Fact]
    public void Read_rejects_an_embedding_whose_dtype_disagrees_with_quant_head()
    {
        string message = Refusal(Tiny().SetKey("quant.head", GlqValue.String("f32")));
        Assert.Contains("tensor 'model.embed_tokens.weight' is F16 [32, 16], expected F32 [32, 16]", message);
    }

    [Fact]
    public void Read_rejects_a_tokenizer_tensor_that_is_not_U8()
    {
        int length = TinyGlqModel.TokenizerBytes().Length;
        string message = Refusal(Tiny().ReplaceTensor("tokenizer.file", GlqDType.F16, (length + 1) / 2));
        Assert.Contains("tensor 'tokenizer.file' (tokenizer.file) is F16", message);
        Assert.Contains("expected U8", message);
    }

    [Fact]
    public void Read_rejects_a_tokenizer_key_naming_a_tensor_that_does_not_exist()
    {
        Assert.Contains("tensor 'tokenizer.model' is missing", Refusal(Tiny().SetKey("tokenizer.file", GlqValue.String("tokenizer.model"))));
    }

    [Fact]
    public void InconsistentHyperParameters_AreNamedByTheirGlqKeys()
    {
        string message = Refusal(Tiny().SetKey("model.kv_heads", GlqValue.U32(3)));
        Assert.Contains("model.heads (4) is not a multiple of model.kv_heads (3)", message);
        Assert.DoesNotContain("num_key_value_heads", message);
    }
}
