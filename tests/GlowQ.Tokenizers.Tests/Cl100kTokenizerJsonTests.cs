using GlowQ.TestSupport;
using System.IO.Compression;
using System.Reflection;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace GlowQ.Tokenizers.Tests;

/// <summary>
/// Builds a Llama-3-style tokenizer.json from OpenAI's cl100k_base ranks (shipped offline by the
/// Microsoft.ML.Tokenizers.Data.Cl100kBase package) so that <see cref="HfTokenizerJson"/> can be checked against an
/// independent implementation, Microsoft.ML.Tokenizers' <see cref="TiktokenTokenizer"/>. Llama-3's vocabulary is
/// cl100k's 100k tokens plus extras and its pre-tokenizer pattern is cl100k's.
/// </summary>
internal sealed class Cl100kTokenizerJsonFixture
{
    /// <summary>cl100k's pre-tokenizer pattern as Llama-3's tokenizer.json has it (tiktoken's original form).</summary>
    public const string Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    public static readonly Lazy<Cl100kTokenizerJsonFixture> Shared = new(() => new Cl100kTokenizerJsonFixture());

    private Cl100kTokenizerJsonFixture()
    {
        Reference = TiktokenTokenizer.CreateForModel("gpt-4");
        List<byte[]> ranks = LoadRanks();
        RankCount = ranks.Count;
        Json = BuildTokenizerJson(ranks, Reference.SpecialTokens ?? throw new InvalidOperationException("cl100k has no special tokens"));
        using var directory = new TempDirectory();
        Loaded = HfTokenizerJson.Load(directory.Write("tokenizer.json", Json));
    }

    public TiktokenTokenizer Reference { get; }

    public HfTokenizerJson Loaded { get; }

    /// <summary>The generated tokenizer.json.</summary>
    public byte[] Json { get; }

    public int RankCount { get; }

    /// <summary>GPT-2's bytes_to_unicode, written out independently of the library under test.</summary>
    public static string ToByteLevel(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder(bytes.Length);
        foreach (byte b in bytes)
        {
            sb.Append(ByteToUnicode[b]);
        }

        return sb.ToString();
    }

    private static readonly char[] ByteToUnicode = BuildByteToUnicode();

    private static char[] BuildByteToUnicode()
    {
        var printable = new List<int>();
        printable.AddRange(Enumerable.Range('!', '~' - '!' + 1));
        printable.AddRange(Enumerable.Range('¡', '¬' - '¡' + 1));
        printable.AddRange(Enumerable.Range('®', 'ÿ' - '®' + 1));
        var table = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            table[b] = printable.Contains(b) ? (char)b : (char)(256 + n++);
        }

