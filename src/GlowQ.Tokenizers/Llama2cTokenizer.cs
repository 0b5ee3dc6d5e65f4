using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace GlowQ.Tokenizers;

/// <summary>
/// The tokenizer of Karpathy's llama2.c (<c>tokenizer.bin</c>, <c>tok512.bin</c>), encoding and decoding exactly as
/// <c>encode()</c>/<c>decode()</c> in its run.c.
/// </summary>
/// <remarks>
/// <para>File format: int32 max_token_length, then for each token i in [0, vocabSize): float32 score, int32 byte
/// length, the bytes (little endian). The vocabulary size is not stored: it is the number of entries up to the end
/// of the file.</para>
/// <para>Encoding (run.c <c>encode</c>): optional BOS (id 1); a dummy-prefix token " " when the text is non-empty;
/// then one token per UTF-8 code point when that code point is a piece, otherwise one byte-fallback token per byte
/// (byte b → id b + 3); then, repeatedly, the adjacent pair whose concatenation is a piece with the highest score is
/// merged (the leftmost pair wins ties; only scores above -1e10 count). No EOS. run.c rescans every pair after each
/// merge; <see cref="ScoreOrderedMerge"/> (shared with <see cref="SentencePieceTokenizer"/>) keeps the candidate pairs in
/// a priority queue instead, which picks the same pair every time, and pieces are looked up in a dictionary instead of
/// run.c's bsearch over the sorted vocabulary (the same answer when pieces are unique; see <see cref="DuplicatePieceCount"/>).</para>
/// <para>Decoding (run.c <c>decode</c>): after BOS (previous token 1) a leading space of the piece is dropped; a piece
/// "&lt;0xNN&gt;" stands for the raw byte. So a sequence encoded with BOS decodes to the text itself, one encoded without
/// BOS to the text with the dummy-prefix space in front. Two deliberate differences from run.c: ids 0 (&lt;unk&gt;), 1 (&lt;s&gt;) and
/// 2 (&lt;/s&gt;) contribute no bytes (run.c would print their pieces, e.g. "\n&lt;s&gt;\n"), and text containing a NUL
/// character is encoded past it (run.c sees a C string and would stop there).</para>
/// </remarks>
public sealed class Llama2cTokenizer : ITextTokenizer
{
    /// <summary>Id of &lt;unk&gt; in the llama2.c layout.</summary>
    public const int UnknownId = 0;

    /// <summary>Id of &lt;s&gt; (BOS) in the llama2.c layout; run.c hard-codes it.</summary>
    public const int BeginOfSequenceId = 1;

    /// <summary>Id of &lt;/s&gt; (EOS) in the llama2.c layout; run.c hard-codes it.</summary>
    public const int EndOfSequenceId = 2;

    private const int ByteFallbackOffset = 3;
    private const double MinimumMergeScore = -1e10; // run.c: best_score starts at -1e10 and needs a strictly higher score

    private static readonly int[] EosIdList = [EndOfSequenceId];

    private readonly byte[][] _pieces;
    private readonly float[] _scores;
    private readonly Dictionary<string, int> _pieceIds; // key: the piece's bytes as Latin-1 chars (one char per byte)
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _pieceLookup;
    private readonly byte[][] _decoded;         // bytes of token i after any token other than BOS
    private readonly byte[][] _decodedAfterBos; // bytes of token i right after BOS
    private readonly int _dummyPrefixId;        // id of the piece " ", or -1
    private readonly ScoreOrderedMerge _merge;

