using GlowQ.Format;

namespace GlowQ.Engine;

/// <summary>
/// Rotary position embedding. Frequencies θ^(−2j/d) (with Llama-3's band-wise rescaling when configured) are
/// computed in float64 once; angles per position in float64, then rotated in fp32.
/// </summary>
public sealed class RotaryEmbedding
{
    private readonly double[] _inverseFrequencies;
    private readonly RopeLayout _layout;
    private readonly int _headDim;

    public RotaryEmbedding(ModelConfig config)
    {
        _headDim = config.HeadDim;
        _layout = config.RopeLayout;
        _inverseFrequencies = InverseFrequencies(config.HeadDim, config.RopeTheta, config.RopeScaling);
    }

    public int HalfDim => _headDim / 2;

    /// <summary>θ^(−2j/d) for j &lt; d/2, rescaled per Llama-3 when <paramref name="scaling"/> is set.</summary>
    public static double[] InverseFrequencies(int headDim, double theta, Llama3RopeScaling? scaling)
    {
        var inv = new double[headDim / 2];
        for (int j = 0; j < inv.Length; j++)
        {
            inv[j] = 1.0 / Math.Pow(theta, 2.0 * j / headDim);
        }

        if (scaling is not null)
        {
            // Llama 3.1: keep high frequencies, divide low ones by the factor, blend smoothly in between.
            double lowWavelength = scaling.OriginalMaxPositions / scaling.LowFreqFactor;
            double highWavelength = scaling.OriginalMaxPositions / scaling.HighFreqFactor;
            for (int j = 0; j < inv.Length; j++)
            {
                double wavelength = 2 * Math.PI / inv[j];
                if (wavelength > lowWavelength)
                {
                    inv[j] /= scaling.Factor;
                }
                else if (wavelength >= highWavelength)
                {
                    double smooth = (scaling.OriginalMaxPositions / wavelength - scaling.LowFreqFactor)
                                    / (scaling.HighFreqFactor - scaling.LowFreqFactor);
                    inv[j] = (1 - smooth) * inv[j] / scaling.Factor + smooth * inv[j];
                }
            }
        }

        return inv;
    }

    /// <summary>cos and sin of every frequency at <paramref name="position"/> (each span d/2 long).</summary>
    public void Angles(int position, Span<float> cos, Span<float> sin)
    {
        for (int j = 0; j < _inverseFrequencies.Length; j++)
        {
            (double s, double c) = Math.SinCos(position * _inverseFrequencies[j]);
            cos[j] = (float)c;
            sin[j] = (float)s;
        }
    }

    /// <summary>Rotates every head of <paramref name="heads"/> (head after head, d each) by the given angles.</summary>
    public void Rotate(Span<float> heads, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int half = HalfDim;
        for (int h = 0; h + _headDim <= heads.Length; h += _headDim)
        {
            Span<float> v = heads.Slice(h, _headDim);
            if (_layout == RopeLayout.InterleavedPairs)
            {
                for (int j = 0; j < half; j++)
                {
                    float a = v[2 * j], b = v[2 * j + 1];
                    v[2 * j] = a * cos[j] - b * sin[j];
                    v[2 * j + 1] = a * sin[j] + b * cos[j];
                }
            }
            else
            {
                for (int j = 0; j < half; j++)
                {
                    float a = v[j], b = v[j + half];
                    v[j] = a * cos[j] - b * sin[j];
                    v[j + half] = a * sin[j] + b * cos[j];
                }
            }
        }
    }
}
