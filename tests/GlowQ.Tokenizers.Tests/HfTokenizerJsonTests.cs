using GlowQ.TestSupport;
using System.Text;
using System.Text.Json.Nodes;

namespace GlowQ.Tokenizers.Tests;

/// <summary>A small hand-written byte-level BPE tokenizer.json whose expected ids are worked out by hand.</summary>
public class HfTokenizerJsonTests
{
    private const string Fixture = TinyTokenizerJson.Json;

    private static HfTokenizerJson Load(string json, string? config = null) =>
        HfTokenizerJson.Parse(Encoding.UTF8.GetBytes(json), "tokenizer.json", config is null ? null : Encoding.UTF8.GetBytes(config));

    private static string Edit(Action<JsonNode> edit)
    {
        JsonNode root = JsonNode.Parse(Fixture)!;
        edit(root);
        return root.ToJsonString();
    }

    [Fact]
    public void Load_Fixture_ReadsBosFromTemplateAndEosFromSpecialTokens()
    {
        HfTokenizerJson t = Load(Fixture);
        Assert.Equal(105, t.VocabularySize);
        Assert.Equal(100, t.BosId);
        Assert.Equal([102, 101], t.EosIds); // <|end_of_text|>, <|eot_id|>
        Assert.Equal(["<pad>", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"], t.SpecialTokens.Keys.Order(StringComparer.Ordinal));
        Assert.True(t.TryGetTokenId("Ġworld", out int world) && world == 16);
    }

    [Fact]
    public void Load_WithTokenizerConfig_PutsConfigEosFirst()
    {
        HfTokenizerJson t = Load(Fixture, """{ "eos_token": { "content": "<|eot_id|>" }, "bos_token": "<|begin_of_text|>" }""");
        Assert.Equal([101, 102], t.EosIds);
    }

    [Theory]
    [InlineData("hello world", true, new[] { 100, 11, 16 })]
    [InlineData("hello world", false, new[] { 11, 16 })]
    [InlineData("", true, new[] { 100 })]
    [InlineData("", false, new int[0])]
    [InlineData("hi", false, new[] { 0, 17 })]              // "hi" is not a piece and no merge makes it
    [InlineData(" hi", false, new[] { 18 })]                // ignore_merges: the pre-token "Ġhi" is a piece
    [InlineData("hello<|eot_id|>", false, new[] { 11, 101 })]
    [InlineData("hello [sep] world", false, new[] { 11, 4, 103, 16 })]
    [InlineData("hello <pad> world", false, new[] { 11, 104, 5, 13, 2, 7 })] // lstrip/rstrip eat the spaces
    [InlineData("12", false, new[] { 23 })]
    [InlineData("é", false, new[] { 26 })]
    [InlineData("hello\n", false, new[] { 11, 20 })]
    [InlineData("hello!!", false, new[] { 11, 19, 19 })]
    public void Encode_Fixture_GivesHandCheckedIds(string text, bool addBos, int[] expected)
    {
        Assert.Equal(expected, Load(Fixture).Encode(text, addBos));
    }

    [Fact]
    public void Encode_WithoutIgnoreMerges_SplitsPreTokenThatMergesCannotReach()
    {
        HfTokenizerJson t = Load(Edit(root => root["model"]!["ignore_merges"] = false));
        Assert.Equal([4, 0, 17], t.Encode(" hi", addBos: false));
        Assert.Equal([11, 16], t.Encode("hello world", addBos: false)); // reachable by merges either way
    }

    [Fact]
    public void Encode_MergesAsArrays_SameAsMergesAsStrings()
    {
        string arrays = Edit(root =>
        {
            var merges = new JsonArray();
            foreach (JsonNode? merge in root["model"]!["merges"]!.AsArray())
            {
                string[] parts = merge!.GetValue<string>().Split(' ');
                merges.Add(new JsonArray(parts[0], parts[1]));
            }

            root["model"]!["merges"] = merges;
            root["model"]!["ignore_merges"] = false;
        });
        HfTokenizerJson t = Load(arrays);
        Assert.Equal([100, 11, 16], t.Encode("hello world", addBos: true));
        Assert.Equal([4, 0, 17], t.Encode(" hi", addBos: false));
        Assert.Equal([26], t.Encode("é", addBos: false));
    }

    [Fact]
    public void Encode_Gpt2StylePreTokenizer_AddsPrefixSpaceAndSplitsWithGpt2Regex()
    {
        string gpt2 = Edit(root =>
        {
            root["pre_tokenizer"] = JsonNode.Parse("""{ "type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true }""");
            root["post_processor"] = JsonNode.Parse("""{ "type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true }""");
            root["model"]!["ignore_merges"] = false;
        });
        HfTokenizerJson t = Load(gpt2);
        Assert.Null(t.BosId);
        // " hello" → Ġ·h·e·l·l·o → Ġ·hello (no "Ġ hello" merge); " world" → Ġworld.
        Assert.Equal([4, 11, 16], t.Encode("hello world", addBos: true));
        Assert.Equal(" hello world", t.Decode(t.Encode("hello world", addBos: false)));

        HfTokenizerJson withConfigBos = Load(gpt2, """{ "add_bos_token": true, "bos_token": "<|begin_of_text|>" }""");
        Assert.Equal(100, withConfigBos.BosId);
        Assert.Equal([100, 4, 11, 16], withConfigBos.Encode("hello world", addBos: true));
    }

    [Fact]
    public void Encode_DigitsPreTokenizer_IsolatesEachDigit()
    {
        string digits = Edit(root => root["pre_tokenizer"] = JsonNode.Parse("""
            { "type": "Sequence", "pretokenizers": [
                { "type": "Digits", "individual_digits": true },
                { "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true } ] }
            """));
        Assert.Equal([11, 21, 22], Load(digits).Encode("hello12", addBos: false));
    }

    [Fact]
    public void Encode_LowercaseNormalizer_MatchesNormalizedAddedTokensAfterItAndOthersBefore()
    {
        string lower = Edit(root =>
        {
            root["normalizer"] = JsonNode.Parse("""{ "type": "Sequence", "normalizers": [ { "type": "NFC" }, { "type": "Lowercase" } ] }""");
            root["added_tokens"]!.AsArray().Add(JsonNode.Parse("""{ "id": 105, "content": "<tool>", "normalized": true, "special": false }"""));
            root["added_tokens"]!.AsArray().Add(JsonNode.Parse("""{ "id": 106, "content": "<KEEP>", "normalized": false, "special": true }"""));
        });
        HfTokenizerJson t = Load(lower);
        Assert.Equal([11, 101, 16], t.Encode("HELLO<|eot_id|> WORLD", addBos: false));
        // A normalized added token is found after normalization ("<TOOL>" → "<tool>"); a non-normalized one before it.
        Assert.Equal([11, 105, 106], t.Encode("HELLO<TOOL><KEEP>", addBos: false));
        Assert.Equal("hello<tool>", t.Decode([11, 105, 106]));
    }

    [Fact]
    public void Decode_SpecialTokensContributeNothing_NonSpecialAddedTokensTheirText()
    {
        HfTokenizerJson t = Load(Fixture);
        Assert.Equal("hello world", t.Decode([100, 11, 16, 101]));
        Assert.Equal("hello[sep]é\n", t.Decode([11, 103, 26, 20]));
        var bytes = new List<byte>();
        t.AppendTokenBytes(24, -1, bytes); // "Ã" alone is the byte C3: half of 'é'
        Assert.Equal([0xC3], bytes);
        t.AppendTokenBytes(50, 24, bytes); // an id no token has: nothing
        Assert.Equal([0xC3], bytes);
        Assert.Throws<ArgumentOutOfRangeException>(() => t.AppendTokenBytes(105, -1, bytes));
    }

    [Fact]
    public void Streaming_SplitCharacterAcrossTokens_HeldBackUntilComplete()
    {
        HfTokenizerJson t = Load(Edit(root =>
        {
            root["model"]!["merges"] = new JsonArray("h e", "l l", "he ll", "hell o");
            root["model"]!["ignore_merges"] = false;
        }));
        int[] ids = t.Encode("é hello", addBos: true);
        Assert.Equal([100, 24, 25, 4, 11], ids); // no "Ã ©" merge any more: 'é' is two byte tokens
        Assert.Equal("é hello", TokenizerAssert.StreamText(t, ids));
        Assert.Equal(Encoding.UTF8.GetBytes("é hello"), TokenizerAssert.StreamBytes(t, ids));
    }

    [Fact]
    public void Parse_InvalidJson_ThrowsOneLineFormatError()
    {
        var ex = Assert.Throws<TokenizerFormatException>(() => Load("{ \"model\": "));
        Assert.StartsWith("tokenizer.json: invalid JSON", ex.Message, StringComparison.Ordinal);
        TokenizerAssert.SingleLine(ex);
    }

    [Fact]
    public void Parse_TruncatedAtEveryLength_ThrowsFormatErrorOnly()
    {
        byte[] data = Encoding.UTF8.GetBytes(Fixture);
        for (int length = 0; length < data.Length; length += 7)
        {
            var ex = Assert.Throws<TokenizerFormatException>(() => HfTokenizerJson.Parse(data[..length], "tokenizer.json"));
            TokenizerAssert.SingleLine(ex);
        }
    }

    [Theory]
    [InlineData("missing model", "model is missing")]
    [InlineData("unknown merge piece", "model.merges[0] (\"h\", \"x\") uses a piece that is not in model.vocab")]
    [InlineData("merge result missing", "model.merges[0] (\"e\", \"h\") makes \"eh\", which is not in model.vocab")]
    [InlineData("bad merge string", "model.merges[0] is \"he\", expected two pieces separated by one space")]
    [InlineData("negative id", "model.vocab entry \"h\" has id -1")]
    [InlineData("bad added token", "added_tokens[0].id is missing")]
    [InlineData("bad regex", "pre_tokenizer.pretokenizers[0] regex cannot be used by .NET")]
    public void Parse_MalformedFixture_NamesTheProblem(string change, string expected)
    {
        string json = Edit(root =>
        {
            switch (change)
            {
                case "missing model": root.AsObject().Remove("model"); break;
                case "unknown merge piece": root["model"]!["merges"] = new JsonArray("h x"); break;
                case "merge result missing": root["model"]!["merges"] = new JsonArray("e h"); break;
                case "bad merge string": root["model"]!["merges"] = new JsonArray("he"); break;
                case "negative id": root["model"]!["vocab"]!["h"] = -1; break;
                case "bad added token": root["added_tokens"]![0]!.AsObject().Remove("id"); break;
                case "bad regex": root["pre_tokenizer"]!["pretokenizers"]![0]!["pattern"]!["Regex"] = "(unclosed"; break;
            }
        });
        var ex = Assert.Throws<TokenizerFormatException>(() => Load(json));
        Assert.StartsWith("tokenizer.json: " + expected, ex.Message, StringComparison.Ordinal);
        TokenizerAssert.SingleLine(ex);
    }

    [Fact]
    public void Parse_SentencePieceStyleTokenizerJson_IsUnsupportedVariant()
    {
        string metaspace = Edit(root =>
        {
            root["pre_tokenizer"] = JsonNode.Parse("""{ "type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false }""");
            root["decoder"] = JsonNode.Parse("""{ "type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false }""");
        });
        var ex = Assert.Throws<TokenizerFormatException>(() => Load(metaspace));
        Assert.True(ex.IsUnsupportedVariant);
        Assert.Contains("Metaspace", ex.Message, StringComparison.Ordinal);

        var byteFallback = Assert.Throws<TokenizerFormatException>(() => Load(Edit(root => root["model"]!["byte_fallback"] = true)));
        Assert.True(byteFallback.IsUnsupportedVariant);

        var wordPiece = Assert.Throws<TokenizerFormatException>(() => Load(Edit(root => root["model"]!["type"] = "WordPiece")));
        Assert.True(wordPiece.IsUnsupportedVariant);
    }
}
