using System.Text.Json;
using GlowQ.TestSupport;

namespace GlowQ.Format.Tests;

public sealed class CheckpointTests
{
    private const string TinyConfig = """
        {"architectures":["LlamaForCausalLM"],"hidden_size":4,"intermediate_size":6,"num_hidden_layers":1,
         "num_attention_heads":2,"num_key_value_heads":1,"vocab_size":5,"max_position_embeddings":16,
         "rms_norm_eps":1e-6,"tie_word_embeddings":true}
        """;

    [Fact]
    public void Stories260K_HfAndLlama2cCheckpoints_HoldTheSameWeights()
    {
        using ICheckpoint bin = CheckpointExtensions.Open(SharedData.Stories260KBin);
        using ICheckpoint hf = CheckpointExtensions.Open(SharedData.Stories260KHf);
        Assert.Equal("llama2.c", bin.FormatName);
        Assert.Equal("safetensors", hf.FormatName);
        Assert.Equal(bin.Config with { RopeLayout = RopeLayout.RotateHalf, EosTokenIds = hf.Config.EosTokenIds }, hf.Config);

        // Unpermuted tensors are bit-identical; q/k rows differ only by the documented rotate-half permutation.
        foreach (string name in new[] { LlamaTensorNames.Embedding, LlamaTensorNames.Value(2), LlamaTensorNames.Down(4), LlamaTensorNames.FinalNorm })
        {
            var a = new float[bin.FindTensor(name)!.ElementCount];
            var b = new float[a.Length];
            bin.FindTensor(name)!.CopyTo(a);
            hf.FindTensor(name)!.CopyTo(b);
            Assert.Equal(a, b);
        }

        Assert.Null(hf.FindTensor(LlamaTensorNames.OutputHead));
        Assert.Equal(bin.TensorNames.Order(), hf.TensorNames.Order());
    }

    [Fact]
    public void Llama2c_TruncatedFile_IsRejectedWithSizes()
    {
        using var dir = new TempDirectory();
        byte[] bytes = File.ReadAllBytes(SharedData.Stories260KBin);
        File.WriteAllBytes(dir.File("cut.bin"), bytes[..^100]);
        var e = Assert.Throws<ModelFormatException>(() => CheckpointExtensions.Open(dir.File("cut.bin")));
        Assert.Contains($"implies {bytes.Length} bytes", e.Message);
        Assert.Contains($"file has {bytes.Length - 100}", e.Message);
    }

    [Fact]
    public void Llama2c_NegativeVocab_ExposesASeparateClassifier()
    {
        using var dir = new TempDirectory();
        byte[] bytes = File.ReadAllBytes(SharedData.Stories260KBin);
        BitConverter.GetBytes(-512).CopyTo(bytes, 20);
        byte[] classifier = new byte[512 * 64 * 4];
        Array.Copy(bytes, 28, classifier, 0, classifier.Length); // a copy of the embedding
        File.WriteAllBytes(dir.File("untied.bin"), [.. bytes, .. classifier]);
        using ICheckpoint c = CheckpointExtensions.Open(dir.File("untied.bin"));
        Assert.False(c.Config.TiedEmbeddings);
        Assert.Equal(new long[] { 512, 64 }, c.FindTensor(LlamaTensorNames.OutputHead)!.Shape);
    }

