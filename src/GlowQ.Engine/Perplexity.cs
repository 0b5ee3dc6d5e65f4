using GlowQ.Tokenizers;

namespace GlowQ.Engine;

/// <summary>Perplexity over a set of token windows: exp(mean negative log-likelihood of every predicted token).</summary>
public sealed record PerplexityResult(double Perplexity, double MeanNll, long Tokens, int Windows);

public static class Perplexity
{
    /// <summary>
    /// Scores every window from position 0 with a fresh context: token t+1 is predicted from tokens 0..t, so a window
    /// of L tokens contributes L−1 predictions. Windows shorter than two tokens contribute nothing.
    /// </summary>
    public static PerplexityResult Evaluate(ILanguageModel model, IReadOnlyList<int[]> windows, IProgress<int>? progress = null)
    {
        int vocab = model.Config.VocabSize;
        const int Chunk = 64;
        var logits = new float[Chunk * vocab];
        var scratch = new float[vocab];
        double totalNll = 0;
        long count = 0;
        for (int w = 0; w < windows.Count; w++)
        {
            int[] window = windows[w];
            if (window.Length > model.ContextLength)
            {
                throw new ArgumentException($"window {w} has {window.Length} tokens; the context holds {model.ContextLength}");
            }

            // Positions 0..L−2 predict tokens 1..L−1; run them in chunks so logits never exceed Chunk rows.
            for (int start = 0; start < window.Length - 1; start += Chunk)
            {
                int n = Math.Min(Chunk, window.Length - 1 - start);
                model.Forward(window.AsSpan(start, n), start, logits, allPositions: true);
                for (int t = 0; t < n; t++)
                {
                    ReadOnlySpan<float> row = logits.AsSpan(t * vocab, vocab);
                    int target = window[start + t + 1];
                    totalNll += VectorMath.LogSumExp(row, scratch) - row[target];
                    count++;
                }
            }

            progress?.Report(w + 1);
        }

        double mean = count > 0 ? totalNll / count : double.NaN;
        return new PerplexityResult(Math.Exp(mean), mean, count, windows.Count);
    }

    /// <summary>The default protocol: the whole text tokenised once (BOS first), cut into non-overlapping windows of <paramref name="length"/>.</summary>
    public static List<int[]> ContiguousWindows(ITextTokenizer tokenizer, string text, int length)
    {
        int[] stream = tokenizer.Encode(NormaliseLineEnds(text), addBos: true);
        var windows = new List<int[]>();
        for (int start = 0; start < stream.Length - 1; start += length)
        {
            windows.Add(stream[start..Math.Min(stream.Length, start + length)]);
        }

        return windows;
    }

    /// <summary>--per-line: every non-empty line is a document with its own BOS, truncated to <paramref name="length"/> tokens.</summary>
    public static List<int[]> PerLineWindows(ITextTokenizer tokenizer, string text, int length)
    {
        var windows = new List<int[]>();
        foreach (string line in NormaliseLineEnds(text).Split('\n'))
        {
            if (line.Trim().Length == 0)
            {
                continue;
            }

            int[] tokens = tokenizer.Encode(line, addBos: true);
            windows.Add(tokens.Length > length ? tokens[..length] : tokens);
        }

        return windows;
    }

    public static string NormaliseLineEnds(string text) => text.Replace("\r\n", "\n").Replace('\r', '\n');
}
