using static GlowQ.Converter.Evaluation.ChartFrame;

namespace GlowQ.Converter.Evaluation;

/// <summary>One bar: its label under the axis, its value, and the colour group it belongs to (e.g. one model file).</summary>
public sealed record Bar(string Label, double Value, int Group);

/// <summary>
/// A bar chart rendered to PNG without native dependencies, in the style of <see cref="LineChart"/>: bars from zero,
/// their values printed above them, labels written upwards under the axis, colours by group.
/// </summary>
public sealed record BarChart(string Title, string YLabel, IReadOnlyList<Bar> Bars)
{

    public int Width { get; init; } = 960;

    public int Height { get; init; } = 600;

    /// <summary>Renders the chart; the same chart always gives the same bytes.</summary>
    public byte[] RenderPng()
    {
        ArgumentNullException.ThrowIfNull(Bars);
        var bars = Bars.Where(b => double.IsFinite(b.Value)).ToList();
        int labelHeight = bars.Count == 0 ? 0 : bars.Max(b => BitmapFont.Measure(b.Label));
        int top = Pad + (BitmapFont.GlyphHeight * TitleScale) + Pad + BitmapFont.GlyphHeight + 4;
        int bottom = Height - 1 - Pad - labelHeight - TickLength - 4;
        if (bottom - top < 60 || Width < 200)
        {
            throw new InvalidOperationException($"a {Width}x{Height} chart is too small for {bars.Count} bars with these labels");
        }

        // Bars stand on zero, so only the top gets headroom (for the value printed above the tallest bar).
        Axis y = Axis.Nice(0, bars.Count == 0 ? 1 : Math.Max(bars.Max(b => b.Value), 0) * 1.08, 0, (bottom - top) / 60);
        int tickWidth = y.Ticks.Max(t => BitmapFont.Measure(y.Format(t)));
        int left = Pad + BitmapFont.GlyphHeight + 8 + tickWidth + 4 + TickLength;
        int right = Width - 1 - Pad;
        double MapY(double value) => bottom - ((value - y.Min) / (y.Max - y.Min) * (bottom - top));

        var canvas = new Canvas(Width, Height, White);
        foreach (double t in y.Ticks)
        {
            canvas.FillRect(left, (int)Math.Round(MapY(t)), right - left, 1, GridInk);
        }

        ChartFrame.DrawYTicks(canvas, y, MapY, left);

        double slot = bars.Count == 0 ? 0 : (right - left) / (double)bars.Count;
        int barWidth = Math.Max(2, (int)(slot * 0.6));
        for (int i = 0; i < bars.Count; i++)
        {
            int center = left + (int)Math.Round(slot * (i + 0.5));
            int barTop = (int)Math.Round(MapY(Math.Max(bars[i].Value, 0)));
            canvas.FillRect(center - (barWidth / 2), barTop, barWidth, bottom - barTop, LineChart.SeriesColor(bars[i].Group));
            string value = bars[i].Value.ToString(Math.Abs(bars[i].Value) >= 100 ? "F0" : "F1", System.Globalization.CultureInfo.InvariantCulture);
            BitmapFont.Draw(canvas, value, center - (BitmapFont.Measure(value) / 2), barTop - BitmapFont.GlyphHeight - 3, Ink);
            BitmapFont.DrawUpwards(canvas, bars[i].Label, center - (BitmapFont.CapHeight / 2), bottom + TickLength + 4 + BitmapFont.Measure(bars[i].Label), Ink);
        }

        canvas.StrokeRect(left, top, right - left + 1, bottom - top + 1, Ink);
        ChartFrame.DrawTitleAndYLabel(canvas, Title, YLabel, left, right, top, bottom);
        return PngEncoder.EncodeRgb(canvas.Width, canvas.Height, canvas.Pixels);
    }
}
