namespace GlowQ.Tokenizers;

/// <summary>
/// A tokenizer file is malformed or uses a variant this library does not support. The message is one line that
/// names the file and the problem, e.g. "tok512.bin: token 17 length 999 runs past end of file (offset 1234, size 2000)".
/// </summary>
public class TokenizerFormatException : IOException
{
    public TokenizerFormatException()
    {
    }

    public TokenizerFormatException(string message)
        : base(message)
    {
    }

    public TokenizerFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    internal TokenizerFormatException(string fileName, string problem, Exception? innerException = null, bool unsupportedVariant = false)
        : base(FormatMessage(fileName, problem), innerException)
    {
        FileName = fileName;
        IsUnsupportedVariant = unsupportedVariant;
    }

    /// <summary>The file (name only, as in the message) the problem was found in, when known.</summary>
    public string? FileName { get; }

    /// <summary>
    /// True when the file is well formed but is a variant this library does not implement (for example a
    /// SentencePiece-style tokenizer.json); a loader may then fall back to another file of the same model.
    /// </summary>
    public bool IsUnsupportedVariant { get; }

    internal static string FormatMessage(string fileName, string problem) => fileName + ": " + OneLine(problem);

    /// <summary>Collapses line breaks so that the message stays on one line (inner messages may span several).</summary>
    internal static string OneLine(string text)
    {
        if (text.AsSpan().IndexOfAny('\r', '\n') < 0)
        {
            return text;
        }

        return string.Join(' ', text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }
}
