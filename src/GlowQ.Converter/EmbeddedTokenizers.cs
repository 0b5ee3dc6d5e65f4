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
        return new EmbeddedTokenizer(File.ReadAllBytes(path), type);
    }

    /// <summary>Parses an embedded tokenizer with the same code that reads the original file.</summary>
    public static ITextTokenizer Load(string type, byte[] bytes, string source) => type switch
    {
        "llama2c" => Llama2cTokenizer.Parse(bytes, source),
        "sentencepiece" => SentencePieceTokenizer.Parse(bytes, source),
        "hf-json" => HfTokenizerJson.Parse(bytes, source, null),
        _ => throw new GlowQ.Format.ModelFormatException($"{source}: tokenizer.type '{type}' is not supported"),
    };
}
