using System.Runtime.InteropServices;
using System.Text;

namespace GlowQ.Tokenizers;

/// <summary>
/// A SentencePiece BPE <c>tokenizer.model</c> (Llama-2, TinyLlama, Mistral …), encoding and decoding as SentencePiece
/// (checked against SentencePiece 0.1.97).
/// </summary>
/// <remarks>
/// <para>Encoding follows SentencePiece's normalizer, <c>bpe_model.cc</c> and <c>PopulateSentencePieceText</c>. The
/// normalizer spec is honoured: leading, trailing and repeated spaces are dropped when remove_extra_whitespaces is set;
/// '▁' (U+2581) is put in front when add_dummy_prefix is set and replaces every space when escape_whitespaces is set;
/// user-defined pieces pass through whole. Models whose normalizer carries a precompiled character map (NFKC and
/// friends; Llama-2's "identity" has none) or that treat whitespace as a suffix are refused with
/// <see cref="TokenizerFormatException.IsUnsupportedVariant"/>, as are non-BPE models. The normalized text starts as one
/// symbol per Unicode character, or per user-defined piece (longest match; never merged further); then
/// <see cref="ScoreOrderedMerge"/> repeatedly merges the adjacent pair that forms the NORMAL, USER_DEFINED or UNUSED
/// piece with the highest score, the leftmost pair on ties. A surviving UNUSED piece is split back into the pair it was
/// last formed from. A symbol that is no piece becomes its UTF-8 bytes as &lt;0xNN&gt; pieces when the model has
/// byte_fallback, else &lt;unk&gt; (a run of them one &lt;unk&gt;). Ids are looked up as SentencePiece's PieceToId does:
/// CONTROL, UNKNOWN and BYTE pieces first.</para>
/// <para>Per-token bytes follow SentencePiece's decoder: '▁' is a space; a BYTE piece "&lt;0xNN&gt;" is that byte;
/// control pieces (&lt;s&gt;, &lt;/s&gt;) give nothing; at the start of the text (previous token -1 or BOS) one leading
/// space of the piece is dropped when the model adds a dummy prefix. Differences from SentencePiece: the unknown piece
/// gives nothing (SentencePiece prints " ⁇ "), and the leading space is dropped only right at the start or after BOS
/// (SentencePiece also drops it after other invisible tokens at the very start).</para>
/// </remarks>
public sealed class SentencePieceTokenizer : ITextTokenizer
{
    private const char SpaceSymbol = '\u2581';

    private readonly SentencePieceModel _model;
    private readonly byte[][] _bytes;         // bytes of each token in the middle of the text
    private readonly byte[][] _bytesAtStart;  // bytes of each token at the start of the text / after BOS
    private readonly int[] _eosIds;

    // SentencePiece keeps two maps: pieces that BPE may merge into (NORMAL, USER_DEFINED, UNUSED) and the reserved
    // ones (CONTROL, UNKNOWN, BYTE), which PieceToId consults first.
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _mergeable;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _reserved;
    private readonly ScoreOrderedMerge _merge;
    private readonly int _unknownId;
    private readonly int[]? _byteIds;         // id of <0xNN> for each byte, when the model has byte_fallback
    private readonly Dictionary<char, string[]>? _userDefined; // by first char, longest first
    private readonly bool _hasUnused;

