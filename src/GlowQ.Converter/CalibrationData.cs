using GlowQ.Engine;
using GlowQ.Tokenizers;

namespace GlowQ.Converter;

/// <summary>Calibration token sequences: from in-domain text, or sampled from the full-precision model itself.</summary>
public static class CalibrationData
{
    /// <summary>
    /// Data-free calibration: <paramref name="count"/> sequences of <paramref name="length"/> tokens sampled from the
    /// model at temperature 1 (seeded), each starting at BOS. Never the evaluation text, by construction.
    /// </summary>
    public static List<int[]> Generate(LlamaModel model, int bos, int count, int length, ulong seed, IConversionProgress? progress = null, CancellationToken cancellation = default)
    {
        progress?.BeginStage("sample calibration", count);
        var sequences = new List<int[]>(count);
        var logits = new float[model.Config.VocabSize];
        for (int s = 0; s < count; s++)
        {
            var sampler = new Sampler(model.Config.VocabSize, new SamplingOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0, Seed = seed + (ulong)s * 7919 });
            var tokens = new int[length];
            tokens[0] = bos;
            for (int t = 1; t < length; t++)
            {
                cancellation.ThrowIfCancellationRequested();
                model.Forward(tokens.AsSpan(t - 1, 1), t - 1, logits);
                tokens[t] = sampler.Sample(logits, tokens.AsSpan(0, t));
            }

            sequences.Add(tokens);
            progress?.Advance(s + 1);
        }

        return sequences;
    }

    /// <summary>
    /// Calibration from text: documents (non-empty lines) tokenised without BOS, EOS appended, concatenated and cut
    /// into <paramref name="count"/> chunks of <paramref name="length"/> tokens (fewer if the text runs out).
    /// </summary>
    public static List<int[]> FromText(ITextTokenizer tokenizer, string text, int count, int length)
    {
        int eos = tokenizer.EosIds.Count > 0 ? tokenizer.EosIds[0] : -1;
        var stream = new List<int>();
        foreach (string line in Perplexity.NormaliseLineEnds(text).Split('\n'))
        {
            if (line.Trim().Length == 0)
            {
                continue;
            }

            stream.AddRange(tokenizer.Encode(line, addBos: false));
            if (eos >= 0)
            {
                stream.Add(eos);
            }

            if (stream.Count >= count * length)
            {
                break;
            }
        }

        var chunks = new List<int[]>();
        for (int i = 0; i + length <= stream.Count && chunks.Count < count; i += length)
        {
            chunks.Add([.. stream.GetRange(i, length)]);
        }

        return chunks;
    }
}
