using System.Globalization;
using static GlowQ.Converter.Evaluation.ChartFrame;

namespace GlowQ.Converter.Evaluation;

public sealed record ChartSeries(string Name, IReadOnlyList<(double X, double Y)> Points);

public sealed record ReferenceLine(string Name, double Y);

/// <summary>
/// A line chart rendered to PNG without native dependencies: series as anti-aliased lines with markers, reference
/// values as labelled dashed horizontal lines. Non-finite points are left out, breaking their series' line there.
/// </summary>
public sealed record LineChart(
    string Title, string XLabel, string YLabel, IReadOnlyList<ChartSeries> Series, IReadOnlyList<ReferenceLine> References)
{
    // Okabe–Ito: stays distinguishable under the common colour-vision deficiencies. Yellow comes last because it is
    // faint on white; past eight series the colours repeat with square instead of round markers.
    internal static readonly Rgb[] Palette =
    [
        new(0, 114, 178), new(230, 159, 0), new(0, 158, 115), new(213, 94, 0),
        new(204, 121, 167), new(86, 180, 233), new(0, 0, 0), new(240, 228, 66),
    ];

    private static readonly Rgb ReferenceInk = new(120, 120, 120), LegendBorder = new(170, 170, 170);

    private const int LineGap = 10;
    private const double LineHalfWidth = 1.25, MarkerRadius = 3.5, ReferenceHalfWidth = 0.75;

    public int Width { get; init; } = 960;

    public int Height { get; init; } = 600;

    internal static Rgb SeriesColor(int index) => Palette[index % Palette.Length];

    /// <summary>Renders the chart; the same chart always gives the same bytes.</summary>
    public byte[] RenderPng()
    {
        Canvas canvas = Render();
        return PngEncoder.EncodeRgb(canvas.Width, canvas.Height, canvas.Pixels);
    }

    internal Canvas Render()
    {
        ChartLayout layout = ComputeLayout();
        var canvas = new Canvas(Width, Height, White);
        var mask = new CoverageMask(Width, Height);
        (int left, int top, int right, int bottom) = (layout.Left, layout.Top, layout.Right, layout.Bottom);

        foreach (double t in layout.X.Ticks)
        {
            canvas.FillRect((int)Math.Round(layout.MapX(t)), top, 1, bottom - top, GridInk);
        }

        foreach (double t in layout.Y.Ticks)
        {
            canvas.FillRect(left, (int)Math.Round(layout.MapY(t)), right - left, 1, GridInk);
        }

        var references = References.Where(r => IsPlottable(r.Y)).ToList();
        foreach (ReferenceLine reference in references)
        {
            double y = layout.MapY(reference.Y);
            for (double x = left; x < right; x += 13)
            {
                mask.Segment(x, y, Math.Min(x + 7, right), y, ReferenceHalfWidth);
            }
        }

        mask.Composite(canvas, ReferenceInk);

        var paths = Series.Select(s => Pixels(s, layout)).ToList();
        // Markers only while points are sparse enough to stay apart; dense ones would merge into a thick band.
        bool markers = paths.Sum(p => p.Count) <= (right - left) / 2;
        for (int i = 0; i < paths.Count; i++)
        {
            DrawSeries(mask, paths[i], i, markers);
            mask.Composite(canvas, SeriesColor(i));
        }

        canvas.StrokeRect(left, top, right - left + 1, bottom - top + 1, Ink);
        foreach (double t in layout.X.Ticks)
        {
            int x = (int)Math.Round(layout.MapX(t));
            string label = layout.X.Format(t);
            canvas.FillRect(x, bottom + 1, 1, TickLength, Ink);
            BitmapFont.Draw(canvas, label, x - BitmapFont.Measure(label) / 2, bottom + TickLength + 5, Ink);
        }

        ChartFrame.DrawYTicks(canvas, layout.Y, layout.MapY, left);

        DrawReferenceLabels(canvas, layout, references);
        if (Series.Count > 0)
        {
            DrawLegend(canvas, mask, layout, paths, references, markers);
        }

        ChartFrame.DrawTitleAndYLabel(canvas, Title, YLabel, left, right, top, bottom);
        BitmapFont.Draw(canvas, XLabel, ((left + right) / 2) - (BitmapFont.Measure(XLabel) / 2), Height - Pad - BitmapFont.GlyphHeight, Ink);
        return canvas;
    }

    /// <summary>Plot rectangle (frame included) and axes; margins follow from the labels they must hold.</summary>
    internal ChartLayout ComputeLayout()
    {
        ArgumentNullException.ThrowIfNull(Series);
        ArgumentNullException.ThrowIfNull(References);
        if (Width < 200 || Height < 150)
        {
            throw new InvalidOperationException($"a {Width}x{Height} chart is too small to lay out (minimum 200x150)");
        }

        var points = Series.SelectMany(s => s.Points).Where(p => IsPlottable(p.X) && IsPlottable(p.Y)).ToList();
        var ys = points.Select(p => p.Y).Concat(References.Select(r => r.Y).Where(IsPlottable)).ToList();

        int top = Title.Length > 0 ? Pad + BitmapFont.GlyphHeight * TitleScale + Pad : Pad + 4;
        int bottom = Height - 1 - Pad - (XLabel.Length > 0 ? BitmapFont.GlyphHeight + LineGap : 0)
            - BitmapFont.GlyphHeight - 5 - TickLength;
        Axis y = ys.Count > 0
            ? Axis.Nice(ys.Min(), ys.Max(), 0.05, (bottom - top) / 60)
            : Axis.Nice(0, 1, 0, (bottom - top) / 60);

        int left = Pad + (YLabel.Length > 0 ? BitmapFont.GlyphHeight + LineGap : 0)
            + y.Ticks.Max(t => BitmapFont.Measure(y.Format(t))) + 4 + TickLength;
        int referenceWidth = References.Where(r => IsPlottable(r.Y)).Select(r => BitmapFont.Measure(r.Name) + 8).DefaultIfEmpty(0).Max();
        int right = Width - 1 - Math.Max(Pad + 8, Pad + referenceWidth);
        Axis x = Axis.Nice(points.Count > 0 ? points.Min(p => p.X) : 0, points.Count > 0 ? points.Max(p => p.X) : 1, 0, (right - left) / 90);

        // The last x tick label is centred on the frame's right edge and must not run off the image.
        right = Math.Min(right, Width - 1 - 4 - BitmapFont.Measure(x.Format(x.Max)) / 2);
        return new ChartLayout(left, top, right, bottom, x, y);
    }

    // Values beyond ±1e300 are treated like infinities: their spans would overflow the axis arithmetic.
    private static bool IsPlottable(double v) => double.IsFinite(v) && Math.Abs(v) < 1e300;

    /// <summary>A series in pixel coordinates; null marks a left-out point, where the line breaks.</summary>
    private static List<(double X, double Y)?> Pixels(ChartSeries series, ChartLayout layout) =>
        [.. series.Points.Select(p => IsPlottable(p.X) && IsPlottable(p.Y) ? ((double, double)?)(layout.MapX(p.X), layout.MapY(p.Y)) : null)];

    private static void DrawSeries(CoverageMask mask, List<(double X, double Y)?> path, int index, bool markers)
    {
        for (int k = 0; k < path.Count; k++)
        {
            if (path[k] is not { } p)
            {
                continue;
            }

            if (k + 1 < path.Count && path[k + 1] is { } q)
            {
                mask.Segment(p.X, p.Y, q.X, q.Y, LineHalfWidth);
            }

            // An isolated point would be invisible without its marker.
            bool isolated = (k == 0 || path[k - 1] is null) && (k + 1 == path.Count || path[k + 1] is null);
            if (markers || isolated)
            {
                Marker(mask, p.X, p.Y, index, MarkerRadius);
            }
        }
    }

    private static void Marker(CoverageMask mask, double x, double y, int index, double radius)
    {
        if (index / Palette.Length % 2 == 0)
        {
            mask.Disc(x, y, radius);
        }
        else
        {
            mask.Square(x, y, radius - 0.5);
        }
    }

    /// <summary>Labels sit right of the frame, nudged apart vertically where reference values are close.</summary>
    private static void DrawReferenceLabels(Canvas canvas, ChartLayout layout, List<ReferenceLine> references)
    {
        var placed = references.Select(r => (r.Name, Y: layout.MapY(r.Y) - BitmapFont.CapHeight / 2)).OrderBy(r => r.Y).ToArray();
        for (int i = 1; i < placed.Length; i++)
        {
            placed[i].Y = Math.Max(placed[i].Y, placed[i - 1].Y + LineGap);
        }

        for (int i = placed.Length - 1; i >= 0; i--)
        {
            double limit = i == placed.Length - 1 ? canvas.Height - BitmapFont.GlyphHeight : placed[i + 1].Y - LineGap;
            placed[i].Y = Math.Min(placed[i].Y, limit);
        }

        foreach ((string name, double y) in placed)
        {
            BitmapFont.Draw(canvas, name, layout.Right + 6, (int)Math.Round(y), ReferenceInk);
        }
    }

    /// <summary>
    /// Puts the legend where it hides the fewest line pixels: inside corners first (ties prefer top right, where
    /// falling perplexity curves leave room), then edge midpoints. Reference lines count a quarter as much as series,
    /// since a dashed line stays readable with a gap in it.
    /// </summary>
    private void DrawLegend(
        Canvas canvas, CoverageMask mask, ChartLayout layout, List<List<(double X, double Y)?>> paths,
        List<ReferenceLine> references, bool markers)
    {
        const int Row = 14, Swatch = 22, Inset = 8;
        int width = 6 + Swatch + 6 + Series.Max(s => BitmapFont.Measure(s.Name)) + 6;
        int height = Series.Count * Row + 6;

        var samples = new List<(double X, double Y, double Weight)>();
        foreach (var path in paths)
        {
            for (int k = 0; k < path.Count; k++)
            {
                if (path[k] is not { } p)
                {
                    continue;
                }

                samples.Add((p.X, p.Y, 1));
                if (k + 1 < path.Count && path[k + 1] is { } q)
                {
                    int steps = (int)Math.Ceiling(Math.Max(Math.Abs(q.X - p.X), Math.Abs(q.Y - p.Y)) / 2);
                    samples.AddRange(Enumerable.Range(1, steps).Select(s => (p.X + (q.X - p.X) * s / steps, p.Y + (q.Y - p.Y) * s / steps, 1.0)));
                }
            }
        }

        foreach (ReferenceLine reference in references)
        {
            double y = layout.MapY(reference.Y);
            samples.AddRange(Enumerable.Range(0, (layout.Right - layout.Left) / 2).Select(s => ((double)layout.Left + 2 * s, y, 0.25)));
        }

        int east = layout.Right - Inset - width, west = layout.Left + Inset, centre = (layout.Left + layout.Right - width) / 2;
        int north = layout.Top + Inset, south = layout.Bottom - Inset - height, middle = (layout.Top + layout.Bottom - height) / 2;
        (int X, int Y)[] candidates = [(east, north), (west, north), (east, south), (west, south), (east, middle), (centre, north), (west, middle), (centre, south)];
        (int x0, int y0) = candidates.MinBy(c => samples.Where(s =>
            s.X >= c.X - 4 && s.X <= c.X + width + 4 && s.Y >= c.Y - 4 && s.Y <= c.Y + height + 4).Sum(s => s.Weight));

        canvas.FillRect(x0, y0, width, height, White);
        canvas.StrokeRect(x0, y0, width, height, LegendBorder);
        for (int i = 0; i < Series.Count; i++)
        {
            int y = y0 + 4 + i * Row + Row / 2;
            mask.Segment(x0 + 6, y, x0 + 6 + Swatch, y, LineHalfWidth);
            if (markers)
            {
                Marker(mask, x0 + 6 + Swatch / 2.0, y, i, MarkerRadius);
            }

            mask.Composite(canvas, SeriesColor(i));
            BitmapFont.Draw(canvas, Series[i].Name, x0 + 6 + Swatch + 6, y - BitmapFont.CapHeight / 2, Ink);
        }
    }
}

