using GlowQ.Converter.Evaluation;

namespace GlowQ.Converter.Tests.Evaluation;

public sealed class LineChartTests
{
    private static readonly string[] Metrics = ["gsvd", "gsvd-energy", "norm_error", "frobenius", "cosine", "layer_order"];

    /// <summary>Perplexity falling from the RTN level towards full GlowQ as corrections are restored, one curve per metric.</summary>
    private static LineChart SampleChart()
    {
        var series = Metrics.Select((name, m) => new ChartSeries(name, [.. Enumerable.Range(0, 11).Select(i =>
        {
            double x = i / 10.0;
            return (x, 12 + 6 * Math.Exp(-x * (8 - m)) + 0.4 * m * x);
        })])).ToList();
        return new LineChart(
            "Perplexity vs. restored corrections", "fraction of correction units restored", "perplexity", series,
            [new ReferenceLine("fp", 11.5), new ReferenceLine("rtn", 18.2), new ReferenceLine("layerwise", 14.1), new ReferenceLine("glowq (all)", 12.3)]);
    }

    private static PngTestDecoder.Image Decode(LineChart chart) => PngTestDecoder.Decode(chart.RenderPng());

    private static int CountColour(PngTestDecoder.Image image, Rgb colour)
    {
        int count = 0;
        for (int y = 0; y < image.Height; y++)
        {
            for (int x = 0; x < image.Width; x++)
            {
                count += image[x, y] == (colour.R, colour.G, colour.B) ? 1 : 0;
            }
        }

        return count;
    }

    private static bool ColourNear(PngTestDecoder.Image image, Rgb colour, double px, double py, int radius)
    {
        int cx = (int)Math.Round(px), cy = (int)Math.Round(py);
        for (int y = Math.Max(cy - radius, 0); y <= Math.Min(cy + radius, image.Height - 1); y++)
        {
            for (int x = Math.Max(cx - radius, 0); x <= Math.Min(cx + radius, image.Width - 1); x++)
            {
                if (image[x, y] == (colour.R, colour.G, colour.B))
                {
                    return true;
                }
            }
        }

        return false;
    }

    [Theory]
    [InlineData(960, 600)]
    [InlineData(640, 400)]
    [InlineData(1601, 999)]
    public void RenderedChart_HasTheRequestedSize(int width, int height)
    {
        PngTestDecoder.Image image = Decode(SampleChart() with { Width = width, Height = height });

        Assert.Equal((width, height), (image.Width, image.Height));
    }

    [Fact]
    public void DefaultSize_Is960By600()
    {
        PngTestDecoder.Image image = Decode(SampleChart());

        Assert.Equal((960, 600), (image.Width, image.Height));
    }

    [Fact]
    public void Rendering_IsDeterministic()
    {
        Assert.Equal(SampleChart().RenderPng(), SampleChart().RenderPng());
    }

    [Fact]
    public void EverySeries_HasItsOwnPaletteColour_AndAppearsInTheImage()
    {
        PngTestDecoder.Image image = Decode(SampleChart());

        var colours = Enumerable.Range(0, Metrics.Length).Select(LineChart.SeriesColor).ToList();
        Assert.Equal(colours.Count, colours.Distinct().Count());
        Assert.All(colours, c => Assert.True(CountColour(image, c) > 50, $"colour {c} barely drawn"));
    }

    [Fact]
    public void EachDataPoint_IsDrawnInItsSeriesColourWhereTheLayoutMapsIt()
    {
        // Curves far apart, so no series hides another's points.
        var series = Enumerable.Range(0, 4).Select(s => new ChartSeries($"s{s}",
            [.. Enumerable.Range(0, 6).Select(i => (i * 0.2, 10.0 * s + i))])).ToList();
        var chart = new LineChart("t", "x", "y", series, []);
        PngTestDecoder.Image image = Decode(chart);
        ChartLayout layout = chart.ComputeLayout();

        for (int s = 0; s < series.Count; s++)
        {
            foreach ((double x, double y) in series[s].Points)
            {
                Assert.True(ColourNear(image, LineChart.SeriesColor(s), layout.MapX(x), layout.MapY(y), 1), $"series {s} at ({x}, {y})");
            }
        }
    }

