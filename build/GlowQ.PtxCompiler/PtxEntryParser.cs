using System.Globalization;
using System.Text.RegularExpressions;

namespace GlowQ.PtxCompiler;

/// <summary>One <c>.param</c> of a PTX <c>.entry</c>, as declared.</summary>
internal sealed record PtxParam(string Name, string PtxType, int Size, int Alignment);

/// <summary>A PTX <c>.entry</c>: its name and its parameters in launch order.</summary>
internal sealed record PtxEntry(string Name, IReadOnlyList<PtxParam> Parameters);

/// <summary>
/// Reads kernel entries out of PTX text. The runtime packs launch arguments by hand, so the sizes and alignments it must
/// match come from the PTX itself rather than from assumptions about how ILGPU lays parameters out.
/// </summary>
internal static partial class PtxEntryParser
{
    [GeneratedRegex(@"\.entry\s+([A-Za-z_$%][\w$]*)\s*\(([^)]*)\)", RegexOptions.CultureInvariant)]
    private static partial Regex EntryRegex();

    // `.param [.align A] .type [.ptr .space [.align P]] name[N]?` — the optional .ptr clause only annotates a pointer.
    [GeneratedRegex(
        @"^\.param\s+(?:\.align\s+(\d+)\s+)?\.([a-z]+\d+)\s+(?:\.ptr(?:\s+\.[a-z]+)*(?:\s+\.align\s+\d+)?\s+)?([A-Za-z_$%][\w$]*)\s*(?:\[\s*(\d+)\s*\])?$",
        RegexOptions.CultureInvariant)]
    private static partial Regex ParamRegex();

    /// <summary>Every <c>.entry</c> in <paramref name="ptx"/>, in order of appearance.</summary>
    public static IReadOnlyList<PtxEntry> ParseEntries(string ptx)
    {
        var entries = new List<PtxEntry>();
        foreach (Match entry in EntryRegex().Matches(ptx))
        {
            var name = entry.Groups[1].Value;
            var list = entry.Groups[2].Value;
            var parameters = new List<PtxParam>();
            foreach (var raw in list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                var declaration = Regex.Replace(raw, @"\s+", " ");
                var match = ParamRegex().Match(declaration);
                if (!match.Success)
                {
                    throw new FormatException($"entry {name}: unrecognised parameter declaration '{declaration}'");
                }

                var type = match.Groups[2].Value;
                var scalarSize = ScalarSize(type)
                    ?? throw new FormatException($"entry {name}: unsupported parameter type .{type} in '{declaration}'");
                var count = match.Groups[4].Success ? int.Parse(match.Groups[4].Value, CultureInfo.InvariantCulture) : 1;
                var alignment = match.Groups[1].Success ? int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : scalarSize;
                parameters.Add(new PtxParam(match.Groups[3].Value, type, scalarSize * count, alignment));
            }

            entries.Add(new PtxEntry(name, parameters));
        }

        return entries;
    }

    /// <summary>The single <c>.entry</c> of a one-kernel module.</summary>
    public static PtxEntry ParseSingleEntry(string ptx)
    {
        var entries = ParseEntries(ptx);
        return entries.Count == 1
            ? entries[0]
            : throw new FormatException($"expected one .entry in the PTX module, found {entries.Count}");
    }

    private static int? ScalarSize(string type) => type switch
    {
        "b8" or "u8" or "s8" => 1,
        "b16" or "u16" or "s16" or "f16" => 2,
        "b32" or "u32" or "s32" or "f32" => 4,
        "b64" or "u64" or "s64" or "f64" => 8,
        _ => null,
    };
}
