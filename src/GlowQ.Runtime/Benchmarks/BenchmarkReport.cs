using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using GlowQ.Format;
using GlowQ.Format.Glq;

namespace GlowQ.Runtime.Benchmarks;

/// <summary>One measured configuration: a model file on a backend with one restoration mask.</summary>
/// <param name="Model">The file's name.</param>
/// <param name="Method">The file's method: glowq, layerwise or rtn.</param>
/// <param name="Restore">The --restore value it ran with: none, all or a fraction.</param>
/// <param name="UnitsRestored">Units whose correction runs.</param>
/// <param name="Units">Units in the file.</param>
/// <param name="Backend">cpu or cuda.</param>
/// <param name="WeightBytesPerToken">Weight bytes one decoded token reads (int4 projections, restored factors, norms, head).</param>
/// <param name="CorrectionBytes">The restored units' factor bytes, included in <paramref name="WeightBytesPerToken"/>.</param>
/// <param name="KvBytesPerToken">KV-cache bytes one decoded token reads at the mean decode position of the longest prompt.</param>
/// <param name="AchievedBandwidthGbs">(weights + KV) bytes per token × median decode tokens/s of the longest prompt, GB/s.</param>
/// <param name="RooflineFraction">Achieved over the report's memory bandwidth; null when none is known.</param>
/// <param name="PeakHostBytes">The process's peak resident memory after this configuration ran.</param>
/// <param name="DeviceBytes">Device memory the model holds (GPU); null on the CPU.</param>
/// <param name="Prompts">Per prompt length: TTFB, prefill and decode rates.</param>
public sealed record BenchmarkConfiguration(
    string Model,
    string Method,
    string Restore,
    int UnitsRestored,
    int Units,
    string Backend,
    long WeightBytesPerToken,
    long CorrectionBytes,
    long KvBytesPerToken,
    double AchievedBandwidthGbs,
    double? RooflineFraction,
    long PeakHostBytes,
    long? DeviceBytes,
    IReadOnlyList<PromptLengthResult> Prompts)
{
    /// <summary>The measurements of the longest prompt, the ones ratios and the roofline use.</summary>
    [JsonIgnore]
    public PromptLengthResult Longest => Prompts.MaxBy(p => p.PromptTokens)!;

    [JsonIgnore]
    public string Label => $"{Method} restore {Restore}";
}

/// <summary>A ratio between two configurations of one report, as the paper states them (subject vs baseline, percent).</summary>
/// <param name="Quantity">decode tokens/s or TTFB.</param>
/// <param name="Subject">The configuration compared, e.g. "glowq restore all".</param>
/// <param name="Baseline">The configuration compared against, e.g. "layerwise restore all".</param>
/// <param name="PromptTokens">The prompt length the values come from.</param>
/// <param name="DeltaPercent">(subject − baseline) / baseline × 100, of the medians.</param>
public sealed record BenchmarkComparison(string Quantity, string Subject, string Baseline, int PromptTokens, double DeltaPercent);

