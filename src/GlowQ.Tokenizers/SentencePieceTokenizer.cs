using System.Runtime.InteropServices;
using System.Text;
using MlTokenizers = Microsoft.ML.Tokenizers;

namespace GlowQ.Tokenizers;

/// <summary>
/// A SentencePiece BPE <c>tokenizer.model</c> (Llama-2, TinyLlama, Mistral …). Encoding is done by
/// Microsoft.ML.Tokenizers' <see cref="MlTokenizers.LlamaTokenizer"/>; decoding is done here from the model's pieces.
/// </summary>
/// <remarks>
/// Per-token bytes follow SentencePiece's decoder: '▁' (U+2581) is a space; a BYTE piece "&lt;0xNN&gt;" is that byte;
/// control pieces (&lt;s&gt;, &lt;/s&gt;) give nothing; at the start of the text (previous token -1 or BOS) one leading
/// space of the piece is dropped when the model adds a dummy prefix. Differences from SentencePiece: the unknown piece
/// gives nothing (SentencePiece prints " ⁇ "), and the leading space is dropped only right at the start or after BOS
/// (SentencePiece also drops it after other invisible tokens at the very start).
/// Encoding an empty string with BOS gives [BOS] (Microsoft.ML.Tokenizers alone would give []).
/// </remarks>
public sealed class SentencePieceTokenizer : ITextTokenizer
{
    private readonly MlTokenizers.SentencePieceTokenizer _tokenizer;
    private readonly SentencePieceModel _model;
    private readonly byte[][] _bytes;         // bytes of each token in the middle of the text
    private readonly byte[][] _bytesAtStart;  // bytes of each token at the start of the text / after BOS
    private readonly int[] _eosIds;

    private SentencePieceTokenizer(string sourceName, SentencePieceModel model, MlTokenizers.SentencePieceTokenizer tokenizer)
    {
        SourceName = sourceName;
        _model = model;
        _tokenizer = tokenizer;
        int n = model.Pieces.Length;
        _bytes = new byte[n][];
        _bytesAtStart = new byte[n][];
        bool stripAtStart = model.AddDummyPrefix || model.RemoveExtraWhitespaces;
        for (int i = 0; i < n; i++)
        {
            string piece = model.Pieces[i];
            switch (model.Types[i])
            {
                case SentencePieceType.Control:
                case SentencePieceType.Unknown:
                    _bytes[i] = [];
                    _bytesAtStart[i] = [];
                    break;
                case SentencePieceType.Byte:
                    _bytes[i] = TryParseBytePiece(piece, out byte value)
                        ? [value]
                        : throw new TokenizerFormatException(sourceName, $"byte piece {i} is \"{piece}\", expected <0xNN>");
                    _bytesAtStart[i] = _bytes[i];
                    break;
                default:
                    _bytes[i] = Encoding.UTF8.GetBytes(piece.Replace('\u2581', ' '));
                    _bytesAtStart[i] = stripAtStart && piece.StartsWith('\u2581')
                        ? Encoding.UTF8.GetBytes(piece[1..].Replace('\u2581', ' '))
                        : _bytes[i];
                    break;
            }
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

    /// <summary>The underlying Microsoft.ML.Tokenizers tokenizer.</summary>
    public MlTokenizers.SentencePieceTokenizer InnerTokenizer => _tokenizer;

    /// <summary>Loads a SentencePiece <c>tokenizer.model</c>.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="TokenizerFormatException">The file is not a readable SentencePiece BPE model.</exception>
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
    /// <exception cref="TokenizerFormatException">The data is not a readable SentencePiece BPE model.</exception>
    public static SentencePieceTokenizer Parse(byte[] data, string sourceName = "tokenizer.model")
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(sourceName);

        // Validate with our own bounds-checked reader first: clear messages, and nothing malformed reaches the library.
        SentencePieceModel model = SentencePieceModel.Parse(data, sourceName);
        if (model.ModelType != 2)
        {
            string kind = model.ModelType switch { 1 => "unigram", 3 => "word", 4 => "char", _ => $"type {model.ModelType}" };
            throw new TokenizerFormatException(sourceName, $"SentencePiece model is {kind}; only BPE models are supported", unsupportedVariant: true);
        }

        MlTokenizers.SentencePieceTokenizer tokenizer;
        try
        {
            using var stream = new MemoryStream(data, writable: false);
            tokenizer = MlTokenizers.LlamaTokenizer.Create(stream, addBeginOfSentence: true, addEndOfSentence: false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            throw new TokenizerFormatException(sourceName, $"Microsoft.ML.Tokenizers could not load the model: {ex.Message}", ex);
        }

        return new SentencePieceTokenizer(sourceName, model, tokenizer);
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

    /// <inheritdoc />
    public int[] Encode(string text, bool addBos)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0)
        {
            return addBos && BosId is int bos ? [bos] : [];
        }

        IReadOnlyList<int> ids = _tokenizer.EncodeToIds(TextUtilities.ReplaceLoneSurrogates(text), addBos && BosId is not null, addEndOfSentence: false);
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
    public string Decode(ReadOnlySpan<int> tokens)
    {
        var bytes = new List<byte>(tokens.Length * 4);
        int previous = -1;
        foreach (int token in tokens)
        {
            AppendTokenBytes(token, previous, bytes);
            previous = token;
        }

        return Encoding.UTF8.GetString(CollectionsMarshal.AsSpan(bytes));
    }

    private bool IsValidId(int id) => (uint)id < (uint)_model.Pieces.Length;

    private void CheckToken(int token)
    {
        if (!IsValidId(token))
        {
            throw new ArgumentOutOfRangeException(nameof(token), token, $"Token id must be in [0, {_model.Pieces.Length}).");
        }
    }

    private static bool TryParseBytePiece(string piece, out byte value)
    {
        value = 0;
        return piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>'
            && byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out value);
    }
}
