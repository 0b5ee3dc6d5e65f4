using GlowQ.TestSupport;
using System.Text;

namespace GlowQ.Tokenizers.Tests;

public class TokenizerLoaderTests
{
    private const string MetaspaceTokenizerJson = """
        {
          "added_tokens": [],
          "normalizer": { "type": "Sequence", "normalizers": [ { "type": "Prepend", "prepend": "▁" }, { "type": "Replace", "pattern": { "String": " " }, "content": "▁" } ] },
          "pre_tokenizer": null,
          "decoder": { "type": "Sequence", "decoders": [ { "type": "Replace", "pattern": { "String": "▁" }, "content": " " }, { "type": "ByteFallback" } ] },
          "model": { "type": "BPE", "byte_fallback": true, "vocab": { "a": 0 }, "merges": [] }
        }
        """;

    [Fact]
    public void Load_Tok512File_IsLlama2c()
    {
        ITextTokenizer t = TokenizerLoader.Load(SharedData.Stories260KTokenizer);
        Assert.IsType<Llama2cTokenizer>(t);
        Assert.Equal([1, 403, 407, 261, 378], t.Encode("Once upon a time", addBos: true));
    }

    [Fact]
    public void Load_TokenizerModelFile_IsSentencePiece()
    {
        ITextTokenizer t = TokenizerLoader.Load(SharedData.Llama2TokenizerModel);
        Assert.IsType<SentencePieceTokenizer>(t);
        Assert.Equal([1, 15043, 3186], t.Encode("Hello world", addBos: true));
    }

    [Fact]
    public void Load_FileWithoutExtension_DetectsProtobufAndJsonByContent()
    {
        using var dir = new TempDirectory();
        string spm = dir.Write("spm", File.ReadAllBytes(SharedData.Llama2TokenizerModel));
        Assert.IsType<SentencePieceTokenizer>(TokenizerLoader.Load(spm));

        string bin = dir.Write("vocab", File.ReadAllBytes(SharedData.Stories260KTokenizer));
        Assert.IsType<Llama2cTokenizer>(TokenizerLoader.Load(bin));

        string json = dir.Write("tok", Cl100kTokenizerJsonFixture.Shared.Value.Json);
        Assert.IsType<HfTokenizerJson>(TokenizerLoader.Load(json));
    }

    [Fact]
    public void Load_Directory_PrefersJsonThenModelThenBin()
    {
        using var dir = new TempDirectory();
        dir.Write("tokenizer.bin", File.ReadAllBytes(SharedData.Llama2TokenizerBin));
        Assert.IsType<Llama2cTokenizer>(TokenizerLoader.Load(dir.Path));

        dir.Write("tokenizer.model", File.ReadAllBytes(SharedData.Llama2TokenizerModel));
        Assert.IsType<SentencePieceTokenizer>(TokenizerLoader.Load(dir.Path));

        dir.Write("tokenizer.json", Cl100kTokenizerJsonFixture.Shared.Value.Json);
        Assert.IsType<HfTokenizerJson>(TokenizerLoader.Load(dir.Path));
    }

    [Fact]
    public void Load_DirectoryWithSentencePieceStyleTokenizerJson_FallsBackToTokenizerModel()
    {
        using var dir = new TempDirectory();
        dir.Write("tokenizer.json", MetaspaceTokenizerJson);
        var ex = Assert.Throws<TokenizerFormatException>(() => TokenizerLoader.Load(dir.Path));
        Assert.True(ex.IsUnsupportedVariant);

        dir.Write("tokenizer.model", File.ReadAllBytes(SharedData.Llama2TokenizerModel));
        Assert.IsType<SentencePieceTokenizer>(TokenizerLoader.Load(dir.Path));
    }

    [Fact]
    public void Load_StoriesDirectory_FindsTheSingleTokBin()
    {
        ITextTokenizer t = TokenizerLoader.Load(Path.GetDirectoryName(SharedData.Stories260KTokenizer)!);
        Assert.IsType<Llama2cTokenizer>(t);
        Assert.Equal(512, t.VocabularySize);
    }

