using System.Globalization;

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
}