/// <summary>Plot frame in pixels (inclusive edges) and the data-to-pixel mapping.</summary>
internal sealed record ChartLayout(int Left, int Top, int Right, int Bottom, Axis X, Axis Y)
{
    public double MapX(double x) => Left + (x - X.Min) / (X.Max - X.Min) * (Right - Left);

    public double MapY(double y) => Bottom - (y - Y.Min) / (Y.Max - Y.Min) * (Bottom - Top);
}

/// <summary>An axis whose ends are multiples of a 1-2-5 tick step, so every tick has a short label.</summary>
internal sealed record Axis(double Min, double Max, double Step, IReadOnlyList<double> Ticks)
{
    /// <param name="padding">Fraction of the data span added at each end before rounding out to ticks.</param>
    /// <param name="targetTicks">Roughly how many tick intervals fit the axis's length.</param>
    public static Axis Nice(double low, double high, double padding, int targetTicks)
    {
        double span = high - low;
        if (span <= Math.Abs(high) * 1e-9 || span == 0)
        {
            // A single value still gets a visible range around it.
            double half = low == 0 ? 1 : Math.Abs(low) * 0.1;
            (low, high) = (low - half, high + half);
        }
        else
        {
            (low, high) = (low - span * padding, high + span * padding);
        }

        double raw = (high - low) / Math.Max(targetTicks, 2);
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double fraction = raw / magnitude;
        double step = (fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10) * magnitude;

        // Small tolerances keep values that are a rounding error past a tick from adding a whole step.
        double first = Math.Floor(low / step + 1e-9), last = Math.Ceiling(high / step - 1e-9);
        var ticks = new List<double>();
        for (int i = 0; i <= (int)Math.Min(last - first, 1000); i++)
        {
            double k = first + i;
            ticks.Add(k == 0 ? 0 : k * step);
        }

        return new Axis(first * step, last * step, step, ticks);
    }

    public string Format(double value)
    {
        double size = Math.Max(Math.Abs(value), Math.Abs(Max));
        if (size >= 1e6 || Step < 1e-4)
        {
            return value == 0 ? "0" : value.ToString("0.###E+0", CultureInfo.InvariantCulture);
        }

        int decimals = Math.Max(0, -(int)Math.Floor(Math.Log10(Step) + 1e-9));
        return value.ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
    }
}