/// <summary>Everything one <c>glowq bench</c> run measured, with what it ran on: written as JSON and as a markdown table.</summary>
public sealed record BenchmarkReport(
    string Date,
    string Command,
    string Version,
    string Machine,
    int Cores,
    string Os,
    string Device,
    string? Driver,
    string Profile,
    double? MemoryBandwidthGbs,
    string MemoryBandwidthSource,
    int GeneratedTokens,
    int Repeats,
    int WarmupRuns,
    string KvCache,
    IReadOnlyList<BenchmarkConfiguration> Configurations,
    IReadOnlyList<BenchmarkComparison> Comparisons)
{
    public string ToJson() => JsonSerializer.Serialize(this, BenchmarkJsonContext.Default.BenchmarkReport);

    public static BenchmarkReport FromJson(string json) =>
        JsonSerializer.Deserialize(json, BenchmarkJsonContext.Default.BenchmarkReport)
        ?? throw new JsonException("the benchmark report is empty");

    /// <summary>
    /// GlowQ against layerwise, the paper's comparisons: decode tokens/s and TTFB of glowq (all units restored) and of
    /// every partial glowq restoration (GlowQ-S) against layerwise with all units restored, at the longest prompt.
    /// Empty when the configurations do not include both methods.
    /// </summary>
    public static IReadOnlyList<BenchmarkComparison> Compare(IReadOnlyList<BenchmarkConfiguration> configurations)
    {
        ArgumentNullException.ThrowIfNull(configurations);
        BenchmarkConfiguration? layerwise = configurations.FirstOrDefault(c => c.Method == "layerwise" && c.UnitsRestored == c.Units);
        if (layerwise is null)
        {
            return [];
        }

        var comparisons = new List<BenchmarkComparison>();
        foreach (BenchmarkConfiguration glowq in configurations.Where(c => c.Method == "glowq" && c.UnitsRestored > 0))
        {
            int tokens = Math.Min(glowq.Longest.PromptTokens, layerwise.Longest.PromptTokens);
            PromptLengthResult subject = glowq.Prompts.First(p => p.PromptTokens == tokens);
            PromptLengthResult baseline = layerwise.Prompts.First(p => p.PromptTokens == tokens);
            comparisons.Add(new("decode tokens/s", glowq.Label, layerwise.Label, tokens, Delta(subject.DecodeTokensPerSecond.Median, baseline.DecodeTokensPerSecond.Median)));
            comparisons.Add(new("TTFB", glowq.Label, layerwise.Label, tokens, Delta(subject.TtfbMs.Median, baseline.TtfbMs.Median)));
        }

        return comparisons;
    }

    /// <summary>The report as markdown: what ran where, one row per configuration and prompt length, then the comparisons.</summary>
    public string ToMarkdown()
    {
        var md = new StringBuilder();
        IFormatProvider inv = CultureInfo.InvariantCulture;
        md.AppendLine(inv, $"# glowq bench — {Date}");
        md.AppendLine();
        md.AppendLine(inv, $"- machine: {Machine} ({Cores} cores), {Os}");
        md.AppendLine(inv, $"- device: {Device}{(Driver is null ? "" : $", driver {Driver}")}; profile {Profile}");
        md.AppendLine(inv, $"- memory bandwidth: {(MemoryBandwidthGbs is double b ? b.ToString("F1", inv) + " GB/s" : "unknown")} ({MemoryBandwidthSource})");
        md.AppendLine(inv, $"- glowq {Version}; `{Command}`");
        md.AppendLine(inv, $"- {GeneratedTokens} generated tokens per run; {Repeats} rounds, each running every configuration and prompt length once in turn "
            + $"(after {WarmupRuns} warm-up run(s) each in the first); median (min–max) over the rounds; KV cache {KvCache}");
        md.AppendLine();
        md.AppendLine("| model | method | restore | backend | prompt | TTFB ms | prefill tok/s | decode tok/s | weights MB/token | % roofline |");
        md.AppendLine("|---|---|---|---|---:|---:|---:|---:|---:|---:|");
        foreach (BenchmarkConfiguration c in Configurations)
        {
            foreach (PromptLengthResult p in c.Prompts)
            {
                string roofline = p == c.Longest && c.RooflineFraction is double r ? (100 * r).ToString("F1", inv) : "";
                md.AppendLine(inv,
                    $"| {c.Model} | {c.Method} | {c.Restore} ({c.UnitsRestored}/{c.Units}) | {c.Backend} | {p.PromptTokens} | {Format(p.TtfbMs, "F2")} | "
                    + $"{Format(p.PrefillTokensPerSecond, "F0")} | {Format(p.DecodeTokensPerSecond, "F1")} | {c.WeightBytesPerToken / 1e6:F2} | {roofline} |");
            }
        }

        if (Comparisons.Count > 0)
        {
            md.AppendLine();
            md.AppendLine("| compared | against | prompt | decode tok/s Δ | TTFB Δ |");
            md.AppendLine("|---|---|---:|---:|---:|");
            foreach (IGrouping<(string Subject, string Baseline, int PromptTokens), BenchmarkComparison> pair in Comparisons.GroupBy(c => (c.Subject, c.Baseline, c.PromptTokens)))
            {
                double decode = pair.First(c => c.Quantity == "decode tokens/s").DeltaPercent;
                double ttfb = pair.First(c => c.Quantity == "TTFB").DeltaPercent;
                md.AppendLine(inv, $"| {pair.Key.Subject} | {pair.Key.Baseline} | {pair.Key.PromptTokens} | {decode:+0.0;-0.0}% | {ttfb:+0.0;-0.0}% |");
            }
        }

        return md.ToString();
    }

    private static double Delta(double subject, double baseline) => (subject - baseline) / baseline * 100;

    private static string Format(Spread s, string format) => string.Create(CultureInfo.InvariantCulture,
        $"{s.Median.ToString(format, CultureInfo.InvariantCulture)} ({s.Min.ToString(format, CultureInfo.InvariantCulture)}–{s.Max.ToString(format, CultureInfo.InvariantCulture)})");
}

/// <summary>The bytes a decoded token moves, from a .glq file's tensors and the restoration mask.</summary>
public static class DecodeTraffic
{
    /// <summary>
    /// Weight bytes per decoded token: every projection's codes, scales, zero points and bias, the restored units'
    /// factors, the norms and the output head (the tied embedding when there is no head); the embedding itself adds
    /// one row, which is negligible and not counted.
    /// </summary>
    public static long WeightBytes(GlqFile file, GlqModel model, IReadOnlyList<byte> mask)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(model);
        ModelConfig c = model.Config;
        long bytes = model.CorrectionBytes(file, mask);
        for (int l = 0; l < c.Layers; l++)
        {
            foreach (GlqLinear linear in GlqModel.LayerLinears(c, l))
            {
                bytes += Length(file, linear.QWeight) + Length(file, linear.Scales) + Length(file, linear.Zeros) + (linear.HasBias ? Length(file, linear.Bias) : 0);
            }

            bytes += Length(file, LlamaTensorNames.AttentionNorm(l)) + Length(file, LlamaTensorNames.FfnNorm(l));
        }

        return bytes + Length(file, LlamaTensorNames.FinalNorm)
            + Length(file, c.TiedEmbeddings ? LlamaTensorNames.Embedding : LlamaTensorNames.OutputHead);
    }

    /// <summary>KV-cache bytes a token at <paramref name="position"/> reads: keys and values of positions 0…position, every layer.</summary>
    public static long KvBytes(ModelConfig config, int kvElementBytes, int position)
    {
        ArgumentNullException.ThrowIfNull(config);
        return 2L * config.Layers * config.KvHeads * config.HeadDim * kvElementBytes * (position + 1);
    }

    private static long Length(GlqFile file, string name) => checked((long)file.RequireTensor(name).Length);
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(BenchmarkReport))]
internal sealed partial class BenchmarkJsonContext : JsonSerializerContext;
