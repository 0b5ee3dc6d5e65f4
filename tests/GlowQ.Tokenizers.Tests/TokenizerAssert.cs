using System.Text;

namespace GlowQ.Tokenizers.Tests;

/// <summary>Helpers shared by the tokenizer tests.</summary>
internal static class TokenizerAssert
{
    /// <summary>Bytes of a token sequence through AppendTokenBytes, as a streaming caller would gather them.</summary>
    public static byte[] StreamBytes(ITextTokenizer tokenizer, IReadOnlyList<int> tokens)
    {
        var bytes = new List<byte>();
        int previous = -1;
        foreach (int token in tokens)
        {
            tokenizer.AppendTokenBytes(token, previous, bytes);
            previous = token;
        }

        return [.. bytes];
    }

    /// <summary>
    /// Streams tokens one at a time through a UTF-8 decoder that holds back incomplete sequences (as the engine does) and
    /// returns the text emitted; checks that nothing is emitted as U+FFFD mid-stream when the whole is valid.
    /// </summary>
    public static string StreamText(ITextTokenizer tokenizer, IReadOnlyList<int> tokens)
    {
        Decoder decoder = new UTF8Encoding(false, throwOnInvalidBytes: true).GetDecoder();
        var text = new StringBuilder();
        var chunk = new List<byte>();
        int previous = -1;
        char[] chars = new char[64];
        foreach (int token in tokens)
        {
            chunk.Clear();
            tokenizer.AppendTokenBytes(token, previous, chunk);
            previous = token;
            byte[] bytes = [.. chunk];
            int count = decoder.GetCharCount(bytes, 0, bytes.Length, flush: false);
            if (count > chars.Length)
            {
                chars = new char[count];
            }

            int written = decoder.GetChars(bytes, 0, bytes.Length, chars, 0, flush: false);
            text.Append(chars, 0, written);
        }

        int last = decoder.GetChars([], 0, 0, chars, 0, flush: true);
        text.Append(chars, 0, last);
        return text.ToString();
    }

    public static void SingleLine(Exception ex)
    {
        Assert.DoesNotContain('\n', ex.Message);
        Assert.DoesNotContain('\r', ex.Message);
    }
}
