using GlowQ.TestSupport;
using System.Text;

namespace GlowQ.Tokenizers.Tests;

public class SentencePieceTokenizerTests
{
    internal static readonly Lazy<SentencePieceTokenizer> Llama2 = new(() => SentencePieceTokenizer.Load(SharedData.Llama2TokenizerModel));

    /// <summary>Microsoft.ML.Tokenizers' reading of the same model: an independent implementation to cross-check against.</summary>
    internal static readonly Lazy<Microsoft.ML.Tokenizers.SentencePieceTokenizer> MicrosoftMlLlama2 = new(() =>
    {
        using FileStream stream = File.OpenRead(SharedData.Llama2TokenizerModel);
        return Microsoft.ML.Tokenizers.LlamaTokenizer.Create(stream, addBeginOfSentence: true, addEndOfSentence: false);
    });

    /// <summary>The id of a piece of the model, so that expected ids read as pieces.</summary>
    internal static int Id(SentencePieceTokenizer tokenizer, string piece)
    {
        Assert.True(tokenizer.TryGetId(piece, out int id), $"no piece \"{piece}\"");
        return id;
    }

    [Fact]
    public void Encode_HelloWorld_MatchesSentencePieceIds()
    {
        Assert.Equal([1, 15043, 3186], Llama2.Value.Encode("Hello world", addBos: true));
        Assert.Equal([15043, 3186], Llama2.Value.Encode("Hello world", addBos: false));
    }

    [Fact]
    public void Load_Llama2Model_HasVocabularyAndSpecialIds()
    {
        SentencePieceTokenizer t = Llama2.Value;
        Assert.Equal(32000, t.VocabularySize);
        Assert.Equal(1, t.BosId);
        Assert.Equal([2], t.EosIds);
        Assert.Equal(SentencePieceType.Unknown, t.GetPieceType(0));
        Assert.Equal(SentencePieceType.Control, t.GetPieceType(1));
        Assert.Equal(SentencePieceType.Byte, t.GetPieceType(3));
        Assert.Equal("▁Hello", t.GetPiece(15043));
    }

    [Fact]
    public void Encode_EmptyString_WithBos_GivesBosLikeSentencePiece()
    {
        // SentencePiece: Encode("") is empty and add_bos still adds <s>.
        Assert.Equal([1], Llama2.Value.Encode("", addBos: true));
        Assert.Empty(Llama2.Value.Encode("", addBos: false));
    }

    [Fact]
    public void Encode_CjkAndEmoji_UsesPiecesAndByteFallbackLikeSentencePiece()
    {
        // Reference ids from SentencePiece 0.1.97: 日 and 本 are pieces; 🙂 (F0 9F 99 82) falls back to bytes.
        Assert.Equal([1, 29871, 30325, 30346, 29871, 243, 162, 156, 133], Llama2.Value.Encode("日本 🙂", addBos: true));
    }

    [Fact]
    public void Encode_Whitespace_MatchesSentencePiece()
    {
        // Reference ids from SentencePiece 0.1.97.
        Assert.Equal([1, 259], Llama2.Value.Encode(" ", addBos: true));
        Assert.Equal([1, 259, 15043], Llama2.Value.Encode("  Hello", addBos: true));
        Assert.Equal([1, 529, 29879, 29958, 2918, 829, 29879, 29958], Llama2.Value.Encode("<s>hi</s>", addBos: true));
    }

    [Fact]
    public void Encode_MarkVIIIs_MatchesSentencePiece_LeftmostOfEqualScorePairsMergesFirst()
    {
        // After "▁V" merges, "▁V I I I s" has two "II" pairs of equal score. SentencePiece (bpe_model.cc: `h1->left > h2->left`
        // in its max-heap) and run.c take the leftmost: ▁V·II·I·s → "Is" → ▁VII + Is. Taking the rightmost, as
        // Microsoft.ML.Tokenizers 2.0.1 does, gives ▁V·I·II·s → "III" → ▁VIII + s.
        SentencePieceTokenizer t = Llama2.Value;
        Assert.True(t.GetScore(Id(t, "Is")) > t.GetScore(Id(t, "III")));

        int[] ids = t.Encode("Mark VIIIs", addBos: true);

        Assert.Equal([t.BosId!.Value, Id(t, "▁Mark"), Id(t, "▁VII"), Id(t, "Is")], ids);
        Assert.Equal("Mark VIIIs", t.Decode(ids));
    }

