namespace GlowQ.Tokenizers;

/// <summary>
/// A tokenizer as the engine sees it: text to ids, and ids back to the exact bytes they stand for.
/// Decoding is per token and byte-oriented so that streaming output can hold back an incomplete UTF-8
/// sequence (a byte-fallback token or a byte-level BPE piece may carry only part of a character).
/// </summary>
public interface ITextTokenizer
{
    /// <summary>Number of ids the tokenizer can produce (the model's vocabulary may be larger).</summary>
    int VocabularySize { get; }

    /// <summary>Beginning-of-sequence id, or null when the tokenizer has none.</summary>
    int? BosId { get; }

    /// <summary>End-of-sequence ids (a model may have several, e.g. Llama-3's &lt;|eot_id|&gt; and &lt;|end_of_text|&gt;).</summary>
    IReadOnlyList<int> EosIds { get; }

    /// <summary>Short description for logs and metadata, e.g. "llama2.c (512 tokens)".</summary>
    string Description { get; }

    /// <summary>Encodes <paramref name="text"/>; prepends BOS when <paramref name="addBos"/> and the tokenizer has one.</summary>
    int[] Encode(string text, bool addBos);

    /// <summary>
    /// Appends to <paramref name="destination"/> the bytes that <paramref name="token"/> contributes to the text when it
    /// follows <paramref name="previousToken"/> (-1 at the start). Special/control tokens contribute nothing.
    /// Concatenating the bytes of an encoded sequence (without BOS) gives back the UTF-8 of the encoded text.
    /// </summary>
    void AppendTokenBytes(int token, int previousToken, List<byte> destination);

    /// <summary>Decodes a whole sequence; equivalent to concatenating <see cref="AppendTokenBytes"/> and decoding UTF-8.</summary>
    string Decode(ReadOnlySpan<int> tokens);
}

/// <summary>Behaviour every <see cref="ITextTokenizer"/> shares.</summary>
public static class TextTokenizerDecoding
{
    /// <summary>Whole-sequence decoding defined by <see cref="ITextTokenizer.AppendTokenBytes"/>, so streamed and batch text always agree.</summary>
    public static string DecodeViaBytes(ITextTokenizer tokenizer, ReadOnlySpan<int> tokens)
    {
        var bytes = new List<byte>(tokens.Length * 4);
        int previous = -1;
        foreach (int token in tokens)
        {
            tokenizer.AppendTokenBytes(token, previous, bytes);
            previous = token;
        }

        return System.Text.Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes));
    }
}