    private Llama2cTokenizer(string sourceName, int maxTokenLength, byte[][] pieces, float[] scores)
    {
        SourceName = sourceName;
        MaxTokenLength = maxTokenLength;
        _pieces = pieces;
        _scores = scores;
        _pieceIds = new Dictionary<string, int>(pieces.Length, StringComparer.Ordinal);
        _decoded = new byte[pieces.Length][];
        _decodedAfterBos = new byte[pieces.Length][];
        var isTarget = new bool[pieces.Length];
        for (int i = 0; i < pieces.Length; i++)
        {
            isTarget[i] = (double)scores[i] > MinimumMergeScore;
            if (!_pieceIds.TryAdd(Latin1(pieces[i]), i))
            {
                DuplicatePieceCount++;
            }

            if (i <= EndOfSequenceId)
            {
                _decoded[i] = [];
                _decodedAfterBos[i] = [];
                continue;
            }

            _decoded[i] = DecodePiece(pieces[i]);
            _decodedAfterBos[i] = pieces[i].Length > 0 && pieces[i][0] == (byte)' ' ? DecodePiece(pieces[i].AsSpan(1)) : _decoded[i];
        }

        _pieceLookup = _pieceIds.GetAlternateLookup<ReadOnlySpan<char>>();
        _dummyPrefixId = _pieceIds.TryGetValue(" ", out int id) ? id : -1;
        _merge = new ScoreOrderedMerge(_pieceIds, scores, isTarget);
    }

    /// <inheritdoc />
    public int VocabularySize => _pieces.Length;

    /// <inheritdoc />
    public int? BosId => BeginOfSequenceId;

    /// <inheritdoc />
    public IReadOnlyList<int> EosIds => EosIdList;

    /// <inheritdoc />
    public string Description => $"llama2.c {SourceName} ({VocabularySize} tokens)";

    /// <summary>File name the tokenizer was read from (used in messages).</summary>
    public string SourceName { get; }

    /// <summary>The max_token_length header field.</summary>
    public int MaxTokenLength { get; }

    /// <summary>
    /// Number of pieces that repeat an earlier piece. run.c's bsearch would pick an arbitrary one of the copies; this class
    /// uses the lowest id. Zero for tok512.bin and the Llama-2 tokenizer.bin.
    /// </summary>
    public int DuplicatePieceCount { get; }

    /// <summary>Loads a llama2.c tokenizer file.</summary>
    /// <param name="path">The tokenizer.bin file.</param>
    /// <param name="expectedVocabSize">The vocabulary size the model expects (the checkpoint's vocab_size), or null to accept what the file holds.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="TokenizerFormatException">The file is malformed or holds a different number of tokens than expected.</exception>
    public static Llama2cTokenizer Load(string path, int? expectedVocabSize = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Tokenizer file not found: {path}", path);
        }

