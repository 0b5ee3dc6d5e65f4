using System.Text;
using System.Text.Json.Nodes;
using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.Format.Glq;
using GlowQ.TestSupport;
using GlowQ.Tokenizers;

namespace GlowQ.Converter.Tests;

public sealed class EmbeddedTokenizerTests
{
    private const string ChatMlTemplate =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";

    /// <summary>An HF checkpoint whose tokenizer is tokenizer.json plus a tokenizer_config.json that sets EOS and a ChatML template.</summary>
    private static string HfModelWithTokenizerConfig(TempDirectory dir)
    {
        SyntheticHfCheckpoint.Write(dir.Path, new SyntheticHfCheckpoint.Shape("LlamaForCausalLM", Dim: 16, Hidden: 24, Layers: 1, Heads: 2, KvHeads: 1, Vocab: 105));
        File.WriteAllText(dir.File("tokenizer.json"), TinyTokenizerJson.Json);
        var config = new JsonObject { ["eos_token"] = "<|end_of_text|>", ["chat_template"] = ChatMlTemplate };
        File.WriteAllText(dir.File("tokenizer_config.json"), config.ToJsonString());
        return dir.Path;
    }

    [Fact]
    public void HfJsonTokenizer_EmbedsItsConfig_SoTheFileTokenizesWithTheSameBosAndEos()
    {
        using var dir = new TempDirectory();
        string model = HfModelWithTokenizerConfig(dir);
        using ICheckpoint checkpoint = CheckpointExtensions.Open(model);
        (string path, ITextTokenizer original) = ModelLoader.ResolveTokenizer(checkpoint.SourcePath, null);
        EmbeddedTokenizer embedded = EmbeddedTokenizers.FromLoaded(path, original);
        string glq = dir.File("m.glq");
        ModelConverter.Convert(checkpoint, embedded, glq, new ConversionOptions { Method = "rtn", GroupSize = 8 });

        using (GlqFile file = GlqFile.Open(glq))
        {
            GlqModel read = GlqModel.Read(file);
            Assert.Equal("chatml", read.ChatFormat);
            Assert.Equal(ChatMlTemplate, read.ChatTemplate);
            Assert.Equal(File.ReadAllBytes(dir.File("tokenizer_config.json")), file.GetBytes(file.RequireTensor(read.TokenizerConfigTensor!)).ToArray());
        }

        using LoadedModel loaded = GlqEvaluationLoader.Load(glq, null, new InferenceOptions { ContextLength = 16 });
        Assert.Equal(102, loaded.Tokenizer.EosIds[0]); // tokenizer_config.json's eos_token comes first
        Assert.Equal(original.EosIds, loaded.Tokenizer.EosIds);
        Assert.Equal(original.Encode("hello world", addBos: true), loaded.Tokenizer.Encode("hello world", addBos: true));
    }

    [Fact]
    public void TokenizerWithoutAConfig_IsPlainCompletion_AndEmbedsNoConfig()
    {
        EmbeddedTokenizer embedded = EmbeddedTokenizers.FromFile(SharedData.Stories260KTokenizer);
        Assert.Equal("llama2c", embedded.Type);
        Assert.Equal(ChatTemplates.Plain, embedded.ChatFormat);
        Assert.Null(embedded.ConfigFile);
        Assert.Null(embedded.ChatTemplate);
    }
}
