using System.Buffers.Binary;
using System.Text;

namespace GlowQ.Tokenizers;

/// <summary>Kind of a SentencePiece vocabulary entry (sentencepiece_model.proto, ModelProto.SentencePiece.Type).</summary>
public enum SentencePieceType
{
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

/// <summary>
/// The parts of a SentencePiece <c>tokenizer.model</c> (a ModelProto protobuf) this library needs, read with a small
/// bounds-checked protobuf reader so that malformed files give a clear <see cref="TokenizerFormatException"/> and the
/// loader can recognise the format without trusting the file.
/// </summary>
internal sealed class SentencePieceModel
{
    private SentencePieceModel(string[] pieces, float[] scores, SentencePieceType[] types)
    {
        Pieces = pieces;
        Scores = scores;
        Types = types;
    }

    public string[] Pieces { get; }

    public float[] Scores { get; }

    public SentencePieceType[] Types { get; }

    /// <summary>TrainerSpec.model_type: 1 unigram, 2 BPE, 3 word, 4 char.</summary>
    public int ModelType { get; private set; } = 1;

    public int UnknownId { get; private set; }

    public int BosId { get; private set; } = 1;

    public int EosId { get; private set; } = 2;

    public bool AddDummyPrefix { get; private set; } = true;

    public bool RemoveExtraWhitespaces { get; private set; } = true;

    public bool EscapeWhitespaces { get; private set; } = true;

    /// <summary>NormalizerSpec.name, e.g. "identity" (Llama-2) or "nmt_nfkc"; informational, the character map is what applies.</summary>
    public string NormalizerName { get; private set; } = string.Empty;

    /// <summary>Length of NormalizerSpec.precompiled_charsmap; 0 means identity normalization.</summary>
    public int PrecompiledCharsMapLength { get; private set; }

    /// <summary>TrainerSpec.byte_fallback: characters without a piece become &lt;0xNN&gt; pieces instead of &lt;unk&gt;.</summary>
    public bool ByteFallback { get; private set; }

    /// <summary>TrainerSpec.treat_whitespace_as_suffix: the dummy '▁' goes after the text instead of before it.</summary>
    public bool TreatWhitespaceAsSuffix { get; private set; }

    /// <summary>Quick check that <paramref name="data"/> starts like a ModelProto (field 1, length-delimited).</summary>
    public static bool LooksLikeModelProto(ReadOnlySpan<byte> data) => data.Length >= 2 && data[0] == 0x0A;

    public static SentencePieceModel Parse(ReadOnlySpan<byte> data, string sourceName)
    {
        var pieces = new List<string>();
        var scores = new List<float>();
        var types = new List<SentencePieceType>();
        var trainer = ReadOnlySpan<byte>.Empty;
        var normalizer = ReadOnlySpan<byte>.Empty;
        bool hasTrainer = false;
        bool hasNormalizer = false;

        var reader = new ProtoReader(data, sourceName, 0);
        while (reader.TryReadTag(out int field, out int wireType))
        {
            if (field == 1 && wireType == 2)
            {
                int pieceOffset = reader.Position;
                ReadOnlySpan<byte> message = reader.ReadLengthDelimited();
                ReadPiece(message, sourceName, reader.BaseOffset + pieceOffset, pieces.Count, pieces, scores, types);
            }
            else if (field == 2 && wireType == 2)
            {
                trainer = reader.ReadLengthDelimited();
                hasTrainer = true;
            }
            else if (field == 3 && wireType == 2)
            {
                normalizer = reader.ReadLengthDelimited();
                hasNormalizer = true;
            }
            else
            {
                reader.Skip(field, wireType);
            }
        }

        if (pieces.Count == 0)
        {
            throw new TokenizerFormatException(sourceName, "SentencePiece model has no pieces (is this a tokenizer.model file?)");
        }

        var model = new SentencePieceModel([.. pieces], [.. scores], [.. types]);
        if (hasTrainer)
        {
            var t = new ProtoReader(trainer, sourceName, 0);
            while (t.TryReadTag(out int field, out int wireType))
            {
                switch (field)
                {
                    case 3 when wireType == 0: model.ModelType = (int)t.ReadVarint(); break;
                    case 24 when wireType == 0: model.TreatWhitespaceAsSuffix = t.ReadVarint() != 0; break;
                    case 35 when wireType == 0: model.ByteFallback = t.ReadVarint() != 0; break;
                    case 40 when wireType == 0: model.UnknownId = (int)t.ReadVarint(); break;
                    case 41 when wireType == 0: model.BosId = (int)t.ReadVarint(); break;
                    case 42 when wireType == 0: model.EosId = (int)t.ReadVarint(); break;
                    default: t.Skip(field, wireType); break;
                }
            }
        }

        if (hasNormalizer)
        {
            var n = new ProtoReader(normalizer, sourceName, 0);
            while (n.TryReadTag(out int field, out int wireType))
            {
                switch (field)
                {
                    case 1 when wireType == 2: model.NormalizerName = ReadName(n.ReadLengthDelimited()); break;
                    case 2 when wireType == 2: model.PrecompiledCharsMapLength = n.ReadLengthDelimited().Length; break;
                    case 3 when wireType == 0: model.AddDummyPrefix = n.ReadVarint() != 0; break;
                    case 4 when wireType == 0: model.RemoveExtraWhitespaces = n.ReadVarint() != 0; break;
                    case 5 when wireType == 0: model.EscapeWhitespaces = n.ReadVarint() != 0; break;
                    default: n.Skip(field, wireType); break;
                }
            }
        }

        return model;
    }

