namespace GlowQ.Converter.Evaluation;

/// <summary>What every chart draws around its data: colours, margins, the y axis's ticks and labels, the titles.</summary>
internal static class ChartFrame
{
    public static readonly Rgb White = new(255, 255, 255), Ink = new(40, 40, 40), GridInk = new(228, 228, 228);

    public const int Pad = 12, TickLength = 5, TitleScale = 2;

    /// <summary>Tick marks and their labels left of the plot at <paramref name="left"/>, one per tick of <paramref name="y"/>.</summary>
    public static void DrawYTicks(Canvas canvas, Axis y, Func<double, double> mapY, int left)
    {
        foreach (double t in y.Ticks)
        {
            int ty = (int)Math.Round(mapY(t));
            string label = y.Format(t);
            canvas.FillRect(left - TickLength, ty, TickLength, 1, Ink);
            BitmapFont.Draw(canvas, label, left - TickLength - 4 - BitmapFont.Measure(label), ty - (BitmapFont.CapHeight / 2), Ink);
        }
    }

    /// <summary>The title centred above the plot and the y label written upwards along its left edge.</summary>
    public static void DrawTitleAndYLabel(Canvas canvas, string title, string yLabel, int left, int right, int top, int bottom)
    {
        BitmapFont.Draw(canvas, title, ((left + right) / 2) - (BitmapFont.Measure(title, TitleScale) / 2), Pad, Ink, TitleScale);
        BitmapFont.DrawUpwards(canvas, yLabel, Pad, ((top + bottom) / 2) + (BitmapFont.Measure(yLabel) / 2), Ink);
    }
}
