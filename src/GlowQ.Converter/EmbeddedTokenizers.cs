using GlowQ.Tokenizers;

namespace GlowQ.Converter;

/// <summary>Tokenizer files as a .glq file embeds them: the original bytes plus their type (formats/glq-v1.md §8).</summary>
public static class EmbeddedTokenizers
{
    /// <summary>The tokenizer file's bytes and .glq type, from its path (tokenizer.bin, tokenizer.model or tokenizer.json).</summary>
    public static EmbeddedTokenizer FromFile(string path) => FromLoaded(path, TokenizerLoader.Load(path));

    /// <summary>As <see cref="FromFile"/>, for a file already parsed (and so validated) as <paramref name="parsed"/>.</summary>
    public static EmbeddedTokenizer FromLoaded(string path, ITextTokenizer parsed)
    {
        string type = parsed switch
        {
            Llama2cTokenizer => "llama2c",
            SentencePieceTokenizer => "sentencepiece",
            HfTokenizerJson => "hf-json",
            _ => throw new ArgumentException($"{path}: tokenizer kind {parsed.GetType().Name} cannot be embedded"),
        };
        // tokenizer_config.json beside the tokenizer carries the chat template (any type) and, for hf-json, the
        // bos/eos tokens the tokenizer needs: the file embeds it so the runtime tokenizes exactly as here.
        string configPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".", "tokenizer_config.json");
        byte[]? config = File.Exists(configPath) ? File.ReadAllBytes(configPath) : null;
        string? template = config is null ? null : ChatTemplates.FromTokenizerConfig(config, configPath);
        return new EmbeddedTokenizer(File.ReadAllBytes(path), type)
        {
            ConfigFile = type == "hf-json" ? config : null,
            ChatFormat = ChatTemplates.Detect(template),
            ChatTemplate = template,
        };
    }

    /// <summary>Parses an embedded tokenizer with the same code that reads the original file.</summary>
    /// <param name="config">The embedded tokenizer_config.json, if any (hf-json).</param>
    public static ITextTokenizer Load(string type, byte[] bytes, string source, byte[]? config = null) => type switch
    {
        "llama2c" => Llama2cTokenizer.Parse(bytes, source),
        "sentencepiece" => SentencePieceTokenizer.Parse(bytes, source),
        "hf-json" => HfTokenizerJson.Parse(bytes, source, config),
        _ => throw new GlowQ.Format.ModelFormatException($"{source}: tokenizer.type '{type}' is not supported"),
    };

    /// <summary>The tokenizer a .glq file embeds, with its tokenizer_config.json when the file has one.</summary>
    public static ITextTokenizer FromGlq(GlowQ.Format.Glq.GlqFile file, GlowQ.Format.Glq.GlqModel model) =>
        Load(model.TokenizerType, file.GetBytes(file.RequireTensor(model.TokenizerTensor)).ToArray(), file.Name,
            model.TokenizerConfigTensor is string config ? file.GetBytes(file.RequireTensor(config)).ToArray() : null);
}