    [Fact]
    public void Load_ExpectedVocabSize_IsCheckedForLlama2c()
    {
        var ex = Assert.Throws<TokenizerFormatException>(() => TokenizerLoader.Load(SharedData.Stories260KTokenizer, expectedVocabSize: 32000));
        Assert.Contains("512", ex.Message, StringComparison.Ordinal);
        Assert.Contains("32000", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_MissingPathOrEmptyDirectory_ThrowsFileNotFound()
    {
        string missing = Path.Combine(Path.GetTempPath(), "glowq-missing-" + Guid.NewGuid().ToString("N"), "tokenizer.json");
        var ex = Assert.Throws<FileNotFoundException>(() => TokenizerLoader.Load(missing));
        Assert.Equal(missing, ex.FileName);
        Assert.Contains(missing, ex.Message, StringComparison.Ordinal);

        using var dir = new TempDirectory();
        var empty = Assert.Throws<FileNotFoundException>(() => TokenizerLoader.Load(dir.Path));
        Assert.Contains(dir.Path, empty.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_CorruptedFiles_ThrowOneLineFormatErrorsNamingTheFile()
    {
        using var dir = new TempDirectory();
        byte[] bin = File.ReadAllBytes(SharedData.Stories260KTokenizer);
        string truncated = dir.Write("tok512.bin", bin[..(bin.Length - 3)]);
        var binError = Assert.Throws<TokenizerFormatException>(() => TokenizerLoader.Load(truncated));
        Assert.StartsWith("tok512.bin: token 511 length ", binError.Message, StringComparison.Ordinal);
        Assert.Contains("runs past end of file", binError.Message, StringComparison.Ordinal);
        TokenizerAssert.SingleLine(binError);

        byte[] model = File.ReadAllBytes(SharedData.Llama2TokenizerModel);
        string truncatedModel = dir.Write("tokenizer.model", model[..(model.Length / 3)]);
        var modelError = Assert.Throws<TokenizerFormatException>(() => TokenizerLoader.Load(truncatedModel));
        Assert.StartsWith("tokenizer.model: ", modelError.Message, StringComparison.Ordinal);
        TokenizerAssert.SingleLine(modelError);

        string badJson = dir.Write("tokenizer.json", Encoding.UTF8.GetBytes("{\n  \"model\": {\n"));
        var jsonError = Assert.Throws<TokenizerFormatException>(() => TokenizerLoader.Load(badJson));
        Assert.StartsWith("tokenizer.json: invalid JSON", jsonError.Message, StringComparison.Ordinal);
        TokenizerAssert.SingleLine(jsonError);
    }

    [Fact]
    public void FindBesideCheckpoint_Stories260K_FindsTok512()
    {
        string checkpoint = Path.Combine(Path.GetDirectoryName(SharedData.Stories260KTokenizer)!, "stories260K.bin");
        Assert.Equal(SharedData.Stories260KTokenizer, TokenizerLoader.FindBesideCheckpoint(checkpoint));
    }

    [Fact]
    public void FindBesideCheckpoint_PrefersTokenizerBin_AndNeedsExactlyOneTokBin()
    {
        using var dir = new TempDirectory();
        string checkpoint = dir.Write("model.bin", [1, 2, 3]);
        Assert.Null(TokenizerLoader.FindBesideCheckpoint(checkpoint));

        string tokA = dir.Write("tok512.bin", [0]);
        Assert.Equal(tokA, TokenizerLoader.FindBesideCheckpoint(checkpoint));

        dir.Write("tok4096.bin", [0]);
        Assert.Null(TokenizerLoader.FindBesideCheckpoint(checkpoint));

        string standard = dir.Write("tokenizer.bin", [0]);
        Assert.Equal(standard, TokenizerLoader.FindBesideCheckpoint(checkpoint));
    }

    [Fact]
    public void FindBesideCheckpoint_MissingFolder_GivesNull()
    {
        Assert.Null(TokenizerLoader.FindBesideCheckpoint(Path.Combine(Path.GetTempPath(), "glowq-none-" + Guid.NewGuid().ToString("N"), "model.bin")));
    }
}
