using System.Buffers.Binary;
using System.Text;

namespace GlowQ.Tokenizers.Tests;

/// <summary>
/// Writes small SentencePiece ModelProto files (sentencepiece_model.proto field numbers), so that normalizer options,
/// piece types and byte fallback can be tested on vocabularies whose expected pieces are obvious by reading them.
/// </summary>
internal sealed class SentencePieceModelBuilder
{
    private readonly List<(string Piece, float Score, SentencePieceType Type)> _pieces = [];

    /// <summary>TrainerSpec.model_type: 1 unigram, 2 BPE.</summary>
    public int ModelType { get; set; } = 2;

    public bool ByteFallback { get; set; }

    public bool TreatWhitespaceAsSuffix { get; set; }

    public string NormalizerName { get; set; } = "identity";

    public byte[] PrecompiledCharsMap { get; set; } = [];

    public bool AddDummyPrefix { get; set; } = true;

    /// <summary>Off, as in Llama-2's model (SentencePiece's own default is on).</summary>
    public bool RemoveExtraWhitespaces { get; set; }

    public bool EscapeWhitespaces { get; set; } = true;

    /// <summary>A builder holding &lt;unk&gt; (0), &lt;s&gt; (1) and &lt;/s&gt; (2), as Llama-2's model starts.</summary>
    public static SentencePieceModelBuilder WithSpecialPieces() =>
        new SentencePieceModelBuilder()
            .Add("<unk>", 0, SentencePieceType.Unknown)
            .Add("<s>", 0, SentencePieceType.Control)
            .Add("</s>", 0, SentencePieceType.Control);

    public SentencePieceModelBuilder Add(string piece, float score = 0, SentencePieceType type = SentencePieceType.Normal)
    {
        _pieces.Add((piece, score, type));
        return this;
    }

    /// <summary>Adds the 256 BYTE pieces &lt;0x00&gt;..&lt;0xFF&gt; and turns byte_fallback on.</summary>
    public SentencePieceModelBuilder AddBytePieces()
    {
        for (int b = 0; b < 256; b++)
        {
            Add($"<0x{b:X2}>", 0, SentencePieceType.Byte);
        }

        ByteFallback = true;
        return this;
    }

    public byte[] Build()
    {
        var model = new List<byte>();
        foreach (var (piece, score, type) in _pieces)
        {
            var message = new List<byte>();
            WriteBytes(message, 1, Encoding.UTF8.GetBytes(piece));
            WriteTag(message, 2, 5);
            var fixed32 = new byte[4];
            BinaryPrimitives.WriteSingleLittleEndian(fixed32, score);
            message.AddRange(fixed32);
            WriteVarintField(message, 3, (ulong)type);
            WriteBytes(model, 1, [.. message]);
        }

        var trainer = new List<byte>();
        WriteVarintField(trainer, 3, (ulong)ModelType);
        WriteVarintField(trainer, 24, TreatWhitespaceAsSuffix ? 1UL : 0UL);
        WriteVarintField(trainer, 35, ByteFallback ? 1UL : 0UL);
        WriteVarintField(trainer, 40, 0);
        WriteVarintField(trainer, 41, 1);
        WriteVarintField(trainer, 42, 2);
        WriteBytes(model, 2, [.. trainer]);

        var normalizer = new List<byte>();
        WriteBytes(normalizer, 1, Encoding.UTF8.GetBytes(NormalizerName));
        WriteBytes(normalizer, 2, PrecompiledCharsMap);
        WriteVarintField(normalizer, 3, AddDummyPrefix ? 1UL : 0UL);
        WriteVarintField(normalizer, 4, RemoveExtraWhitespaces ? 1UL : 0UL);
        WriteVarintField(normalizer, 5, EscapeWhitespaces ? 1UL : 0UL);
        WriteBytes(model, 3, [.. normalizer]);
        return [.. model];
    }

    public SentencePieceTokenizer Load() => SentencePieceTokenizer.Parse(Build(), "test.model");

    private static void WriteTag(List<byte> output, int field, int wireType) => WriteVarint(output, ((ulong)field << 3) | (uint)wireType);

    private static void WriteVarintField(List<byte> output, int field, ulong value)
    {
        WriteTag(output, field, 0);
        WriteVarint(output, value);
    }

    private static void WriteBytes(List<byte> output, int field, byte[] value)
    {
        WriteTag(output, field, 2);
        WriteVarint(output, (ulong)value.Length);
        output.AddRange(value);
    }

    private static void WriteVarint(List<byte> output, ulong value)
    {
        while (value >= 0x80)
        {
            output.Add((byte)(value | 0x80));
            value >>= 7;
        }

        output.Add((byte)value);
    }
}
