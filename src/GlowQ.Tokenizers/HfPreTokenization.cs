using System.Text;
using System.Text.RegularExpressions;

namespace GlowQ.Tokenizers;

/// <summary>How a split keeps its delimiters (HF tokenizers' SplitDelimiterBehavior).</summary>
internal enum SplitBehavior
{
    Removed,
    Isolated,
    MergedWithPrevious,
    MergedWithNext,
    Contiguous,
}

/// <summary>One HF pre-tokenizer; <see cref="Split"/> cuts a piece of text into smaller pieces, in order.</summary>
internal abstract class PreTokenizerStep
{
    public abstract void Split(string text, List<string> output);

    /// <summary>
    /// Applies a split behavior to a list of (start, end, isMatch) ranges covering <paramref name="text"/>, as HF's
    /// NormalizedString::split does, and adds the non-empty pieces to <paramref name="output"/>.
    /// </summary>
    protected static void Emit(string text, List<(int Start, int End, bool IsMatch)> ranges, SplitBehavior behavior, bool invert, List<string> output)
    {
        if (invert)
        {
            for (int i = 0; i < ranges.Count; i++)
            {
                ranges[i] = (ranges[i].Start, ranges[i].End, !ranges[i].IsMatch);
            }
        }

        var pieces = new List<(int Start, int End)>(ranges.Count);
        bool previousMatch = false;
        switch (behavior)
        {
            case SplitBehavior.Isolated:
                foreach (var r in ranges)
                {
                    pieces.Add((r.Start, r.End));
                }

                break;
            case SplitBehavior.Removed:
                foreach (var r in ranges)
                {
                    if (!r.IsMatch)
                    {
                        pieces.Add((r.Start, r.End));
                    }
                }

                break;
            case SplitBehavior.MergedWithPrevious:
                foreach (var r in ranges)
                {
                    if (r.IsMatch && !previousMatch && pieces.Count > 0)
                    {
                        pieces[^1] = (pieces[^1].Start, r.End);
                    }
                    else
                    {
                        pieces.Add((r.Start, r.End));
                    }

                    previousMatch = r.IsMatch;
                }

                break;
            case SplitBehavior.MergedWithNext:
                for (int i = ranges.Count - 1; i >= 0; i--)
                {
                    var r = ranges[i];
                    if (r.IsMatch && !previousMatch && pieces.Count > 0)
                    {
                        pieces[^1] = (r.Start, pieces[^1].End);
                    }
                    else
                    {
                        pieces.Add((r.Start, r.End));
                    }

                    previousMatch = r.IsMatch;
                }

                pieces.Reverse();
                break;
            case SplitBehavior.Contiguous:
                foreach (var r in ranges)
                {
                    if (r.IsMatch == previousMatch && pieces.Count > 0)
                    {
                        pieces[^1] = (pieces[^1].Start, r.End);
                    }
                    else
                    {
                        pieces.Add((r.Start, r.End));
                    }

                    previousMatch = r.IsMatch;
                }

                break;
        }

        foreach (var (start, end) in pieces)
        {
            if (end > start)
            {
                output.Add(start == 0 && end == text.Length ? text : text[start..end]);
            }
        }
    }

    /// <summary>Match ranges of a regex plus the gaps between them (HF's Pattern::find_matches for a regex).</summary>
    protected static List<(int Start, int End, bool IsMatch)> RegexRanges(Regex regex, string text)
    {
        var ranges = new List<(int, int, bool)>();
        int previous = 0;
        foreach (ValueMatch m in regex.EnumerateMatches(text))
        {
            if (m.Length == 0)
            {
                continue;
            }

            if (m.Index > previous)
            {
                ranges.Add((previous, m.Index, false));
            }

            ranges.Add((m.Index, m.Index + m.Length, true));
            previous = m.Index + m.Length;
        }

        if (previous < text.Length)
        {
            ranges.Add((previous, text.Length, false));
        }

        return ranges;
    }
}

/// <summary>HF "Split" with a regex pattern.</summary>
internal sealed class RegexSplitStep(Regex regex, SplitBehavior behavior, bool invert) : PreTokenizerStep
{
    public Regex Regex => regex;

    public override void Split(string text, List<string> output) => Emit(text, RegexRanges(regex, text), behavior, invert, output);
}

/// <summary>HF "Split" with a literal string pattern.</summary>
internal sealed class StringSplitStep(string delimiter, SplitBehavior behavior, bool invert) : PreTokenizerStep
{
    public override void Split(string text, List<string> output)
    {
        var ranges = new List<(int, int, bool)>();
        int previous = 0;
        if (delimiter.Length > 0)
        {
            int at;
            while ((at = text.IndexOf(delimiter, previous, StringComparison.Ordinal)) >= 0)
            {
                if (at > previous)
                {
                    ranges.Add((previous, at, false));
                }

                ranges.Add((at, at + delimiter.Length, true));
                previous = at + delimiter.Length;
            }
        }

        if (previous < text.Length)
        {
            ranges.Add((previous, text.Length, false));
        }

        Emit(text, ranges, behavior, invert, output);
    }
}

/// <summary>
/// HF "ByteLevel" pre-tokenizer: optionally prefixes a space, optionally splits with GPT-2's regex. The byte → character
/// mapping itself is done by the BPE model (Microsoft.ML.Tokenizers' BpeTokenizer with ByteLevel = true).
/// </summary>
internal sealed class ByteLevelStep(bool addPrefixSpace, Regex? regex) : PreTokenizerStep
{
    /// <summary>GPT-2's pre-tokenizer pattern, used by ByteLevel when use_regex is true.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public Regex? Regex => regex;