        return table;
    }

    private static List<byte[]> LoadRanks()
    {
        Assembly data = Assembly.Load("Microsoft.ML.Tokenizers.Data.Cl100kBase");
        using Stream compressed = data.GetManifestResourceStream("cl100k_base.tiktoken.deflate")
            ?? throw new InvalidOperationException("cl100k_base.tiktoken.deflate resource not found");
        using var inflated = new DeflateStream(compressed, CompressionMode.Decompress);
        using var reader = new StreamReader(inflated);
        // The package stores "Capacity: N" and then one base64 token per line, the rank being the line's index
        // (tiktoken's own file has "base64 rank" lines; both forms are accepted).
        var ranks = new List<byte[]>();
        while (reader.ReadLine() is string line)
        {
            if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal))
            {
                continue;
            }

            string[] parts = line.Split(' ');
            if (parts.Length > 1)
            {
                Assert.Equal(ranks.Count, int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture));
            }

            ranks.Add(Convert.FromBase64String(parts[0]));
        }

        return ranks;
    }

    /// <summary>
    /// Merges derived from ranks the standard way (as HF's tiktoken converter did): for each multi-byte token, run BPE on
    /// its bytes using only lower ranks; the last pair merged is the token's merge. Merges are ordered by the token's rank.
    /// </summary>
    private static byte[] BuildTokenizerJson(List<byte[]> ranks, IReadOnlyDictionary<string, int> specialTokens)
    {
        var rankOf = new Dictionary<string, int>(ranks.Count, StringComparer.Ordinal);
        for (int i = 0; i < ranks.Count; i++)
        {
            rankOf.Add(Encoding.Latin1.GetString(ranks[i]), i);
        }

        var merges = new List<(string, string)>(ranks.Count);
        var parts = new List<string>();
        for (int rank = 0; rank < ranks.Count; rank++)
        {
            byte[] token = ranks[rank];
            if (token.Length < 2)
            {
                continue;
            }

            parts.Clear();
            foreach (byte b in token)
            {
                parts.Add(((char)b).ToString());
            }

            while (true)
            {
                int bestIndex = -1;
                int bestRank = rank;
                for (int i = 0; i + 1 < parts.Count; i++)
                {
                    if (rankOf.TryGetValue(parts[i] + parts[i + 1], out int r) && r < bestRank)
                    {
                        bestRank = r;
                        bestIndex = i;
                    }
                }

                if (bestIndex < 0)
                {
                    break;
                }

                parts[bestIndex] += parts[bestIndex + 1];
                parts.RemoveAt(bestIndex + 1);
            }

            Assert.Equal(2, parts.Count);
            merges.Add((ToByteLevel(Encoding.Latin1.GetBytes(parts[0])), ToByteLevel(Encoding.Latin1.GetBytes(parts[1]))));
        }

        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream))
        {
            json.WriteStartObject();
            json.WriteString("version", "1.0");
            json.WriteStartArray("added_tokens");
            foreach ((string content, int id) in specialTokens.OrderBy(kv => kv.Value))
            {
                json.WriteStartObject();
                json.WriteNumber("id", id);
                json.WriteString("content", content);
                json.WriteBoolean("single_word", false);
                json.WriteBoolean("lstrip", false);
                json.WriteBoolean("rstrip", false);
                json.WriteBoolean("normalized", false);
                json.WriteBoolean("special", true);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteNull("normalizer");

            json.WriteStartObject("pre_tokenizer");
            json.WriteString("type", "Sequence");
            json.WriteStartArray("pretokenizers");
            json.WriteStartObject();
            json.WriteString("type", "Split");
            json.WriteStartObject("pattern");
            json.WriteString("Regex", Pattern);
            json.WriteEndObject();
            json.WriteString("behavior", "Isolated");
            json.WriteBoolean("invert", false);
            json.WriteEndObject();
            json.WriteStartObject();
            json.WriteString("type", "ByteLevel");
            json.WriteBoolean("add_prefix_space", false);
            json.WriteBoolean("trim_offsets", true);
            json.WriteBoolean("use_regex", false);
            json.WriteEndObject();
            json.WriteEndArray();
            json.WriteEndObject();

            json.WriteStartObject("post_processor");
            json.WriteString("type", "ByteLevel");
            json.WriteBoolean("add_prefix_space", true);
            json.WriteBoolean("trim_offsets", false);
            json.WriteBoolean("use_regex", true);
            json.WriteEndObject();

            json.WriteStartObject("decoder");
            json.WriteString("type", "ByteLevel");
            json.WriteEndObject();

            json.WriteStartObject("model");
            json.WriteString("type", "BPE");
            json.WriteNull("dropout");
            json.WriteNull("unk_token");
            json.WriteNull("continuing_subword_prefix");
            json.WriteNull("end_of_word_suffix");
            json.WriteBoolean("fuse_unk", false);
            json.WriteBoolean("byte_fallback", false);
            json.WriteBoolean("ignore_merges", true);
            json.WriteStartObject("vocab");
            for (int i = 0; i < ranks.Count; i++)
            {
                json.WriteNumber(ToByteLevel(ranks[i]), i);
            }

            json.WriteEndObject();
            json.WriteStartArray("merges");
            foreach ((string left, string right) in merges)
            {
                json.WriteStartArray();
                json.WriteStringValue(left);
                json.WriteStringValue(right);
                json.WriteEndArray();
            }

            json.WriteEndArray();
            json.WriteEndObject();
            json.WriteEndObject();
        }

        return stream.ToArray();
    }
}

public class Cl100kTokenizerJsonTests
{
    private static Cl100kTokenizerJsonFixture Fixture => Cl100kTokenizerJsonFixture.Shared.Value;

    public static TheoryData<string> TrickyStrings => new()
    {
        "12345",
        "1234567890 3.14159 1,000,000",
        "I'm",
        "don't",
        "I'M DON'T they'll we've she'd",
        "héllo wörld 日本語 🙂",
        " leading space",
        "trailing space ",
        "multiple   spaces    here",
        "   ",
        "\n",
        "line one\nline two\n\nline four\r\nwindows",
        "tabs\tand\t\tmore\t",
        "  \n  indented\n",
        "emoji 🙂🙃 and ZWJ 👩‍👩‍👧 family",
        "mixed: αβγ абв עברית العربية हिन्दी",
        "symbols !!! ??? ... --- ***",
        "x",
        "<|endoftext|>",
        "before<|endoftext|>after",
        "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>",
    };