    private SentencePieceTokenizer(string sourceName, SentencePieceModel model)
    {
        SourceName = sourceName;
        _model = model;
        int n = model.Pieces.Length;
        _bytes = new byte[n][];
        _bytesAtStart = new byte[n][];
        bool stripAtStart = model.AddDummyPrefix || model.RemoveExtraWhitespaces;
        var mergeable = new Dictionary<string, int>(n, StringComparer.Ordinal);
        var reserved = new Dictionary<string, int>(StringComparer.Ordinal);
        var userDefined = new List<string>();
        var byteFound = new bool[256];
        _unknownId = -1;
        for (int i = 0; i < n; i++)
        {
            string piece = model.Pieces[i];
            SentencePieceType type = model.Types[i];
            if (piece.Length == 0)
            {
                throw new TokenizerFormatException(sourceName, $"piece {i} is empty");
            }

            bool isMergeable = type is SentencePieceType.Normal or SentencePieceType.UserDefined or SentencePieceType.Unused;
            Dictionary<string, int> map = isMergeable ? mergeable : reserved;
            if (!map.TryAdd(piece, i))
            {
                throw new TokenizerFormatException(sourceName, $"piece {i} \"{piece}\" repeats piece {map[piece]}");
            }

            switch (type)
            {
                case SentencePieceType.Unknown:
                    if (_unknownId >= 0)
                    {
                        throw new TokenizerFormatException(sourceName, $"pieces {_unknownId} and {i} are both of type UNKNOWN");
                    }

                    _unknownId = i;
                    _bytes[i] = [];
                    _bytesAtStart[i] = [];
                    break;
                case SentencePieceType.Control:
                    _bytes[i] = [];
                    _bytesAtStart[i] = [];
                    break;
                case SentencePieceType.Byte:
                    if (!TryParseBytePiece(piece, out byte value))
                    {
                        throw new TokenizerFormatException(sourceName, $"byte piece {i} is \"{piece}\", expected <0xNN>");
                    }

                    if (!model.ByteFallback)
                    {
                        // SentencePiece refuses to load such a model rather than guess whether bytes are meant.
                        throw new TokenizerFormatException(sourceName, $"byte piece {i} \"{piece}\" is present although byte_fallback is off");
                    }

                    byteFound[value] = true;
                    _bytes[i] = [value];
                    _bytesAtStart[i] = _bytes[i];
                    break;
                default:
                    if (type == SentencePieceType.UserDefined)
                    {
                        userDefined.Add(piece);
                    }

                    _hasUnused |= type == SentencePieceType.Unused;
                    _bytes[i] = Encoding.UTF8.GetBytes(piece.Replace(SpaceSymbol, ' '));
                    _bytesAtStart[i] = stripAtStart && piece.StartsWith(SpaceSymbol)
                        ? Encoding.UTF8.GetBytes(piece[1..].Replace(SpaceSymbol, ' '))
                        : _bytes[i];
                    break;
            }
        }

        if (_unknownId < 0)
        {
            throw new TokenizerFormatException(sourceName, "no piece is of type UNKNOWN (SentencePiece needs an <unk> piece)");
        }

        _mergeable = mergeable.GetAlternateLookup<ReadOnlySpan<char>>();
        _reserved = reserved.GetAlternateLookup<ReadOnlySpan<char>>();
        _merge = new ScoreOrderedMerge(mergeable, model.Scores, isTarget: null);
        if (model.ByteFallback)
        {
            int missing = Array.IndexOf(byteFound, false);
            if (missing >= 0)
            {
                throw new TokenizerFormatException(sourceName, $"byte_fallback is on but there is no byte piece <0x{missing:X2}>");
            }

            _byteIds = new int[256];
            for (int b = 0; b < 256; b++)
            {
                _byteIds[b] = PieceToId($"<0x{b:X2}>");
            }
        }

        if (userDefined.Count > 0)
        {
            _userDefined = userDefined
                .GroupBy(p => p[0])
                .ToDictionary(g => g.Key, g => g.OrderByDescending(p => p.Length).ToArray());
        }

        BosId = IsValidId(model.BosId) ? model.BosId : null;
        _eosIds = IsValidId(model.EosId) ? [model.EosId] : [];
    }

    /// <inheritdoc />
    public int VocabularySize => _model.Pieces.Length;

    /// <inheritdoc />
    public int? BosId { get; }

    /// <inheritdoc />
    public IReadOnlyList<int> EosIds => _eosIds;

    /// <inheritdoc />
    public string Description => $"SentencePiece {SourceName} ({VocabularySize} tokens)";

    /// <summary>File name the tokenizer was read from (used in messages).</summary>
    public string SourceName { get; }