    public override void Split(string text, List<string> output)
    {
        if (addPrefixSpace && !text.StartsWith(' '))
        {
            text = " " + text;
        }

        if (regex is null)
        {
            output.Add(text);
            return;
        }

        Emit(text, RegexRanges(regex, text), SplitBehavior.Isolated, invert: false, output);
    }
}

/// <summary>HF "Digits": numbers isolated, one per digit or one per run of digits.</summary>
internal sealed class DigitsStep(bool individualDigits) : PreTokenizerStep
{
    public override void Split(string text, List<string> output)
    {
        var ranges = new List<(int, int, bool)>();
        int previous = 0;
        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsNumber(text[i]))
            {
                if (i > previous)
                {
                    ranges.Add((previous, i, false));
                }

                ranges.Add((i, i + 1, true));
                previous = i + 1;
            }
        }

        if (previous < text.Length)
        {
            ranges.Add((previous, text.Length, false));
        }

        Emit(text, ranges, individualDigits ? SplitBehavior.Isolated : SplitBehavior.Contiguous, invert: false, output);
    }
}

/// <summary>One HF normalizer.</summary>
internal abstract class NormalizerStep
{
    public abstract string Normalize(string text);
}

/// <summary>
/// HF NFC/NFD/NFKC/NFKD. Note: with InvariantGlobalization (the product's setting) .NET's string.Normalize leaves
/// non-ASCII text unchanged, so this is exact only for text that is already in the requested form (nearly all text
/// for NFC, which is what Qwen2 uses).
/// </summary>
internal sealed class UnicodeNormalizerStep(NormalizationForm form) : NormalizerStep
{
    public override string Normalize(string text)
    {
        try
        {
            return text.Normalize(form);
        }
        catch (ArgumentException)
        {
            return text; // invalid code points: leave the text as it is
        }
    }
}

internal sealed class LowercaseStep : NormalizerStep
{
    public override string Normalize(string text) => text.ToLowerInvariant();
}

internal sealed class ReplaceStep(Regex? regex, string? literal, string content) : NormalizerStep
{
    public override string Normalize(string text) =>
        regex is not null ? regex.Replace(text, content.Replace("$", "$$", StringComparison.Ordinal)) :
        string.IsNullOrEmpty(literal) ? text : text.Replace(literal, content, StringComparison.Ordinal);
}

internal sealed class PrependStep(string prefix) : NormalizerStep
{
    public override string Normalize(string text) => text.Length == 0 ? text : prefix + text;
}

internal sealed class StripStep(bool left, bool right) : NormalizerStep
{
    public override string Normalize(string text) => left && right ? text.Trim() : left ? text.TrimStart() : right ? text.TrimEnd() : text;
}

/// <summary>
/// Finds added tokens in text the way HF's AddedVocabulary does: leftmost-longest matches, with the token's
/// single_word, lstrip and rstrip options.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly Dictionary<char, AddedToken[]> _byFirstChar;

    public AddedTokenMatcher(IEnumerable<AddedToken> tokens)
    {
        _byFirstChar = tokens
            .Where(t => t.Content.Length > 0)
            .GroupBy(t => t.Content[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ToArray());
    }

    public bool IsEmpty => _byFirstChar.Count == 0;

    /// <summary>Splits the text segments (Id &lt; 0) of <paramref name="segments"/> around added tokens.</summary>
    public List<(string Text, int Id)> Split(List<(string Text, int Id)> segments)
    {
        var result = new List<(string Text, int Id)>(segments.Count);
        foreach (var segment in segments)
        {
            if (segment.Id >= 0)
            {
                result.Add(segment);
                continue;
            }

            string text = segment.Text;
            int textStart = 0; // start of the text not yet emitted
            int i = 0;
            while (i < text.Length)
            {
                AddedToken? found = null;
                if (_byFirstChar.TryGetValue(text[i], out AddedToken[]? candidates))
                {
                    foreach (AddedToken candidate in candidates)
                    {
                        if (text.AsSpan(i).StartsWith(candidate.Content, StringComparison.Ordinal))
                        {
                            found = candidate;
                            break;
                        }
                    }
                }

                if (found is null)
                {
                    i++;
                    continue;
                }

                int start = i;
                int end = i + found.Content.Length;
                if (found.SingleWord && ((start > 0 && IsWordChar(text[start - 1])) || (end < text.Length && IsWordChar(text[end]))))
                {
                    i = end; // HF's matcher has consumed this match; it is left as plain text
                    continue;
                }

                if (found.LeftStrip)
                {
                    while (start > textStart && char.IsWhiteSpace(text[start - 1]))
                    {
                        start--;
                    }
                }

                if (found.RightStrip)
                {
                    while (end < text.Length && char.IsWhiteSpace(text[end]))
                    {
                        end++;
                    }
                }

                if (start > textStart)
                {
                    result.Add((text[textStart..start], -1));
                }

                result.Add((found.Content, found.Id));
                textStart = end;
                i = end;
            }

            if (textStart < text.Length)
            {
                result.Add((textStart == 0 ? text : text[textStart..], -1));
            }
        }

        return result;
    }

    private static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_';
}

/// <summary>An entry of tokenizer.json's added_tokens.</summary>
internal sealed record AddedToken(int Id, string Content, bool Special, bool SingleWord, bool LeftStrip, bool RightStrip, bool Normalized);
