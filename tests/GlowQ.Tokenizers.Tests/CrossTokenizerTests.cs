using GlowQ.TestSupport;
namespace GlowQ.Tokenizers.Tests;

public class CrossTokenizerTests
{
    [Fact]
    public void SentencePieceAndLlama2c_SameLlama2Vocabulary_GiveIdenticalIds_OnFirst200WikiTextLines()
    {
        SentencePieceTokenizer sentencePiece = SentencePieceTokenizerTests.Llama2.Value;
        Llama2cTokenizer llama2c = Llama2cTokenizer.Load(SharedData.Llama2TokenizerBin);
        foreach (string line in SharedData.WikiTextLines.Take(200))
        {
            Assert.Equal(llama2c.Encode(line, addBos: true), sentencePiece.Encode(line, addBos: true));
        }
    }

    [Fact]
    public void SentencePieceAndLlama2c_AllWikiTextLines_DifferOnlyOnTheKnownTieBreakLine()
    {
        // See SentencePieceTokenizerTests.Encode_MarkVIIIs_KnownDivergence_MicrosoftMlTokenizersBreaksScoreTiesToTheRight:
        // Microsoft.ML.Tokenizers 2.0.1 merges the rightmost of two equal-score pairs, SentencePiece and run.c the leftmost.
        SentencePieceTokenizer sentencePiece = SentencePieceTokenizerTests.Llama2.Value;
        Llama2cTokenizer llama2c = Llama2cTokenizer.Load(SharedData.Llama2TokenizerBin);
        IReadOnlyList<string> lines = SharedData.WikiTextLines;
        var differing = new List<int>();
        for (int i = 0; i < lines.Count; i++)
        {
            if (!llama2c.Encode(lines[i], addBos: true).AsSpan().SequenceEqual(sentencePiece.Encode(lines[i], addBos: true)))
            {
                differing.Add(i);
            }
        }

        Assert.Equal([1531], differing);
        Assert.Contains("Mark VIIIs were produced", lines[1531], StringComparison.Ordinal);
    }

    [Fact]
    public void AllTokenizers_StreamedBytesEqualDecode_OnWikiTextLines()
    {
        var tokenizers = new ITextTokenizer[]
        {
            Llama2cTokenizer.Load(SharedData.Stories260KTokenizer),
            SentencePieceTokenizerTests.Llama2.Value,
            Cl100kTokenizerJsonFixture.Shared.Value.Loaded,
        };

        foreach (ITextTokenizer tokenizer in tokenizers)
        {
            foreach (string line in SharedData.WikiTextLines.Skip(300).Take(50))
            {
                int[] ids = tokenizer.Encode(line, addBos: true);
                Assert.Equal(System.Text.Encoding.UTF8.GetBytes(tokenizer.Decode(ids)), TokenizerAssert.StreamBytes(tokenizer, ids));
                Assert.Equal(line, TokenizerAssert.StreamText(tokenizer, ids));
            }
        }
    }
}
