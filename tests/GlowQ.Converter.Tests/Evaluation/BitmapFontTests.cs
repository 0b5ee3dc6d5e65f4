using GlowQ.Converter.Evaluation;

namespace GlowQ.Converter.Tests.Evaluation;

public sealed class BitmapFontTests
{
    private static readonly Rgb Black = new(0, 0, 0);

    /// <summary>The drawn pixels of <paramref name="text"/> as a string of '#' and '.', row by row.</summary>
    private static string Rendered(string text, bool upwards = false)
    {
        var canvas = new Canvas(40, 40, new Rgb(255, 255, 255));
        if (upwards)
        {
            BitmapFont.DrawUpwards(canvas, text, 2, 30, Black);
        }
        else
        {
            BitmapFont.Draw(canvas, text, 2, 2, Black);
        }

        var pattern = new System.Text.StringBuilder();
        for (int y = 0; y < canvas.Height; y++)
        {
            for (int x = 0; x < canvas.Width; x++)
            {
                pattern.Append(canvas[x, y] == Black ? '#' : '.');
            }

            pattern.Append('\n');
        }

        return pattern.ToString();
    }

    [Fact]
    public void EveryPrintableAsciiCharacter_DrawsADistinctGlyph_AndSpaceIsBlank()
    {
        var seen = new Dictionary<string, char>();
        for (char c = ' '; c <= '~'; c++)
        {
            string pattern = Rendered(c.ToString());
            Assert.Equal(c == ' ', !pattern.Contains('#', StringComparison.Ordinal));
            Assert.True(seen.TryAdd(pattern, c), $"'{c}' draws the same as '{(seen.TryGetValue(pattern, out char other) ? other : ' ')}'");
        }

        Assert.Equal(95, seen.Count);
    }

    [Fact]
    public void Glyphs_StayInsideTheirFiveColumnCell()
    {
        for (char c = ' '; c <= '~'; c++)
        {
            ReadOnlySpan<byte> rows = BitmapFont.Glyph(new System.Text.Rune(c));
            Assert.Equal(BitmapFont.GlyphHeight, rows.Length);
            foreach (byte row in rows)
            {
                Assert.Equal(0, row & ~0x1F);
            }
        }
    }

    [Theory]
    [InlineData("é")]
    [InlineData("\u00a0")]
    [InlineData("\t")]
    [InlineData("😀")]
    public void CharactersOutsidePrintableAscii_DrawAsQuestionMark(string text)
    {
        Assert.Equal(Rendered("?"), Rendered(text));
        Assert.Equal(BitmapFont.GlyphWidth, BitmapFont.Measure(text));
    }

    [Theory]
    [InlineData("", 1, 0)]
    [InlineData("a", 1, 5)]
    [InlineData("abc", 1, 17)]
    [InlineData("abc", 2, 34)]
    public void Measure_CountsAdvancesWithoutTrailingSpacing(string text, int scale, int expected)
    {
        Assert.Equal(expected, BitmapFont.Measure(text, scale));
    }

    [Fact]
    public void ScaledText_DrawsEachFontPixelAsASquare()
    {
        var small = new Canvas(20, 20, new Rgb(255, 255, 255));
        var large = new Canvas(20, 20, new Rgb(255, 255, 255));
        BitmapFont.Draw(small, "R", 0, 0, Black);
        BitmapFont.Draw(large, "R", 0, 0, Black, scale: 2);

        for (int y = 0; y < 14; y++)
        {
            for (int x = 0; x < 10; x++)
            {
                Assert.Equal(small[x / 2, y / 2], large[x, y]);
            }
        }
    }

    [Fact]
    public void UpwardsText_IsTheGlyphTurnedAQuarterAnticlockwise()
    {
        var flat = new Canvas(20, 20, new Rgb(255, 255, 255));
        var turned = new Canvas(20, 20, new Rgb(255, 255, 255));
        BitmapFont.Draw(flat, "F", 0, 0, Black);
        BitmapFont.DrawUpwards(turned, "F", 0, 19, Black);

        for (int row = 0; row < BitmapFont.GlyphHeight; row++)
        {
            for (int column = 0; column < BitmapFont.GlyphWidth; column++)
            {
                Assert.Equal(flat[column, row], turned[row, 19 - column]);
            }
        }
    }
}