    [Fact]
    public void Encode_Newline_FallsBackToItsBytePiece_FoundByTryGetId()
    {
        SentencePieceTokenizer t = Llama2.Value;
        Assert.True(t.TryGetId("<0x0A>", out int newline));
        Assert.Equal(0x0A + 3, newline);
        Assert.Equal(SentencePieceType.Byte, t.GetPieceType(newline));
        Assert.False(t.TryGetId("no such piece", out _));
        Assert.Equal([1, Id(t, "▁"), newline], t.Encode("\n", addBos: true));
    }

    [Fact]
    public void AppendTokenBytes_FollowsSentencePieceDecoding()
    {
        SentencePieceTokenizer t = Llama2.Value;
        var bytes = new List<byte>();
        t.AppendTokenBytes(1, -1, bytes);       // <s>: control, nothing
        t.AppendTokenBytes(2, 15043, bytes);    // </s>: control, nothing
        t.AppendTokenBytes(0, 15043, bytes);    // <unk>: nothing (SentencePiece would print " ⁇ ")
        Assert.Empty(bytes);

        t.AppendTokenBytes(15043, 1, bytes);     // after BOS: "▁Hello" → "Hello"
        t.AppendTokenBytes(3186, 15043, bytes);  // "▁world" → " world"
        t.AppendTokenBytes(0x0A + 3, 3186, bytes); // "<0x0A>" → '\n'
        t.AppendTokenBytes(15043, -1, bytes);    // at the start: leading space dropped
        Assert.Equal("Hello world\nHello", Encoding.UTF8.GetString([.. bytes]));
    }

    [Fact]
    public void Decode_LeadingSpacePiece_DroppedOnlyAtStart_AsSentencePiece()
    {
        // SentencePiece 0.1.97: decode([29871, 15043]) == " Hello", decode([1, 259, 15043]) == "  Hello".
        Assert.Equal(" Hello", Llama2.Value.Decode([29871, 15043]));
        Assert.Equal("  Hello", Llama2.Value.Decode([1, 259, 15043]));
    }

    [Fact]
    public void RoundTrip_WikiTextLines_GivesTextBack_AndMatchesLibraryDecode()
    {
        SentencePieceTokenizer t = Llama2.Value;
        Microsoft.ML.Tokenizers.SentencePieceTokenizer library = MicrosoftMlLlama2.Value;
        foreach (string line in SharedData.WikiTextLines.Take(200))
        {
            int[] withBos = t.Encode(line, addBos: true);
            Assert.Equal(line, t.Decode(withBos));
            Assert.Equal(line, t.Decode(t.Encode(line, addBos: false)));
            Assert.Equal(library.Decode(withBos), t.Decode(withBos));
        }
    }

    [Fact]
    public void Streaming_AppendTokenBytesHoldingBackPartialUtf8_EqualsDecode()
    {
        SentencePieceTokenizer t = Llama2.Value;
        foreach (string text in new[] { "日本 🙂 héllo wörld", "Hello\nworld", "🙂🙂" })
        {
            int[] ids = t.Encode(text, addBos: true);
            Assert.Equal(Encoding.UTF8.GetBytes(t.Decode(ids)), TokenizerAssert.StreamBytes(t, ids));
            Assert.Equal(text, TokenizerAssert.StreamText(t, ids));
        }
    }

    [Fact]
    public void Parse_TruncatedOrCorruptedModel_ThrowsOneLineFormatError()
    {
        byte[] data = File.ReadAllBytes(SharedData.Llama2TokenizerModel);
        foreach (int length in new[] { 0, 1, 2, 7, 100, 1000, data.Length / 2, data.Length - 3 })
        {
            try
            {
                SentencePieceTokenizer t = SentencePieceTokenizer.Parse(data[..length], "tokenizer.model");
                t.Encode("Hello world", addBos: true); // a prefix that happens to end on a field boundary may load
            }
            catch (TokenizerFormatException ex)
            {
                Assert.StartsWith("tokenizer.model: ", ex.Message, StringComparison.Ordinal);
                TokenizerAssert.SingleLine(ex);
            }
        }

        var random = new Random(1234);
        for (int i = 0; i < 20; i++)
        {
            byte[] corrupted = (byte[])data.Clone();
            for (int k = 0; k < 8; k++)
            {
                corrupted[random.Next(corrupted.Length)] = (byte)random.Next(256);
            }

            try
            {
                SentencePieceTokenizer.Parse(corrupted, "tokenizer.model").Encode("Hello world 日本", addBos: true);
            }
            catch (TokenizerFormatException ex)
            {
                TokenizerAssert.SingleLine(ex);
            }
        }

        var garbage = Assert.Throws<TokenizerFormatException>(() => SentencePieceTokenizer.Parse(Encoding.ASCII.GetBytes("this is not a protobuf"), "tokenizer.model"));
        Assert.StartsWith("tokenizer.model: ", garbage.Message, StringComparison.Ordinal);
    }
}
