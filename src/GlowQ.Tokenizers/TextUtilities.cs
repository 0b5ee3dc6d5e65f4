using System.Text;

namespace GlowQ.Tokenizers;

internal static class TextUtilities
{
    /// <summary>
    /// Replaces unpaired UTF-16 surrogates with U+FFFD, as UTF-8 encoding does, so that every stage of a tokenizer sees
    /// the same text (real tokenizers work on Unicode scalar values, which cannot hold a lone surrogate).
    /// </summary>
    public static string ReplaceLoneSurrogates(string text)
    {
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(c))
            {
                return Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(text));
            }
        }

        return text;
    }
}

/// <summary>
/// GPT-2's reversible byte ↔ character table used by byte-level BPE: printable bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') map to
/// themselves, the other 68 bytes to U+0100 onwards in byte order (so ' ' is 'Ġ' and '\n' is 'Ċ').
/// </summary>
internal static class ByteLevelEncoding
{
    private static readonly char[] ByteToCharTable = BuildByteToChar();
    private static readonly Dictionary<char, byte> CharToByteTable = BuildCharToByte();

    public static char ByteToChar(byte b) => ByteToCharTable[b];

    public static bool TryCharToByte(char c, out byte b) => CharToByteTable.TryGetValue(c, out b);

    /// <summary>Maps the UTF-8 bytes of <paramref name="text"/> to byte-level characters.</summary>
    public static string Encode(ReadOnlySpan<char> text)
    {
        int byteCount = Encoding.UTF8.GetByteCount(text);
        Span<byte> bytes = byteCount <= 512 ? stackalloc byte[byteCount] : new byte[byteCount];
        Encoding.UTF8.GetBytes(text, bytes);
        return Encode(bytes);
    }

    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        return string.Create(bytes.Length, bytes.ToArray(), static (span, b) =>
        {
            for (int i = 0; i < b.Length; i++)
            {
                span[i] = ByteToCharTable[b[i]];
            }
        });
    }

    /// <summary>
    /// Bytes of a byte-level piece, as HF's ByteLevel decoder gives them: each character mapped back to its byte, or, when
    /// some character is not in the table (e.g. an added token "\n\n"), the piece's own UTF-8 bytes.
    /// </summary>
    public static byte[] Decode(string piece)
    {
        var result = new byte[piece.Length];
        for (int i = 0; i < piece.Length; i++)
        {
            if (!CharToByteTable.TryGetValue(piece[i], out result[i]))
            {
                return Encoding.UTF8.GetBytes(piece);
            }
        }

        return result;
    }

    private static char[] BuildByteToChar()
    {
        var table = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is (>= '!' and <= '~') or (>= 0xA1 and <= 0xAC) or (>= 0xAE and <= 0xFF);
            table[b] = printable ? (char)b : (char)next++;
        }

        return table;
    }

    private static Dictionary<char, byte> BuildCharToByte()
    {
        var map = new Dictionary<char, byte>(256);
        for (int b = 0; b < 256; b++)
        {
            map[ByteToCharTable[b]] = (byte)b;
        }

        return map;
    }
}