    [Fact]
    public void Llama2c_GarbageHeader_IsRejected()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("junk.bin"), [.. Enumerable.Repeat((byte)0xFF, 64)]);
        Assert.Contains("not a valid llama2.c checkpoint", Assert.Throws<ModelFormatException>(() => CheckpointExtensions.Open(dir.File("junk.bin"))).Message);
    }

    [Fact]
    public void HfConfig_ReadsGqaRopeScalingBiasAndEosLists()
    {
        using var doc = JsonDocument.Parse("""
            {"architectures":["Qwen2ForCausalLM"],"hidden_size":896,"intermediate_size":4864,"num_hidden_layers":24,
             "num_attention_heads":14,"num_key_value_heads":2,"vocab_size":151936,"max_position_embeddings":32768,
             "rms_norm_eps":1e-6,"rope_theta":1000000.0,"tie_word_embeddings":true,"sliding_window":32768,
             "use_sliding_window":false,"eos_token_id":[151645,151643],"hidden_act":"silu"}
            """);
        ModelConfig c = HfConfigReader.Parse(doc.RootElement, "config.json");
        Assert.Equal((896, 14, 2, 64, true, true, 1e6), (c.Dim, c.Heads, c.KvHeads, c.HeadDim, c.QkvBias, c.TiedEmbeddings, c.RopeTheta));
        Assert.Null(c.SlidingWindow);
        Assert.Equal([151645, 151643], c.EosTokenIds);

        using var llama3 = JsonDocument.Parse("""
            {"architectures":["LlamaForCausalLM"],"hidden_size":2048,"intermediate_size":8192,"num_hidden_layers":16,
             "num_attention_heads":32,"num_key_value_heads":8,"vocab_size":128256,"max_position_embeddings":131072,
             "rms_norm_eps":1e-5,"rope_theta":500000.0,"head_dim":64,
             "rope_scaling":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,"original_max_position_embeddings":8192,"rope_type":"llama3"}}
            """);
        ModelConfig l = HfConfigReader.Parse(llama3.RootElement, "config.json");
        Assert.Equal(new Llama3RopeScaling(32, 1, 4, 8192), l.RopeScaling);
        Assert.False(l.TiedEmbeddings);
        Assert.False(l.QkvBias);
    }

    [Theory]
    [InlineData("\"LlamaForCausalLM\"", "\"GPT2LMHeadModel\"", "unsupported architecture 'GPT2LMHeadModel'")]
    [InlineData("\"hidden_size\":4,", "", "field 'hidden_size' is missing")]
    [InlineData("\"num_key_value_heads\":1", "\"num_key_value_heads\":3", "not a multiple")]
    [InlineData("\"rms_norm_eps\":1e-6", "\"rms_norm_eps\":1e-6,\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4}", "rope_scaling type 'yarn'")]
    [InlineData("\"rms_norm_eps\":1e-6", "\"rms_norm_eps\":1e-6,\"hidden_act\":\"gelu\"", "hidden_act 'gelu'")]
    public void HfConfig_Unsupported_IsRejectedByName(string find, string replace, string expected)
    {
        using var doc = JsonDocument.Parse(TinyConfig.Replace(find, replace));
        var e = Assert.Throws<ModelFormatException>(() => HfConfigReader.Parse(doc.RootElement, "config.json"));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void RequireTensor_ShapeDisagreeingWithConfig_NamesTensorExpectedAndFound()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("config.json"), TinyConfig);
        SafetensorsWriter.Write(dir.File("model.safetensors"), [SafetensorsWriter.F32(LlamaTensorNames.Embedding, [5, 3], new float[15])]);
        using ICheckpoint c = CheckpointExtensions.Open(dir.Path);
        var e = Assert.Throws<ModelFormatException>(() => c.RequireTensor(LlamaTensorNames.Embedding, 5, 4));
        Assert.Contains("'model.embed_tokens.weight' has shape [5, 3], config.json implies [5, 4]", e.Message);
        Assert.Contains("is missing", Assert.Throws<ModelFormatException>(() => c.RequireTensor(LlamaTensorNames.FinalNorm, 4)).Message);
    }

    [Fact]
    public void ShardedCheckpoint_CollectsTensorsFromEveryShard()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("config.json"), TinyConfig);
        SafetensorsWriter.Write(dir.File("model-00001-of-00002.safetensors"), [SafetensorsWriter.F32("a", [2], 1, 2)]);
        SafetensorsWriter.Write(dir.File("model-00002-of-00002.safetensors"), [SafetensorsWriter.F32("b", [1], 3)]);
        File.WriteAllText(dir.File("model.safetensors.index.json"),
            """{"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}""");
        using ICheckpoint c = CheckpointExtensions.Open(dir.Path);
        Assert.Equal(["a", "b"], c.TensorNames.Order());
        var b = new float[1];
        c.FindTensor("b")!.CopyTo(b);
        Assert.Equal(3f, b[0]);
    }

    [Fact]
    public void ShardIndex_PointingOutsideTheDirectory_IsRejected()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("config.json"), TinyConfig);
        File.WriteAllText(dir.File("model.safetensors.index.json"), """{"weight_map":{"a":"../x.safetensors"}}""");
        Assert.Contains("expected a file name", Assert.Throws<ModelFormatException>(() => CheckpointExtensions.Open(dir.Path)).Message);
    }

    [Fact]
    public void Open_MissingPathsAndGlq_GiveClearErrors()
    {
        using var dir = new TempDirectory();
        Assert.Throws<FileNotFoundException>(() => CheckpointExtensions.Open(dir.File("nope.bin")));
        Assert.Contains("config.json", Assert.Throws<FileNotFoundException>(() => CheckpointExtensions.Open(dir.Path)).Message);
        File.WriteAllText(dir.File("config.json"), TinyConfig);
        Assert.Contains("model.safetensors", Assert.Throws<FileNotFoundException>(() => CheckpointExtensions.Open(dir.Path)).Message);
        File.WriteAllBytes(dir.File("m.glq"), [1]);
        Assert.Contains("quantised", Assert.Throws<ModelFormatException>(() => CheckpointExtensions.Open(dir.File("m.glq"))).Message);
    }
}
