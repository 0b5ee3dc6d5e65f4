using GlowQ.Converter.Evaluation;

namespace GlowQ.Converter.Tests.Evaluation;

public sealed class BarChartTests
{
    private static readonly BarChart Sample = new("Share of the roofline", "% of roofline",
    [
        new Bar("rtn none", 40, 0),
        new Bar("layerwise all", 20, 1),
        new Bar("glowq all", 30, 2),
        new Bar("glowq 0.5", 10, 2),
    ]);

    /// <summary>Pixels of <paramref name="colour"/> in the column at <paramref name="x"/>.</summary>
    private static int ColumnHeight(PngTestDecoder.Image image, int x, Rgb colour)
    {
        int count = 0;
        for (int y = 0; y < image.Height; y++)
        {
            count += image[x, y] == (colour.R, colour.G, colour.B) ? 1 : 0;
        }

        return count;
    }

    [Fact]
    public void BarHeights_AreProportionalToTheValues_FromAZeroBaseline_InTheirGroupsColours()
    {
        PngTestDecoder.Image image = PngTestDecoder.Decode(Sample.RenderPng());
        int[] heights = new int[Sample.Bars.Count];
        for (int i = 0; i < Sample.Bars.Count; i++)
        {
            Rgb colour = LineChart.SeriesColor(Sample.Bars[i].Group);
            // The bar's centre column: the tallest run of its colour among all columns.
            heights[i] = Enumerable.Range(0, image.Width).Max(x => ColumnHeight(image, x, colour) is int h && h > 0 && IsInBarSlot(x, i, image.Width) ? h : 0);
        }

        Assert.All(heights, h => Assert.True(h > 20, $"bar heights {string.Join(", ", heights)}"));
        for (int i = 1; i < heights.Length; i++)
        {
            double expected = heights[0] * Sample.Bars[i].Value / Sample.Bars[0].Value;
            Assert.True(Math.Abs(heights[i] - expected) <= 2, $"bar {i}: {heights[i]} px, expected {expected:F1} (heights {string.Join(", ", heights)})");
        }
    }

    [Fact]
    public void TheSameChart_RendersTheSameBytes_AndNonFiniteBarsAreLeftOut()
    {
        Assert.Equal(Sample.RenderPng(), Sample.RenderPng());
        BarChart withNaN = Sample with { Bars = [.. Sample.Bars, new Bar("broken", double.NaN, 3)] };
        Assert.Equal(Sample.RenderPng(), withNaN.RenderPng());
    }

    /// <summary>Bars sit in equal slots across the plot; a generous test of which slot a column belongs to.</summary>
    private static bool IsInBarSlot(int x, int bar, int width) =>
        x > width * bar / Sample.Bars.Count && x < width * (bar + 1) / Sample.Bars.Count + 40;
}
