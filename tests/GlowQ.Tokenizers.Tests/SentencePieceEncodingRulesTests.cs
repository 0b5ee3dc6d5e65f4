namespace GlowQ.Tokenizers.Tests;

/// <summary>
/// SentencePiece's encoding rules on small hand-made models, where the expected pieces can be read off the vocabulary.
/// Every expectation here was checked against SentencePiece 0.1.97 on the same model bytes.
/// </summary>
public class SentencePieceEncodingRulesTests
{
    [Fact]
    public void Encode_EqualScorePairs_MergesTheLeftmostFirst()
    {
        // "▁aaa": both "aa" pairs score the same; SentencePiece takes the left one, leaving the last 'a' alone.
        var model = SentencePieceModelBuilder.WithSpecialPieces().Add("▁", -1).Add("a", -2).Add("aa", -3);
        Assert.Equal(["▁", "aa", "a"], EncodePieces(model, "aaa"));
    }

    [Fact]
    public void Encode_HigherScoreMergesFirst_RegardlessOfPosition()
    {
        var model = SentencePieceModelBuilder.WithSpecialPieces().Add("▁", -1).Add("a", -2).Add("b", -2).Add("ab", -5).Add("bb", -4);
        Assert.Equal(["▁", "a", "bb"], EncodePieces(model, "abb"));
    }

    [Fact]
    public void Encode_RemoveExtraWhitespacesOff_KeepsEverySpaceAsLlama2Does()
    {
        SentencePieceModelBuilder model = SpaceModel();
        Assert.Equal(["▁", "▁", "▁a", "▁", "▁", "▁b", "▁", "▁"], EncodePieces(model, "  a   b  "));
    }

    [Fact]
    public void Encode_RemoveExtraWhitespacesOn_DropsLeadingTrailingAndRepeatedSpaces()
    {
        SentencePieceModelBuilder model = SpaceModel();
        model.RemoveExtraWhitespaces = true;
        Assert.Equal(["▁a", "▁b"], EncodePieces(model, "  a   b  "));
        Assert.Empty(EncodePieces(model, "   "));
        Assert.Equal([1], model.Load().Encode("   ", addBos: true));
    }

    [Fact]
    public void Encode_RemoveExtraWhitespacesOn_OnlyAsciiSpacesCount()
    {
        // Without a character map the normalizer knows only ' ' as whitespace; tabs and newlines stay.
        SentencePieceModelBuilder model = SpaceModel().Add("\t", -3).Add("\n", -3);
        model.RemoveExtraWhitespaces = true;
        Assert.Equal(["▁", "\t", "▁a", "▁", "\n"], EncodePieces(model, "\t a \n "));
    }

    [Fact]
    public void Encode_AddDummyPrefixOff_PutsNoSpaceSymbolInFront()
    {
        SentencePieceModelBuilder model = SpaceModel();
        model.AddDummyPrefix = false;
        Assert.Equal(["a", "▁b"], EncodePieces(model, "a b"));
    }

    [Fact]
    public void Encode_EscapeWhitespacesOff_KeepsPlainSpaces()
    {
        var model = SentencePieceModelBuilder.WithSpecialPieces().Add(" ", -1).Add("a", -1).Add(" a", -2);
        model.EscapeWhitespaces = false;
        Assert.Equal([" a", " a"], EncodePieces(model, "a a"));
    }

    [Fact]
    public void Encode_UserDefinedPiece_IsMatchedWholeAndNeverMerged()
    {
        // "▁x" is a better piece than '▁' + 'x', but a user-defined 'x' never merges with its neighbours.
        var model = SentencePieceModelBuilder.WithSpecialPieces()
            .Add("▁", -1).Add("a", -1).Add("b", -1).Add("▁a", -2).Add("▁x", 0)
            .Add("<sep>", 0, SentencePieceType.UserDefined).Add("x", 0, SentencePieceType.UserDefined);
        Assert.Equal(["▁a", "<sep>", "b"], EncodePieces(model, "a<sep>b"));
        Assert.Equal(["▁", "x"], EncodePieces(model, "x"));
    }

    [Fact]
    public void Encode_UserDefinedPieceWithSpaces_KeepsItsSpacesThroughWhitespaceRemoval()
    {
        // The normalizer matches user-defined pieces in the raw text and leaves their inner spaces alone, but the BPE
        // step matches them in the normalized text, where those spaces are now '▁': so "a  a" is not found there and
        // the two spaces survive as two '▁' pieces.
        var model = SentencePieceModelBuilder.WithSpecialPieces()
            .Add("▁", -1).Add("a", -1).Add("▁a", -2).Add("a  a", 0, SentencePieceType.UserDefined);
        model.RemoveExtraWhitespaces = true;
        Assert.Equal(["▁a", "▁", "▁a", "▁a"], EncodePieces(model, "a  a  a"));
    }

    [Fact]
    public void Encode_ControlPiece_IsNeverAMergeTarget()
    {
        var model = SentencePieceModelBuilder.WithSpecialPieces()
            .Add("▁", -1).Add("a", -1).Add("b", -1).Add("ab", 0, SentencePieceType.Control);
        Assert.Equal(["▁", "a", "b"], EncodePieces(model, "ab"));
    }