    [Fact]
    public void Load_Cl100kTokenizerJson_HasCl100kVocabularyAndSpecialTokens()
    {
        HfTokenizerJson t = Fixture.Loaded;
        Assert.Equal(100277, t.VocabularySize); // 100256 ranks, then specials up to <|endofprompt|> 100276
        Assert.Equal(100256, Fixture.RankCount);
        Assert.Null(t.BosId); // its post-processor (ByteLevel) adds no BOS
        Assert.Equal([100257], t.EosIds); // <|endoftext|>
        Assert.Equal(100257, t.SpecialTokens["<|endoftext|>"]);
    }

    [Fact]
    public void Encode_WikiTextLines_IdenticalToTiktoken()
    {
        foreach (string line in SharedData.WikiTextLines.Take(300))
        {
            Assert.Equal(Fixture.Reference.EncodeToIds(line), Fixture.Loaded.Encode(line, addBos: false));
        }
    }

    [Theory]
    [MemberData(nameof(TrickyStrings))]
    public void Encode_TrickyStrings_IdenticalToTiktoken(string text)
    {
        Assert.Equal(Fixture.Reference.EncodeToIds(text), Fixture.Loaded.Encode(text, addBos: false));
    }

    [Fact]
    public void Encode_KnownCl100kIds()
    {
        // Ids from tiktoken's cl100k_base.
        Assert.Equal([9906, 1917], Fixture.Loaded.Encode("Hello world", addBos: false));
        Assert.Equal([4513, 1774], Fixture.Loaded.Encode("12345", addBos: false));
    }

    [Fact]
    public void Encode_RandomMixturesOfScriptsDigitsAndWhitespace_IdenticalToTiktoken()
    {
        string[] atoms =
        [
            "a", "B", "z", "é", "ß", "日", "本", "🙂", "𝐀", "1", "23", "٣", " ", "  ", "\t", "\n", "\r\n", "\r", "'", "'s", "'LL",
            ".", ",", "!", "-", "_", "\u00A0", "\u3000", "\u200D", "\u0301", "<|endoftext|>", "x",
        ];
        var random = new Random(42);
        for (int i = 0; i < 1000; i++)
        {
            var text = new StringBuilder();
            int count = random.Next(1, 12);
            for (int k = 0; k < count; k++)
            {
                text.Append(atoms[random.Next(atoms.Length)]);
            }

            string s = text.ToString();
            Assert.Equal(Fixture.Reference.EncodeToIds(s), Fixture.Loaded.Encode(s, addBos: false));
        }
    }

    [Theory]
    [MemberData(nameof(TrickyStrings))]
    public void RoundTrip_TrickyStrings_DecodeGivesTextWithoutSpecialTokens(string text)
    {
        int[] ids = Fixture.Loaded.Encode(text, addBos: false);
        string expected = text.Replace("<|endoftext|>", "", StringComparison.Ordinal)
            .Replace("<|fim_prefix|>", "", StringComparison.Ordinal)
            .Replace("<|fim_suffix|>", "", StringComparison.Ordinal)
            .Replace("<|fim_middle|>", "", StringComparison.Ordinal);
        Assert.Equal(expected, Fixture.Loaded.Decode(ids));
        Assert.Equal(expected, TokenizerAssert.StreamText(Fixture.Loaded, ids));
    }

    [Fact]
    public void RoundTrip_WikiTextLines_DecodeGivesTextBack()
    {
        foreach (string line in SharedData.WikiTextLines.Take(300))
        {
            Assert.Equal(line, Fixture.Loaded.Decode(Fixture.Loaded.Encode(line, addBos: true)));
        }
    }

    [Fact]
    public void Decode_MatchesTiktokenDecode()
    {
        foreach (string line in SharedData.WikiTextLines.Skip(10).Take(30))
        {
            int[] ids = Fixture.Loaded.Encode(line, addBos: false);
            Assert.Equal(Fixture.Reference.Decode(ids), Fixture.Loaded.Decode(ids));
        }
    }

    [Fact]
    public void TokenizerLoader_DirectoryWithTokenizerJson_LoadsHfTokenizer()
    {
        using var directory = new TempDirectory();
        directory.Write("tokenizer.json", Fixture.Json);
        directory.Write("tokenizer.model", File.ReadAllBytes(SharedData.Llama2TokenizerModel)); // tokenizer.json is preferred
        ITextTokenizer t = TokenizerLoader.Load(directory.Path);
        Assert.IsType<HfTokenizerJson>(t);
        Assert.Equal([9906, 1917], t.Encode("Hello world", addBos: false));
    }
}
