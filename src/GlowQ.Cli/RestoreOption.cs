using System.Globalization;
using GlowQ.Converter;
using GlowQ.Format.Glq;

namespace GlowQ.Cli;

/// <summary>The --restore value of convert, generate, ppl and chat: which share of GlowQ units runs its correction.</summary>
internal static class RestoreOption
{
    /// <summary>'all' is 1, 'none' is 0, else a fraction in [0, 1].</summary>
    public static double Parse(string value) => value switch
    {
        "all" => 1.0,
        "none" => 0.0,
        _ when double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double f) && f is >= 0 and <= 1 => f,
        _ => throw new CliUsageException($"--restore must be a fraction in [0, 1], 'all' or 'none', got '{value}'"),
    };

    /// <summary>
    /// The mask restoring the top <paramref name="fraction"/> of units ranked by <paramref name="metric"/>'s stored scores
    /// (default: the first of <see cref="ImportanceMetrics.Names"/> the file has, else its first).
    /// </summary>
    public static byte[] TopFraction(GlqModel model, double fraction, string? metric)
    {
        if (model.Units.Count == 0)
        {
            return [];
        }

        string name = metric
            ?? ImportanceMetrics.Names.FirstOrDefault(model.Scores.ContainsKey)
            ?? model.Scores.Keys.Order(StringComparer.Ordinal).FirstOrDefault()
            ?? throw new CliUsageException("the file stores no importance scores; --restore takes only 'all' or 'none'");
        if (!model.Scores.TryGetValue(name, out float[]? scores))
        {
            throw new CliUsageException(
                $"the file has no '{name}' scores; it stores {(model.Scores.Count == 0 ? "none" : string.Join(", ", model.Scores.Keys.Order(StringComparer.Ordinal)))}");
        }

        return ImportanceMetrics.TopFraction(scores, fraction);
    }
}
