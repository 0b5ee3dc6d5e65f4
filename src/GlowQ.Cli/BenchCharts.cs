using GlowQ.Converter.Evaluation;
using GlowQ.Runtime.Benchmarks;

namespace GlowQ.Cli;

/// <summary>
/// The plots of a <c>glowq bench</c> report, at each file's longest prompt: decode tokens/s and TTFB against the fraction
/// of units restored (one line per model file and method; files without units, rtn, as labelled reference lines), and
/// the share of the memory-bandwidth roofline as one bar per configuration, coloured by file.
/// </summary>
internal static class BenchCharts
{
    /// <summary>Each plot's file name and PNG bytes; the roofline plot only when the report has a bandwidth.</summary>
    public static IReadOnlyList<(string FileName, byte[] Png)> Render(BenchmarkReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        string device = report.Device;
        var charts = new List<(string, byte[])>
        {
            ("decode.png", Chart(report, $"Decode tokens/s, {device}", "decode tokens/s (median)", c => c.Longest.DecodeTokensPerSecond.Median).RenderPng()),
            ("ttfb.png", Chart(report, $"Time to first token, {device}", "TTFB, ms (median)", c => c.Longest.TtfbMs.Median).RenderPng()),
        };
        if (report.Configurations.All(c => c.RooflineFraction is not null))
        {
            string[] files = [.. report.Configurations.Select(c => c.Model).Distinct()];
            Bar[] bars = [.. report.Configurations.Select(c => new Bar(
                $"{c.Method} {c.Restore} (prompt {c.Longest.PromptTokens})", 100 * c.RooflineFraction!.Value, Array.IndexOf(files, c.Model)))];
            charts.Add(("roofline.png", new BarChart(
                $"Decode: share of the {report.MemoryBandwidthGbs:F1} GB/s memory roofline, {device}", "% of roofline", bars).RenderPng()));
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
