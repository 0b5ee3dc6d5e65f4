using GlowQ.TestSupport;
using System.Buffers.Binary;
using System.Text;

namespace GlowQ.Tokenizers.Tests;

public class Llama2cTokenizerTests
{
    private static readonly Lazy<Llama2cTokenizer> Tok512 = new(() => Llama2cTokenizer.Load(SharedData.Stories260KTokenizer));
    private static readonly Lazy<Llama2cTokenizer> Llama2 = new(() => Llama2cTokenizer.Load(SharedData.Llama2TokenizerBin));

    [Fact]
    public void Encode_OnceUponATime_MatchesLlama2cIds()
    {
        Assert.Equal([1, 403, 407, 261, 378], Tok512.Value.Encode("Once upon a time", addBos: true));
    }

    [Fact]
    public void Encode_HelloWorld_Llama2Vocabulary_MatchesSentencePieceIds()
    {
        Assert.Equal([1, 15043, 3186], Llama2.Value.Encode("Hello world", addBos: true));
    }

    [Fact]
    public void Load_Tok512_Has512UniqueTokensAndLlamaSpecialIds()
    {
        Llama2cTokenizer t = Tok512.Value;
        Assert.Equal(512, t.VocabularySize);
        Assert.Equal(7, t.MaxTokenLength);
        Assert.Equal(1, t.BosId);
        Assert.Equal([2], t.EosIds);
        Assert.Equal(0, t.DuplicatePieceCount);
        Assert.Contains("512", t.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_Llama2TokenizerBin_Has32000UniquePieces()
    {
        // run.c looks pieces up with bsearch; with duplicates it would pick an arbitrary copy. Both shipped files have none.
        Assert.Equal(32000, Llama2.Value.VocabularySize);
        Assert.Equal(0, Llama2.Value.DuplicatePieceCount);
    }

    [Fact]
    public void Encode_EmptyString_GivesOnlyBosAndNoDummyPrefix()
    {
        Assert.Equal([1], Tok512.Value.Encode("", addBos: true));
        Assert.Empty(Tok512.Value.Encode("", addBos: false));
    }

    [Fact]
    public void Encode_WithoutBos_HasNoBosButKeepsDummyPrefixAndNoEos()
    {
        int[] ids = Tok512.Value.Encode("Once upon a time", addBos: false);
        Assert.Equal([403, 407, 261, 378], ids);
        Assert.Equal((byte)' ', Tok512.Value.GetPiece(ids[0])[0]);
    }

    [Fact]
    public void Encode_CjkNotInTok512_UsesByteFallbackIds()
    {
        // "日本" = E6 97 A5 E6 9C AC; byte b → id b + 3; 410 is the dummy-prefix piece " ".
        Assert.Equal([1, 410, 0xE6 + 3, 0x97 + 3, 0xA5 + 3, 0xE6 + 3, 0x9C + 3, 0xAC + 3], Tok512.Value.Encode("日本", addBos: true));
    }

    [Fact]
    public void Encode_CjkAndEmoji_Llama2Vocabulary_MatchesSentencePiece()
    {
        // Reference ids from SentencePiece 0.1.97 on the Llama-2 tokenizer.model.
        Assert.Equal([1, 29871, 30325, 30346, 29871, 243, 162, 156, 133], Llama2.Value.Encode("日本 🙂", addBos: true));
    }

    [Fact]
    public void Encode_MatchesLiteralPortOfRunCEncode_OnTinyStoriesAndWikiText()
    {
        // The class merges with a priority queue; this checks it against run.c's own O(n²) rescanning loop.
        var reference = new RunCReference(SharedData.Stories260KTokenizer);
        string stories = File.ReadAllText(SharedData.TinyStoriesSample);
        IEnumerable<string> texts = stories.Split('\n').Where(l => l.Length > 0).Take(10)
            .Concat(SharedData.WikiTextLines.Take(40))
            .Concat(["", " ", "  ", "a", "日本 🙂", "<s>", "\n<s>\n", "aaaa aaaa", "\t tabs\tand  spaces \n"]);
        foreach (string text in texts)
        {
            Assert.Equal(reference.Encode(text, bos: true), Tok512.Value.Encode(text, addBos: true));
        }

        var llama2Reference = new RunCReference(SharedData.Llama2TokenizerBin);
        foreach (string text in SharedData.WikiTextLines.Take(15))
        {
            Assert.Equal(llama2Reference.Encode(text, bos: true), Llama2.Value.Encode(text, addBos: true));
        }
    }

    [Fact]
    public void Encode_InvalidUtf8Bytes_FallBackPerByteAsRunC()
    {
        // A stray continuation byte and a truncated sequence: run.c looks each gathered "code point" up and falls back per byte.
        byte[] utf8 = [(byte)'a', 0x80, 0xE6, 0x97, (byte)'b'];
        var reference = new RunCReference(SharedData.Stories260KTokenizer);
        Assert.Equal(reference.Encode(utf8, bos: true), Tok512.Value.Encode(utf8, addBos: true));
    }

    [Fact]
    public void Decode_AfterBos_StripsLeadingSpaceOfFirstPiece()
    {
        Llama2cTokenizer t = Tok512.Value;
        Assert.Equal("Once upon a time", t.Decode([1, 403, 407, 261, 378]));
        Assert.Equal(" Once upon a time", t.Decode([403, 407, 261, 378]));
    }

    [Fact]
    public void AppendTokenBytes_SpecialIdsContributeNothing_ByteTokensGiveRawByte()
    {
        Llama2cTokenizer t = Tok512.Value;
        var bytes = new List<byte>();
        t.AppendTokenBytes(0, -1, bytes);
        t.AppendTokenBytes(1, -1, bytes);
        t.AppendTokenBytes(2, 5, bytes);
        Assert.Empty(bytes);
        t.AppendTokenBytes(0x0A + 3, 1, bytes); // "<0x0A>" after BOS: still the raw newline
        t.AppendTokenBytes(0xE6 + 3, 7, bytes);
        Assert.Equal([0x0A, 0xE6], bytes);
    }

    [Fact]
    public void AppendTokenBytes_OutOfRangeToken_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Tok512.Value.AppendTokenBytes(512, -1, []));
        Assert.Throws<ArgumentOutOfRangeException>(() => Tok512.Value.AppendTokenBytes(-1, -1, []));
    }