    /// <summary>The normalizer name only ever appears in messages, so an odd one is shown lossily rather than rejected.</summary>
    private static string ReadName(ReadOnlySpan<byte> utf8) => Encoding.UTF8.GetString(utf8.Length > 64 ? utf8[..64] : utf8);

    private static void ReadPiece(ReadOnlySpan<byte> message, string sourceName, int offset, int index, List<string> pieces, List<float> scores, List<SentencePieceType> types)
    {
        string piece = string.Empty;
        float score = 0;
        var type = SentencePieceType.Normal;
        var r = new ProtoReader(message, sourceName, offset);
        while (r.TryReadTag(out int field, out int wireType))
        {
            switch (field)
            {
                case 1 when wireType == 2:
                    ReadOnlySpan<byte> utf8 = r.ReadLengthDelimited();
                    try
                    {
                        piece = StrictUtf8.GetString(utf8);
                    }
                    catch (DecoderFallbackException)
                    {
                        throw new TokenizerFormatException(sourceName, $"piece {index} is not valid UTF-8 (offset {offset})");
                    }

                    break;
                case 2 when wireType == 5:
                    score = r.ReadFixed32Float();
                    break;
                case 3 when wireType == 0:
                    ulong value = r.ReadVarint();
                    if (value is < 1 or > 6)
                    {
                        throw new TokenizerFormatException(sourceName, $"piece {index} has unknown type {value} (offset {offset})");
                    }

                    type = (SentencePieceType)value;
                    break;
                default:
                    r.Skip(field, wireType);
                    break;
            }
        }

        pieces.Add(piece);
        scores.Add(score);
        types.Add(type);
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Minimal protobuf wire-format reader; every read is checked against the buffer end.</summary>
    private ref struct ProtoReader
    {
        private readonly ReadOnlySpan<byte> _data;
        private readonly string _sourceName;

        public ProtoReader(ReadOnlySpan<byte> data, string sourceName, int baseOffset)
        {
            _data = data;
            _sourceName = sourceName;
            BaseOffset = baseOffset;
        }

        public int Position { get; private set; }

        public int BaseOffset { get; }

        public bool TryReadTag(out int field, out int wireType)
        {
            if (Position >= _data.Length)
            {
                field = 0;
                wireType = 0;
                return false;
            }

            int at = Position;
            ulong tag = ReadVarint();
            field = (int)(tag >> 3);
            wireType = (int)(tag & 7);
            if (field <= 0 || tag >> 3 > int.MaxValue)
            {
                throw Error($"invalid protobuf field number {tag >> 3} at offset {BaseOffset + at} (not a SentencePiece model?)");
            }

            return true;
        }

        public ulong ReadVarint()
        {
            ulong result = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (Position >= _data.Length)
                {
                    throw Error($"truncated protobuf varint at offset {BaseOffset + Position} (size {BaseOffset + _data.Length})");
                }

                byte b = _data[Position++];
                result |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80)
                {
                    return result;
                }
            }

            throw Error($"protobuf varint longer than 10 bytes at offset {BaseOffset + Position}");
        }

        public ReadOnlySpan<byte> ReadLengthDelimited()
        {
            int at = Position;
            ulong length = ReadVarint();
            if (length > (ulong)(_data.Length - Position))
            {
                throw Error($"protobuf field of length {length} at offset {BaseOffset + at} runs past end of data (size {BaseOffset + _data.Length})");
            }

            ReadOnlySpan<byte> result = _data.Slice(Position, (int)length);
            Position += (int)length;
            return result;
        }

        public float ReadFixed32Float()
        {
            if (_data.Length - Position < 4)
            {
                throw Error($"truncated protobuf fixed32 at offset {BaseOffset + Position}");
            }

            float value = BinaryPrimitives.ReadSingleLittleEndian(_data[Position..]);
            Position += 4;
            return value;
        }

        public void Skip(int field, int wireType)
        {
            switch (wireType)
            {
                case 0:
                    ReadVarint();
                    break;
                case 1:
                    Advance(8);
                    break;
                case 2:
                    ReadLengthDelimited();
                    break;
                case 5:
                    Advance(4);
                    break;
                default:
                    throw Error($"unsupported protobuf wire type {wireType} for field {field} at offset {BaseOffset + Position} (not a SentencePiece model?)");
            }
        }

        private void Advance(int count)
        {
            if (_data.Length - Position < count)
            {
                throw Error($"truncated protobuf field at offset {BaseOffset + Position} (size {BaseOffset + _data.Length})");
            }

            Position += count;
        }

        private readonly TokenizerFormatException Error(string problem) => new(_sourceName, problem);
    }
}