    /// <summary>Loads a SentencePiece <c>tokenizer.model</c>.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="TokenizerFormatException">The file is not a readable SentencePiece BPE model, or a variant that is not supported.</exception>
    public static SentencePieceTokenizer Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Tokenizer file not found: {path}", path);
        }

        return Parse(File.ReadAllBytes(path), Path.GetFileName(path));
    }

    /// <summary>Parses the bytes of a SentencePiece model.</summary>
    /// <exception cref="TokenizerFormatException">The data is not a readable SentencePiece BPE model, or a variant that is not supported.</exception>
    public static SentencePieceTokenizer Parse(byte[] data, string sourceName = "tokenizer.model")
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(sourceName);

        SentencePieceModel model = SentencePieceModel.Parse(data, sourceName);
        if (model.ModelType != 2)
        {
            string kind = model.ModelType switch { 1 => "unigram", 3 => "word", 4 => "char", _ => $"type {model.ModelType}" };
            throw new TokenizerFormatException(sourceName, $"unsupported variant: SentencePiece model is {kind}; only BPE models are supported", unsupportedVariant: true);
        }

        if (model.PrecompiledCharsMapLength > 0)
        {
            // The map is a Darts trie of NFKC-style rewrites; encoding without it would silently give other ids.
            string name = model.NormalizerName.Length > 0 ? $"\"{model.NormalizerName}\"" : "(unnamed)";
            throw new TokenizerFormatException(sourceName, $"unsupported variant: normalization rule {name} needs its precompiled character map ({model.PrecompiledCharsMapLength} bytes); only identity normalization is supported", unsupportedVariant: true);
        }

        if (model.TreatWhitespaceAsSuffix)
        {
            throw new TokenizerFormatException(sourceName, "unsupported variant: treat_whitespace_as_suffix is set; only a '▁' prefix is supported", unsupportedVariant: true);
        }

        return new SentencePieceTokenizer(sourceName, model);
    }

    /// <summary>The piece of <paramref name="token"/> as stored in the model ('▁' for spaces).</summary>
    public string GetPiece(int token)
    {
        CheckToken(token);
        return _model.Pieces[token];
    }

    /// <summary>The kind of piece <paramref name="token"/> is.</summary>
    public SentencePieceType GetPieceType(int token)
    {
        CheckToken(token);
        return _model.Types[token];
    }

    /// <summary>The merge score of piece <paramref name="token"/> (higher merges first).</summary>
    public float GetScore(int token)
    {
        CheckToken(token);
        return _model.Scores[token];
    }

    /// <summary>Looks up the id of a piece as stored in the model ('▁' for spaces), as SentencePiece's PieceToId does but without falling back to &lt;unk&gt;.</summary>
    public bool TryGetId(string piece, out int token)
    {
        ArgumentNullException.ThrowIfNull(piece);
        return _reserved.TryGetValue(piece, out token) || _mergeable.TryGetValue(piece, out token);
    }

    /// <inheritdoc />
    public int[] Encode(string text, bool addBos)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length + 1);
        if (addBos && BosId is int bos)
        {
            ids.Add(bos);
        }

        string normalized = Normalize(TextUtilities.ReplaceLoneSurrogates(text));
        if (normalized.Length > 0)
        {
            EncodeNormalized(normalized, ids);
        }

        return [.. ids];
    }

    /// <inheritdoc />
    public void AppendTokenBytes(int token, int previousToken, List<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        CheckToken(token);
        bool atStart = previousToken == -1 || (BosId is int bos && previousToken == bos);
        destination.AddRange(atStart ? _bytesAtStart[token] : _bytes[token]);
    }

    /// <inheritdoc />
    public string Decode(ReadOnlySpan<int> tokens) => TextTokenizerDecoding.DecodeViaBytes(this, tokens);

    /// <summary>SentencePiece's Normalizer::Normalize for a model without a character map.</summary>
    private string Normalize(string input)
    {
        if (input.Length == 0)
        {
            return input;
        }

        bool removeExtra = _model.RemoveExtraWhitespaces;
        bool escape = _model.EscapeWhitespaces;
        int i = 0;
        if (removeExtra)
        {
            while (i < input.Length && input[i] == ' ' && PrefixLength(input, i) == 1)
            {
                i++;
            }

            if (i == input.Length)
            {
                return string.Empty; // SentencePiece adds no dummy prefix to text that was only spaces
            }
        }

        var normalized = new StringBuilder(input.Length - i + 2);
        char space = escape ? SpaceSymbol : ' ';
        if (_model.AddDummyPrefix)
        {
            normalized.Append(space);
        }

        // Spaces are dropped at the front of each unit (a character or a user-defined piece) that follows a unit
        // ending in a space, so a user-defined piece keeps its inner spaces.
        bool previousEndsInSpace = removeExtra;
        while (i < input.Length)
        {
            int length = PrefixLength(input, i);
            ReadOnlySpan<char> unit = input.AsSpan(i, length);
            if (previousEndsInSpace)
            {
                unit = unit.TrimStart(' ');
            }

            if (!unit.IsEmpty)
            {
                foreach (char c in unit)
                {
                    normalized.Append(escape && c == ' ' ? SpaceSymbol : c);
                }

                previousEndsInSpace = removeExtra && unit[^1] == ' ';
            }

            i += length;
        }

        if (removeExtra)
        {
            // Like SentencePiece this also strips a literal '▁' at the end of the text (and, with it, a lone dummy prefix).
            int end = normalized.Length;
            while (end > 0 && normalized[end - 1] == space)
            {
                end--;
            }

            normalized.Length = end;
        }

        return normalized.ToString();
    }

    /// <summary>SentencePiece's BPE Model::Encode plus PopulateSentencePieceText's mapping of pieces to ids.</summary>
    private void EncodeNormalized(string normalized, List<int> ids)
    {
        var symbols = new List<MergeSymbol>(normalized.Length);
        for (int i = 0; i < normalized.Length;)
        {
            int userDefined = MatchUserDefined(normalized, i);
            int length = userDefined > 0 ? userDefined : CharLength(normalized, i);
            symbols.Add(new MergeSymbol(i, length, -1, Frozen: userDefined > 0));
            i += length;
        }

        Dictionary<int, int>? splits = null;
        Action<int, int>? onCandidate = null;
        if (_hasUnused)
        {
            var lastSplit = new Dictionary<int, int>();
            splits = lastSplit;
            onCandidate = (id, leftLength) =>
            {
                if (_model.Types[id] == SentencePieceType.Unused)
                {
                    lastSplit[id] = leftLength;
                }
            };
        }

        Span<MergeSymbol> merged = CollectionsMarshal.AsSpan(symbols);
        int count = _merge.Merge(normalized, merged, onCandidate);
        bool previousUnknown = false;
        for (int k = 0; k < count; k++)
        {
            Resegment(normalized.AsSpan(merged[k].Start, merged[k].Length), splits, ids, ref previousUnknown);
        }
    }

    /// <summary>Splits a surviving UNUSED piece back into the pair it was last formed from, then emits the ids.</summary>
    private void Resegment(ReadOnlySpan<char> piece, Dictionary<int, int>? splits, List<int> ids, ref bool previousUnknown)
    {
        int id = PieceToId(piece);
        if (splits is not null && _model.Types[id] == SentencePieceType.Unused && splits.TryGetValue(id, out int leftLength))
        {
            Resegment(piece[..leftLength], splits, ids, ref previousUnknown);
            Resegment(piece[leftLength..], splits, ids, ref previousUnknown);
            return;
        }

        bool unknown = id == _unknownId;
        if (unknown && _byteIds is not null)
        {
            int maxBytes = Encoding.UTF8.GetMaxByteCount(piece.Length);
            Span<byte> utf8 = maxBytes <= 256 ? stackalloc byte[256] : new byte[maxBytes];
            int byteCount = Encoding.UTF8.GetBytes(piece, utf8);
            foreach (byte b in utf8[..byteCount])
            {
                ids.Add(_byteIds[b]);
            }
        }
        else if (!(unknown && previousUnknown))
        {
            ids.Add(id); // a run of unknown pieces is one <unk>, so that it decodes to one " ⁇ "
        }

        previousUnknown = unknown;
    }

    private int PieceToId(ReadOnlySpan<char> piece) =>
        _reserved.TryGetValue(piece, out int id) || _mergeable.TryGetValue(piece, out id) ? id : _unknownId;

    /// <summary>Length of the unit SentencePiece's normalizer takes at <paramref name="i"/>: a user-defined piece or one character.</summary>
    private int PrefixLength(string text, int i)
    {
        int userDefined = MatchUserDefined(text, i);
        return userDefined > 0 ? userDefined : CharLength(text, i);
    }

    /// <summary>Length of the longest user-defined piece at <paramref name="i"/>, or 0.</summary>
    private int MatchUserDefined(string text, int i)
    {
        if (_userDefined is null || !_userDefined.TryGetValue(text[i], out string[]? candidates))
        {
            return 0;
        }

        foreach (string candidate in candidates)
        {
            if (text.AsSpan(i).StartsWith(candidate, StringComparison.Ordinal))
            {
                return candidate.Length;
            }
        }

        return 0;
    }

    /// <summary>UTF-16 length of the code point at <paramref name="i"/> (lone surrogates were replaced beforehand).</summary>
    private static int CharLength(string text, int i) =>
        char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;

    private bool IsValidId(int id) => (uint)id < (uint)_model.Pieces.Length;

    private void CheckToken(int token)
    {
        if (!IsValidId(token))
        {
            throw new ArgumentOutOfRangeException(nameof(token), token, $"Token id must be in [0, {_model.Pieces.Length}).");
        }
    }

    /// <summary>SentencePiece accepts exactly "&lt;0x" + two upper-case hex digits + "&gt;" (its ByteToPiece format).</summary>
    private static bool TryParseBytePiece(string piece, out byte value)
    {
        value = 0;
        return piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>'
            && char.IsAsciiHexDigitUpper(piece[3]) && char.IsAsciiHexDigitUpper(piece[4])
            && byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out value);
    }
}