    [Fact]
    public void RoundTrip_WikiTextLines_WithBosGivesTextBack_WithoutBosAddsDummyPrefixSpace()
    {
        foreach (Llama2cTokenizer t in new[] { Tok512.Value, Llama2.Value })
        {
            foreach (string line in SharedData.WikiTextLines.Take(200))
            {
                Assert.Equal(line, t.Decode(t.Encode(line, addBos: true)));
                // run.c strips the dummy-prefix space only right after BOS.
                Assert.Equal(" " + line, t.Decode(t.Encode(line, addBos: false)));
            }
        }
    }

    [Fact]
    public void Streaming_AppendTokenBytesHoldingBackPartialUtf8_EqualsDecode()
    {
        Llama2cTokenizer t = Tok512.Value;
        foreach (string text in new[] { "日本 🙂 héllo wörld", "Once upon a time", "x\ny" })
        {
            int[] ids = t.Encode(text, addBos: true);
            Assert.Equal(Encoding.UTF8.GetBytes(t.Decode(ids)), TokenizerAssert.StreamBytes(t, ids));
            Assert.Equal(text, TokenizerAssert.StreamText(t, ids));
        }
    }

    [Fact]
    public void Parse_ExpectedVocabSizeDiffers_ThrowsNamingBothSizes()
    {
        var ex = Assert.Throws<TokenizerFormatException>(() => Llama2cTokenizer.Load(SharedData.Stories260KTokenizer, expectedVocabSize: 500));
        Assert.StartsWith("tok512.bin: file holds 512 tokens but the model expects a vocabulary of 500", ex.Message, StringComparison.Ordinal);
        TokenizerAssert.SingleLine(ex);
        Assert.Equal(512, Llama2cTokenizer.Load(SharedData.Stories260KTokenizer, expectedVocabSize: 512).VocabularySize);
    }