    [Fact]
    public void Layout_MapsTheAxisEndsOntoTheFrame_WithYGrowingUpwards()
    {
        ChartLayout layout = SampleChart().ComputeLayout();

        Assert.Equal(layout.Left, layout.MapX(layout.X.Min), 6);
        Assert.Equal(layout.Right, layout.MapX(layout.X.Max), 6);
        Assert.Equal(layout.Bottom, layout.MapY(layout.Y.Min), 6);
        Assert.Equal(layout.Top, layout.MapY(layout.Y.Max), 6);
        Assert.True(layout.Left > 0 && layout.Right < 959 && layout.Top > 0 && layout.Bottom < 599);
    }

    [Fact]
    public void YAxis_CoversEverySeriesAndReferenceLine_WithMargin()
    {
        var chart = new LineChart("", "", "", [new ChartSeries("a", [(0, 5), (1, 7)])], [new ReferenceLine("low", 2), new ReferenceLine("high", 9)]);

        ChartLayout layout = chart.ComputeLayout();

        Assert.True(layout.Y.Min < 2 && layout.Y.Max > 9, $"{layout.Y.Min}..{layout.Y.Max}");
        Assert.Equal(0, layout.X.Min);
        Assert.Equal(1, layout.X.Max);
    }

    [Theory]
    [InlineData(0.0, 1.0, 0, 5)]
    [InlineData(11.3, 18.9, 0.05, 8)]
    [InlineData(-0.003, 0.0047, 0.05, 6)]
    [InlineData(1234.0, 98765.0, 0.05, 6)]
    [InlineData(1e9, 3e9, 0, 4)]
    public void AxisTicks_AreEvenOneTwoFiveSteps_SpanningTheData(double low, double high, double padding, int target)
    {
        Axis axis = Axis.Nice(low, high, padding, target);

        double mantissa = axis.Step / Math.Pow(10, Math.Floor(Math.Log10(axis.Step) + 1e-9));
        Assert.Contains(Math.Round(mantissa, 9), new[] { 1.0, 2.0, 5.0 });
        Assert.True(axis.Min <= low && axis.Max >= high);
        Assert.Equal(axis.Min, axis.Ticks[0]);
        Assert.Equal(axis.Max, axis.Ticks[^1], 9);
        Assert.InRange(axis.Ticks.Count, 3, 2 * target + 2);
        for (int i = 1; i < axis.Ticks.Count; i++)
        {
            Assert.Equal(axis.Step, axis.Ticks[i] - axis.Ticks[i - 1], axis.Step * 1e-9);
        }

        Assert.Equal(axis.Ticks.Count, axis.Ticks.Select(axis.Format).Distinct().Count());
    }

    [Theory]
    [InlineData(0.0, "0.0", 0.1)]
    [InlineData(0.30000000000000004, "0.3", 0.1)]
    [InlineData(15.0, "15", 5)]
    [InlineData(0.005, "0.005", 0.001)]
    public void TickLabels_ShowJustTheDigitsTheStepNeeds(double value, string expected, double step)
    {
        Assert.Equal(expected, new Axis(0, 20, step, [0, 20]).Format(value));
    }

    [Theory]
    [InlineData(0.0, "0")]
    [InlineData(4e6, "4E+6")]
    [InlineData(-2.5e7, "-2.5E+7")]
    public void TickLabels_OfHugeAxes_UseExponents(double value, string expected)
    {
        Assert.Equal(expected, new Axis(-3e7, 1e7, 5e6, [-3e7, 1e7]).Format(value));
    }

    [Fact]
    public void ChartWithoutData_ShowsTheUnitRangeOnBothAxes()
    {
        ChartLayout layout = new LineChart("", "", "", [new ChartSeries("empty", [])], []).ComputeLayout();

        Assert.Equal((0.0, 1.0, 0.0, 1.0), (layout.X.Min, layout.X.Max, layout.Y.Min, layout.Y.Max));
    }