        return Parse(File.ReadAllBytes(path), Path.GetFileName(path), expectedVocabSize);
    }

    /// <summary>Parses the bytes of a llama2.c tokenizer file.</summary>
    /// <param name="data">The whole file.</param>
    /// <param name="sourceName">Name used in error messages and <see cref="Description"/>.</param>
    /// <param name="expectedVocabSize">The vocabulary size the model expects, or null to accept what the file holds.</param>
    /// <exception cref="TokenizerFormatException">The data is malformed or holds a different number of tokens than expected.</exception>
    public static Llama2cTokenizer Parse(ReadOnlySpan<byte> data, string sourceName = "tokenizer.bin", int? expectedVocabSize = null)
    {
        ArgumentNullException.ThrowIfNull(sourceName);
        if (expectedVocabSize is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(expectedVocabSize), expectedVocabSize, "The expected vocabulary size must be positive.");
        }

        long size = data.Length;
        if (size < 4)
        {
            throw new TokenizerFormatException(sourceName, $"file is {size} bytes, too short for the int32 max_token_length header");
        }

        int maxTokenLength = BinaryPrimitives.ReadInt32LittleEndian(data);
        if (maxTokenLength <= 0)
        {
            throw new TokenizerFormatException(sourceName, $"max_token_length is {maxTokenLength}, expected a positive value (is this a llama2.c tokenizer.bin?)");
        }

        var pieces = new List<byte[]>(expectedVocabSize ?? 1024);
        var scores = new List<float>(expectedVocabSize ?? 1024);
        int offset = 4;
        while (offset < data.Length)
        {
            int index = pieces.Count;
            if (data.Length - offset < 8)
            {
                throw new TokenizerFormatException(sourceName, $"token {index} header (score, length) runs past end of file (offset {offset}, size {size})");
            }

            float score = BinaryPrimitives.ReadSingleLittleEndian(data[offset..]);
            int length = BinaryPrimitives.ReadInt32LittleEndian(data[(offset + 4)..]);
            offset += 8;
            if (length < 0)
            {
                throw new TokenizerFormatException(sourceName, $"token {index} has negative length {length} (offset {offset - 4})");
            }

            if (length > data.Length - offset)
            {
                throw new TokenizerFormatException(sourceName, $"token {index} length {length} runs past end of file (offset {offset}, size {size})");
            }

            if (length > maxTokenLength)
            {
                // run.c sizes its merge buffer from max_token_length; a longer piece would overflow it.
                throw new TokenizerFormatException(sourceName, $"token {index} length {length} exceeds max_token_length {maxTokenLength} (offset {offset})");
            }

            pieces.Add(data.Slice(offset, length).ToArray());
            scores.Add(score);
            offset += length;
        }

        if (expectedVocabSize is int expected && expected != pieces.Count)
        {
            throw new TokenizerFormatException(sourceName, $"file holds {pieces.Count} tokens but the model expects a vocabulary of {expected}");
        }

        if (pieces.Count <= EndOfSequenceId)
        {
            throw new TokenizerFormatException(sourceName, $"file holds {pieces.Count} tokens; llama2.c needs at least <unk>, <s> and </s> (ids 0-2)");
        }

        return new Llama2cTokenizer(sourceName, maxTokenLength, [.. pieces], [.. scores]);
    }

    /// <summary>The raw bytes of piece <paramref name="token"/> as stored in the file (a space is a plain ' ', not '▁').</summary>
    public ReadOnlySpan<byte> GetPiece(int token)
    {
        CheckToken(token);
        return _pieces[token];
    }

    /// <summary>The merge score of piece <paramref name="token"/>.</summary>
    public float GetScore(int token)
    {
        CheckToken(token);
        return _scores[token];
    }

    /// <summary>Looks up the id of a piece given as UTF-8 bytes (a space is ' ').</summary>
    public bool TryGetId(ReadOnlySpan<byte> piece, out int token)
    {
        Span<char> key = piece.Length <= 256 ? stackalloc char[piece.Length] : new char[piece.Length];
        Latin1(piece, key);
        return _pieceLookup.TryGetValue(key, out token);
    }

    /// <inheritdoc />
    public int[] Encode(string text, bool addBos)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Encode(Encoding.UTF8.GetBytes(text), addBos);
    }

    /// <summary>
    /// Encodes UTF-8 bytes exactly as run.c's <c>encode(t, text, bos, eos=0, ...)</c>, including its handling of invalid
    /// UTF-8 (each byte of an unknown or malformed sequence becomes a byte-fallback token).
    /// </summary>
    /// <exception cref="InvalidOperationException">The vocabulary lacks the " " piece (needed for the dummy prefix) or a byte-fallback id.</exception>
    public int[] Encode(ReadOnlySpan<byte> utf8, bool addBos)
    {
        // Every symbol's text is its piece as Latin-1 chars, laid end to end, so that the merge sees run.c's
        // concatenation of pieces (a byte-fallback token contributes "<0xNN>", not the byte).
        var text = new List<char>((utf8.Length * 2) + 8);
        var symbols = new List<MergeSymbol>(utf8.Length + 2);
        if (addBos)
        {
            AddSymbol(text, symbols, BeginOfSequenceId);
        }

        if (utf8.IsEmpty)
        {
            return addBos ? [BeginOfSequenceId] : [];
        }

        // add_dummy_prefix: run.c prepends the token for " " whenever the text is non-empty.
        if (_dummyPrefixId < 0)
        {
            throw new InvalidOperationException($"{SourceName}: the vocabulary has no \" \" piece, which run.c needs for the dummy prefix.");
        }

        AddSymbol(text, symbols, _dummyPrefixId);

        // Code point by code point, as run.c: a code point is a leading byte plus up to 3 continuation bytes
        // (at most 4 bytes are gathered; further continuation bytes start a new "code point").
        Span<char> buffer = stackalloc char[4];
        int length = 0;
        for (int i = 0; i < utf8.Length; i++)
        {
            byte b = utf8[i];
            if ((b & 0xC0) != 0x80)
            {
                length = 0;
            }

            buffer[length++] = (char)b;
            bool nextIsContinuation = i + 1 < utf8.Length && (utf8[i + 1] & 0xC0) == 0x80;
            if (nextIsContinuation && length < 4)
            {
                continue;
            }

            if (_pieceLookup.TryGetValue(buffer[..length], out int id))
            {
                AddSymbol(text, symbols, id);
            }
            else
            {
                for (int k = 0; k < length; k++)
                {
                    int byteId = buffer[k] + ByteFallbackOffset;
                    if (byteId >= _pieces.Length)
                    {
                        throw new InvalidOperationException($"{SourceName}: byte-fallback id {byteId} for byte 0x{(int)buffer[k]:X2} is outside the vocabulary of {_pieces.Length}.");
                    }

                    AddSymbol(text, symbols, byteId);
                }
            }

            length = 0;
        }

        // run.c's merge loop runs over the whole array, BOS included (no piece merges with BOS in practice).
        Span<MergeSymbol> merged = CollectionsMarshal.AsSpan(symbols);
        int count = _merge.Merge(CollectionsMarshal.AsSpan(text), merged);
        var result = new int[count];
        for (int i = 0; i < count; i++)
        {
            result[i] = merged[i].Id;
        }

        return result;
    }

    private void AddSymbol(List<char> text, List<MergeSymbol> symbols, int id)
    {
        byte[] piece = _pieces[id];
        symbols.Add(new MergeSymbol(text.Count, piece.Length, id));
        foreach (byte b in piece)
        {
            text.Add((char)b);
        }
    }

    /// <inheritdoc />
    public void AppendTokenBytes(int token, int previousToken, List<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        CheckToken(token);
        destination.AddRange(previousToken == BeginOfSequenceId ? _decodedAfterBos[token] : _decoded[token]);
    }

    /// <inheritdoc />
    public string Decode(ReadOnlySpan<int> tokens) => TextTokenizerDecoding.DecodeViaBytes(this, tokens);

    private void CheckToken(int token)
    {
        if ((uint)token >= (uint)_pieces.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(token), token, $"Token id must be in [0, {_pieces.Length}).");
        }
    }

    /// <summary>run.c's decode of one piece: "&lt;0xNN&gt;" (as sscanf "&lt;0x%02hhX&gt;" reads it) becomes the raw byte.</summary>
    private static byte[] DecodePiece(ReadOnlySpan<byte> piece)
    {
        // sscanf succeeds once "<0x" is followed by one or two hex digits; it does not check the closing '>'.
        if (piece.Length >= 4 && piece[0] == (byte)'<' && piece[1] == (byte)'0' && piece[2] == (byte)'x' && IsHex(piece[3]))
        {
            int value = HexValue(piece[3]);
            if (piece.Length >= 5 && IsHex(piece[4]))
            {
                value = (value * 16) + HexValue(piece[4]);
            }

            return [(byte)value];
        }

        return piece.ToArray();
    }

    private static bool IsHex(byte c) => c is (>= (byte)'0' and <= (byte)'9') or (>= (byte)'a' and <= (byte)'f') or (>= (byte)'A' and <= (byte)'F');

    private static int HexValue(byte c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;

    private static string Latin1(ReadOnlySpan<byte> bytes) => string.Create(bytes.Length, bytes.ToArray(), static (span, b) => Latin1(b, span));

    private static void Latin1(ReadOnlySpan<byte> bytes, Span<char> destination)
    {
        for (int i = 0; i < bytes.Length; i++)
        {
            destination[i] = (char)bytes[i];
        }
    }
}