    [Fact]
    public void Parse_TokenLengthPastEndOfFile_NamesTokenOffsetAndSize()
    {
        byte[] data = File.ReadAllBytes(SharedData.Stories260KTokenizer);
        int offset = OffsetOfToken(data, 17);
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(offset + 4), 100000);
        var ex = Assert.Throws<TokenizerFormatException>(() => Llama2cTokenizer.Parse(data, "tok512.bin"));
        Assert.Equal($"tok512.bin: token 17 length 100000 runs past end of file (offset {offset + 8}, size {data.Length})", ex.Message);
    }

    [Fact]
    public void Parse_NegativeLengthOrTooLongPiece_Throws()
    {
        byte[] data = File.ReadAllBytes(SharedData.Stories260KTokenizer);
        int offset = OffsetOfToken(data, 300);
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(offset + 4), -5);
        var negative = Assert.Throws<TokenizerFormatException>(() => Llama2cTokenizer.Parse(data, "tok512.bin"));
        Assert.Contains("token 300 has negative length -5", negative.Message, StringComparison.Ordinal);

        data = File.ReadAllBytes(SharedData.Stories260KTokenizer);
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(offset + 4), 40);
        var tooLong = Assert.Throws<TokenizerFormatException>(() => Llama2cTokenizer.Parse(data, "tok512.bin"));
        Assert.Contains("token 300 length 40 exceeds max_token_length 7", tooLong.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_BadHeader_Throws()
    {
        Assert.Contains("too short", Assert.Throws<TokenizerFormatException>(() => Llama2cTokenizer.Parse(new byte[3], "t.bin")).Message, StringComparison.Ordinal);
        Assert.Contains("max_token_length is 0", Assert.Throws<TokenizerFormatException>(() => Llama2cTokenizer.Parse(new byte[16], "t.bin")).Message, StringComparison.Ordinal);
        byte[] onlyHeader = [7, 0, 0, 0];
        Assert.Contains("holds 0 tokens", Assert.Throws<TokenizerFormatException>(() => Llama2cTokenizer.Parse(onlyHeader, "t.bin")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_TruncatedAtEveryLength_ThrowsFormatErrorOrLoadsFewerTokens()
    {
        byte[] data = File.ReadAllBytes(SharedData.Stories260KTokenizer);
        for (int length = 0; length < data.Length; length++)
        {
            try
            {
                Llama2cTokenizer t = Llama2cTokenizer.Parse(data.AsSpan(0, length), "tok512.bin");
                Assert.True(t.VocabularySize < 512);
                t.Encode("Once upon a time 日本", addBos: true); // must not index out of range either
            }
            catch (TokenizerFormatException ex)
            {
                Assert.StartsWith("tok512.bin: ", ex.Message, StringComparison.Ordinal);
                TokenizerAssert.SingleLine(ex);
            }
            catch (InvalidOperationException ex) when (ex.Message.Contains("tok512.bin", StringComparison.Ordinal))
            {
                // a prefix of the vocabulary without " " or the byte pieces cannot encode; it says so
            }
        }
    }

    [Fact]
    public void Load_MissingFile_ThrowsFileNotFoundWithPath()
    {
        string path = Path.Combine(Path.GetTempPath(), "no-such-dir-" + Guid.NewGuid().ToString("N"), "tokenizer.bin");
        var ex = Assert.Throws<FileNotFoundException>(() => Llama2cTokenizer.Load(path));
        Assert.Equal(path, ex.FileName);
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
    }

    private static int OffsetOfToken(byte[] data, int token)
    {
        int offset = 4;
        for (int i = 0; i < token; i++)
        {
            offset += 8 + BinaryPrimitives.ReadInt32LittleEndian(data.AsSpan(offset + 4));
        }

        return offset;
    }

    /// <summary>
    /// A literal port of run.c's encode() (reading the file itself), rescanning every pair after each merge.
    /// Its bsearch over the sorted vocabulary is a dictionary here; the pieces are unique.
    /// </summary>
    private sealed class RunCReference
    {
        private readonly List<string> _vocab = [];
        private readonly List<float> _scores = [];
        private readonly Dictionary<string, int> _lookup = new(StringComparer.Ordinal);

        public RunCReference(string path)
        {
            byte[] data = File.ReadAllBytes(path);
            int offset = 4;
            while (offset < data.Length)
            {
                _scores.Add(BinaryPrimitives.ReadSingleLittleEndian(data.AsSpan(offset)));
                int len = BinaryPrimitives.ReadInt32LittleEndian(data.AsSpan(offset + 4));
                string piece = Encoding.Latin1.GetString(data, offset + 8, len);
                _lookup.TryAdd(piece, _vocab.Count);
                _vocab.Add(piece);
                offset += 8 + len;
            }
        }

        public int[] Encode(string text, bool bos) => Encode(Encoding.UTF8.GetBytes(text), bos);

        public int[] Encode(byte[] text, bool bos)
        {
            var tokens = new List<int>();
            if (bos)
            {
                tokens.Add(1);
            }

            if (text.Length > 0)
            {
                tokens.Add(_lookup[" "]);
            }

            var buffer = new StringBuilder();
            for (int c = 0; c < text.Length; c++)
            {
                if ((text[c] & 0xC0) != 0x80)
                {
                    buffer.Clear();
                }

                buffer.Append((char)text[c]);
                if (c + 1 < text.Length && (text[c + 1] & 0xC0) == 0x80 && buffer.Length < 4)
                {
                    continue;
                }

                if (_lookup.TryGetValue(buffer.ToString(), out int id))
                {
                    tokens.Add(id);
                }
                else
                {
                    foreach (char b in buffer.ToString())
                    {
                        tokens.Add(b + 3);
                    }
                }

                buffer.Clear();
            }

            while (true)
            {
                float bestScore = -1e10f;
                int bestId = -1;
                int bestIdx = -1;
                for (int i = 0; i < tokens.Count - 1; i++)
                {
                    if (_lookup.TryGetValue(_vocab[tokens[i]] + _vocab[tokens[i + 1]], out int id) && _scores[id] > bestScore)
                    {
                        bestScore = _scores[id];
                        bestId = id;
                        bestIdx = i;
                    }
                }

                if (bestIdx == -1)
                {
                    break;
                }

                tokens[bestIdx] = bestId;
                tokens.RemoveAt(bestIdx + 1);
            }

            return [.. tokens];
        }
    }
}