    [Fact]
    public void Encode_UnusedPiece_MergesOnwardButIsSplitBackWhenItSurvives()
    {
        // SentencePiece merges into UNUSED pieces like any other (so "ab" can still grow into "abc"), and only at the
        // end takes a surviving UNUSED piece apart into the pair it was formed from.
        var model = SentencePieceModelBuilder.WithSpecialPieces()
            .Add("▁", -1).Add("a", -5).Add("b", -5).Add("c", -5).Add("d", -5)
            .Add("ab", -1, SentencePieceType.Unused).Add("abc", -2);
        Assert.Equal(["▁", "abc"], EncodePieces(model, "abc"));
        Assert.Equal(["▁", "a", "b", "d"], EncodePieces(model, "abd"));
    }

    [Fact]
    public void Encode_UnknownCharacters_WithoutByteFallback_BecomeOneUnkPerRun()
    {
        var model = SentencePieceModelBuilder.WithSpecialPieces().Add("▁", -1).Add("a", -1).Add("▁a", -2);
        Assert.Equal(["▁a", "<unk>", "a", "<unk>"], EncodePieces(model, "a日本a🙂"));
    }

    [Fact]
    public void Encode_UnknownCharacters_WithByteFallback_BecomeTheirUtf8BytePieces()
    {
        var model = SentencePieceModelBuilder.WithSpecialPieces().AddBytePieces().Add("▁", -1).Add("a", -1).Add("▁a", -2);
        Assert.Equal(["▁a", "<0xE6>", "<0x97>", "<0xA5>", "a", "<0xF0>", "<0x9F>", "<0x99>", "<0x82>"], EncodePieces(model, "a日a🙂"));
    }

    [Fact]
    public void Encode_TextSpellingASpecialPiece_IsEncodedAsPlainText()
    {
        var model = SentencePieceModelBuilder.WithSpecialPieces().AddBytePieces().Add("▁", -1).Add("<", -1).Add("s", -1).Add(">", -1);
        Assert.Equal(["▁", "<", "s", ">"], EncodePieces(model, "<s>"));
    }

    [Fact]
    public void Parse_UnigramModel_IsRejectedAsUnsupportedVariant()
    {
        var model = SentencePieceModelBuilder.WithSpecialPieces().Add("▁", -1);
        model.ModelType = 1;
        AssertUnsupportedVariant(model, "unigram");
    }

    [Fact]
    public void Parse_NormalizerWithPrecompiledCharsMap_IsRejectedAsUnsupportedVariant()
    {
        var model = SentencePieceModelBuilder.WithSpecialPieces().Add("▁", -1);
        model.NormalizerName = "nmt_nfkc";
        model.PrecompiledCharsMap = [4, 0, 0, 0, 1, 2, 3, 4, 0];
        AssertUnsupportedVariant(model, "\"nmt_nfkc\"");
    }

    [Fact]
    public void Parse_WhitespaceAsSuffix_IsRejectedAsUnsupportedVariant()
    {
        var model = SentencePieceModelBuilder.WithSpecialPieces().Add("▁", -1);
        model.TreatWhitespaceAsSuffix = true;
        AssertUnsupportedVariant(model, "treat_whitespace_as_suffix");
    }

    [Fact]
    public void Parse_ModelsSentencePieceRefusesToLoad_ThrowOneLineFormatErrors()
    {
        // Each of these makes SentencePiece 0.1.97's Load fail too.
        var noUnknown = new SentencePieceModelBuilder().Add("<s>", 0, SentencePieceType.Control).Add("▁", -1);
        var duplicate = SentencePieceModelBuilder.WithSpecialPieces().Add("▁", -1).Add("a", -1).Add("a", -2);
        var missingBytes = SentencePieceModelBuilder.WithSpecialPieces().Add("▁", -1);
        missingBytes.ByteFallback = true;
        var bytesWithoutFallback = SentencePieceModelBuilder.WithSpecialPieces().AddBytePieces().Add("▁", -1);
        bytesWithoutFallback.ByteFallback = false;

        foreach (var (model, problem) in new[] { (noUnknown, "UNKNOWN"), (duplicate, "repeats piece"), (missingBytes, "<0x00>"), (bytesWithoutFallback, "byte_fallback is off") })
        {
            var ex = Assert.Throws<TokenizerFormatException>(model.Load);
            Assert.StartsWith("test.model: ", ex.Message, StringComparison.Ordinal);
            Assert.Contains(problem, ex.Message, StringComparison.Ordinal);
            Assert.False(ex.IsUnsupportedVariant);
            TokenizerAssert.SingleLine(ex);
        }
    }

    /// <summary>'▁', 'a', 'b' and the word pieces "▁a", "▁b".</summary>
    private static SentencePieceModelBuilder SpaceModel() =>
        SentencePieceModelBuilder.WithSpecialPieces().Add("▁", -1).Add("a", -1).Add("b", -1).Add("▁a", -2).Add("▁b", -2);

    private static string[] EncodePieces(SentencePieceModelBuilder model, string text)
    {
        SentencePieceTokenizer tokenizer = model.Load();
        return [.. tokenizer.Encode(text, addBos: false).Select(tokenizer.GetPiece)];
    }

    private static void AssertUnsupportedVariant(SentencePieceModelBuilder model, string detail)
    {
        var ex = Assert.Throws<TokenizerFormatException>(model.Load);
        Assert.True(ex.IsUnsupportedVariant);
        Assert.StartsWith("test.model: unsupported variant: ", ex.Message, StringComparison.Ordinal);
        Assert.Contains(detail, ex.Message, StringComparison.Ordinal);
        TokenizerAssert.SingleLine(ex);
    }
}
