namespace GlowQ.Converter.Evaluation;

internal readonly record struct Rgb(byte R, byte G, byte B);

/// <summary>An 8-bit RGB raster, rows top to bottom; pixel (x, y) has its centre at the integer coordinates.</summary>
internal sealed class Canvas
{
    public Canvas(int width, int height, Rgb background)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        Width = width;
        Height = height;
        Pixels = new byte[width * height * 3];
        FillRect(0, 0, width, height, background);
    }

    public int Width { get; }

    public int Height { get; }

    public byte[] Pixels { get; }

    public Rgb this[int x, int y]
    {
        get
        {
            int i = (y * Width + x) * 3;
            return new Rgb(Pixels[i], Pixels[i + 1], Pixels[i + 2]);
        }
    }

    public bool Contains(int x, int y) => (uint)x < (uint)Width && (uint)y < (uint)Height;

    public void Set(int x, int y, Rgb color)
    {
        if (Contains(x, y))
        {
            int i = (y * Width + x) * 3;
            Pixels[i] = color.R;
            Pixels[i + 1] = color.G;
            Pixels[i + 2] = color.B;
        }
    }

    public void Blend(int x, int y, Rgb color, float alpha)
    {
        if (!Contains(x, y) || alpha <= 0)
        {
            return;
        }

        int i = (y * Width + x) * 3;
        Pixels[i] = Mix(Pixels[i], color.R, alpha);
        Pixels[i + 1] = Mix(Pixels[i + 1], color.G, alpha);
        Pixels[i + 2] = Mix(Pixels[i + 2], color.B, alpha);
    }

    private static byte Mix(byte under, byte over, float alpha) =>
        alpha >= 1 ? over : (byte)MathF.Round(under + (over - under) * alpha);

    public void FillRect(int x, int y, int width, int height, Rgb color)
    {
        int x0 = Math.Max(x, 0), y0 = Math.Max(y, 0);
        int x1 = Math.Min(x + width, Width), y1 = Math.Min(y + height, Height);
        for (int py = y0; py < y1; py++)
        {
            for (int px = x0; px < x1; px++)
            {
                Set(px, py, color);
            }
        }
    }

    /// <summary>A one-pixel outline whose outer edge is the given rectangle.</summary>
    public void StrokeRect(int x, int y, int width, int height, Rgb color)
    {
        FillRect(x, y, width, 1, color);
        FillRect(x, y + height - 1, width, 1, color);
        FillRect(x, y, 1, height, color);
        FillRect(x + width - 1, y, 1, height, color);
    }
}

/// <summary>
/// Anti-aliased coverage of one colour, composited once: overlapping pieces of a polyline (joints, markers) take
/// the maximum coverage instead of blending twice, which would leave dark blobs at every vertex.
/// </summary>
internal sealed class CoverageMask(int width, int height)
{
    private readonly float[] _alpha = new float[width * height];
    private int _minX = int.MaxValue, _minY = int.MaxValue, _maxX = -1, _maxY = -1;

    public void Segment(double x0, double y0, double x1, double y1, double halfWidth)
    {
        double dx = x1 - x0, dy = y1 - y0, lengthSquared = dx * dx + dy * dy;
        Cover(Math.Min(x0, x1), Math.Min(y0, y1), Math.Max(x0, x1), Math.Max(y0, y1), halfWidth, (x, y) =>
        {
            double t = lengthSquared > 0 ? Math.Clamp(((x - x0) * dx + (y - y0) * dy) / lengthSquared, 0, 1) : 0;
            double ex = x - (x0 + t * dx), ey = y - (y0 + t * dy);
            return halfWidth + 0.5 - Math.Sqrt(ex * ex + ey * ey);
        });
    }

    public void Disc(double cx, double cy, double radius) =>
        Cover(cx, cy, cx, cy, radius, (x, y) => radius + 0.5 - Math.Sqrt((x - cx) * (x - cx) + (y - cy) * (y - cy)));

    public void Square(double cx, double cy, double half) =>
        Cover(cx, cy, cx, cy, half, (x, y) => half + 0.5 - Math.Max(Math.Abs(x - cx), Math.Abs(y - cy)));

    /// <summary>Raises coverage around a shape's box to <paramref name="coverage"/>(pixel centre), clamped to 0..1.</summary>
    private void Cover(double left, double top, double right, double bottom, double reach, Func<double, double, double> coverage)
    {
        if (!double.IsFinite(left + top + right + bottom + reach))
        {
            return;
        }

        int x0 = (int)Math.Max(Math.Floor(left - reach - 1), 0), y0 = (int)Math.Max(Math.Floor(top - reach - 1), 0);
        int x1 = (int)Math.Min(Math.Ceiling(right + reach + 1), width - 1);
        int y1 = (int)Math.Min(Math.Ceiling(bottom + reach + 1), height - 1);
        for (int y = y0; y <= y1; y++)
        {
            for (int x = x0; x <= x1; x++)
            {
                float c = (float)Math.Clamp(coverage(x, y), 0, 1);
                ref float a = ref _alpha[y * width + x];
                a = Math.Max(a, c);
            }
        }

        _minX = Math.Min(_minX, x0);
        _minY = Math.Min(_minY, y0);
        _maxX = Math.Max(_maxX, x1);
        _maxY = Math.Max(_maxY, y1);
    }

    /// <summary>Paints the accumulated coverage in <paramref name="color"/> and clears the mask for the next shape.</summary>
    public void Composite(Canvas canvas, Rgb color)
    {
        for (int y = _minY; y <= _maxY; y++)
        {
            for (int x = _minX; x <= _maxX; x++)
            {
                ref float a = ref _alpha[y * width + x];
                canvas.Blend(x, y, color, a);
                a = 0;
            }
        }

        _minX = _minY = int.MaxValue;
        _maxX = _maxY = -1;
    }
}
