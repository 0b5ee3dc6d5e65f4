using GlowQ.Converter.Evaluation;
using GlowQ.Runtime.Benchmarks;

namespace GlowQ.Cli;

/// <summary>
/// The plots of a <c>glowq bench</c> report, each against the fraction of units restored and one line per model file
/// and method, at each file's longest prompt: decode tokens/s, TTFB, and the share of the memory-bandwidth roofline.
/// Files without units (rtn) appear as labelled reference lines.
/// </summary>
internal static class BenchCharts
{
    public static IReadOnlyList<(string FileName, LineChart Chart)> For(BenchmarkReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        string device = $"{report.Device}";
        var charts = new List<(string, LineChart)>
        {
            ("decode.png", Chart(report, $"Decode tokens/s, {device}", "decode tokens/s (median)", c => c.Longest.DecodeTokensPerSecond.Median)),
            ("ttfb.png", Chart(report, $"Time to first token, {device}", "TTFB, ms (median)", c => c.Longest.TtfbMs.Median)),
        };
        if (report.Configurations.All(c => c.RooflineFraction is not null))
        {
            charts.Add(("roofline.png", Chart(report, $"Share of the memory-bandwidth roofline ({report.MemoryBandwidthGbs:F1} GB/s), {device}",
                "% of roofline (decode)", c => 100 * c.RooflineFraction!.Value)));
        }

        return charts;
    }

    private static LineChart Chart(BenchmarkReport report, string title, string yLabel, Func<BenchmarkConfiguration, double> value)
    {
        var series = new List<ChartSeries>();
        var references = new List<ReferenceLine>();
        foreach (IGrouping<(string Model, string Method), BenchmarkConfiguration> file in report.Configurations.GroupBy(c => (c.Model, c.Method)))
        {
            string name = $"{file.Key.Method} ({file.Key.Model}, prompt {file.First().Longest.PromptTokens})";
            if (file.All(c => c.Units == 0))
            {
                references.Add(new ReferenceLine(name, value(file.First())));
                continue;
            }

            series.Add(new ChartSeries(name, [.. file.Select(c => ((double)c.UnitsRestored / c.Units, value(c))).OrderBy(p => p.Item1)]));
        }

        return new LineChart(title, "fraction of units restored", yLabel, series, references);
    }
}