    [Fact]
    public void EmptySeriesList_StillRendersAxesAndReferenceLines()
    {
        var chart = new LineChart("empty", "x", "y", [], [new ReferenceLine("fp", 10)]);
        PngTestDecoder.Image image = Decode(chart);
        ChartLayout layout = chart.ComputeLayout();

        Assert.Equal((960, 600), (image.Width, image.Height));
        Assert.True(layout.Y.Min < 10 && layout.Y.Max > 10);
        int row = (int)Math.Round(layout.MapY(10));
        Assert.Contains(Enumerable.Range(layout.Left + 1, layout.Right - layout.Left - 1), x => image[x, row] != (255, 255, 255) && image[x, row] != (228, 228, 228));
    }

    [Fact]
    public void ChartWithNoDataAtAll_Renders()
    {
        PngTestDecoder.Image image = Decode(new LineChart("", "", "", [], []));

        Assert.Equal((960, 600), (image.Width, image.Height));
    }

    [Fact]
    public void SinglePoint_GetsARangeAroundIt_AndIsDrawn()
    {
        var chart = new LineChart("one", "x", "y", [new ChartSeries("only", [(0.5, 3.0)])], []);
        PngTestDecoder.Image image = Decode(chart);
        ChartLayout layout = chart.ComputeLayout();

        Assert.True(layout.X.Min < 0.5 && layout.X.Max > 0.5 && layout.Y.Min < 3 && layout.Y.Max > 3);
        Assert.True(ColourNear(image, LineChart.SeriesColor(0), layout.MapX(0.5), layout.MapY(3), 1));
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(42.0)]
    [InlineData(-1e-12)]
    [InlineData(1e12)]
    public void AllEqualValues_StillGiveAnOpenRange(double value)
    {
        var chart = new LineChart("flat", "x", "y", [new ChartSeries("flat", [(0, value), (1, value)])], [new ReferenceLine("same", value)]);
        PngTestDecoder.Image image = Decode(chart);
        ChartLayout layout = chart.ComputeLayout();

        Assert.True(layout.Y.Min < value && layout.Y.Max > value, $"{layout.Y.Min}..{layout.Y.Max}");
        Assert.True(ColourNear(image, LineChart.SeriesColor(0), layout.MapX(0.5), layout.MapY(value), 1));
    }

    [Fact]
    public void NonFinitePoints_AreSkipped_AndDoNotStretchTheAxes()
    {
        var chart = new LineChart("gaps", "x", "y",
        [
            new ChartSeries("gappy", [(0, 1), (0.25, double.NaN), (0.5, 2), (0.75, double.PositiveInfinity), (1, 3), (double.NaN, 4)]),
            new ChartSeries("nothing", [(0, double.NaN), (double.NegativeInfinity, 1)]),
        ],
        [new ReferenceLine("nan", double.NaN), new ReferenceLine("inf", double.PositiveInfinity)]);
        PngTestDecoder.Image image = Decode(chart);
        ChartLayout layout = chart.ComputeLayout();

        Assert.True(layout.Y.Max < 4 && layout.Y.Min > 0, $"{layout.Y.Min}..{layout.Y.Max}");
        Assert.Equal((0.0, 1.0), (layout.X.Min, layout.X.Max));
        foreach ((double x, double y) in new[] { (0.0, 1.0), (0.5, 2.0), (1.0, 3.0) })
        {
            Assert.True(ColourNear(image, LineChart.SeriesColor(0), layout.MapX(x), layout.MapY(y), 1));
        }
    }

    [Fact]
    public void ManySeries_AndNonAsciiNames_Render()
    {
        var series = Enumerable.Range(0, 12).Select(s => new ChartSeries($"métrique {s} ✓", [(0, s), (1, s * 0.5)])).ToList();
        PngTestDecoder.Image image = Decode(new LineChart("Perplexité", "x", "y", series, [new ReferenceLine("référence", 3)]));

        Assert.Equal((960, 600), (image.Width, image.Height));
    }

    [Fact]
    public void TooSmallACanvas_IsRejected()
    {
        Assert.Throws<InvalidOperationException>(() => (SampleChart() with { Width = 100, Height = 100 }).RenderPng());
    }
}
