using GlowQ.Format;

namespace GlowQ.Engine.Tests;

public sealed class RotaryEmbeddingTests
{
    private static ModelConfig Config(RopeLayout layout, Llama3RopeScaling? scaling = null) => new()
    {
        Architecture = "LlamaForCausalLM", Dim = 16, HiddenDim = 32, Layers = 1, Heads = 2, KvHeads = 1, HeadDim = 8,
        VocabSize = 10, MaxSequenceLength = 64, NormEps = 1e-5f, RopeTheta = 10000, RopeLayout = layout,
        TiedEmbeddings = true, RopeScaling = scaling,
    };

    [Fact]
    public void InterleavedAndRotateHalf_AgreeUnderThePairPermutation()
    {
        // Interleaved pair (2j, 2j+1) is rotate-half pair (j, j+d/2): permuting a head maps one onto the other.
        var interleaved = new RotaryEmbedding(Config(RopeLayout.InterleavedPairs));
        var rotateHalf = new RotaryEmbedding(Config(RopeLayout.RotateHalf));
        var r = new Random(1);
        float[] a = [.. Enumerable.Range(0, 16).Select(_ => (float)r.NextDouble())];
        var b = new float[16];
        for (int h = 0; h < 2; h++)
        {
            for (int j = 0; j < 4; j++)
            {
                b[h * 8 + j] = a[h * 8 + 2 * j];
                b[h * 8 + j + 4] = a[h * 8 + 2 * j + 1];
            }
        }

        var cos = new float[4];
        var sin = new float[4];
        interleaved.Angles(37, cos, sin);
        interleaved.Rotate(a, cos, sin);
        rotateHalf.Rotate(b, cos, sin);
        for (int h = 0; h < 2; h++)
        {
            for (int j = 0; j < 4; j++)
            {
                Assert.Equal(a[h * 8 + 2 * j], b[h * 8 + j], 6);
                Assert.Equal(a[h * 8 + 2 * j + 1], b[h * 8 + j + 4], 6);
            }
        }
    }

    [Fact]
    public void Rotation_PreservesNormAndIsIdentityAtPositionZero()
    {
        var rope = new RotaryEmbedding(Config(RopeLayout.RotateHalf));
        float[] v = [1, 2, 3, 4, 5, 6, 7, 8];
        var cos = new float[4];
        var sin = new float[4];
        rope.Angles(0, cos, sin);
        float[] same = (float[])v.Clone();
        rope.Rotate(same, cos, sin);
        Assert.Equal(v, same);
        rope.Angles(1234, cos, sin);
        rope.Rotate(v, cos, sin);
        Assert.Equal(Math.Sqrt(204), Math.Sqrt(v.Sum(x => (double)x * x)), 4);
    }

    [Fact]
    public void Llama3Scaling_KeepsHighFrequencies_DividesLowOnes_BlendsBetween()
    {
        // Llama-3.1 settings: factor 8, low 1, high 4, original context 8192, θ = 500000, head dim 128.
        var scaling = new Llama3RopeScaling(8, 1, 4, 8192);
        double[] plain = RotaryEmbedding.InverseFrequencies(128, 500000, null);
        double[] scaled = RotaryEmbedding.InverseFrequencies(128, 500000, scaling);
        int kept = 0, divided = 0, blended = 0;
        for (int j = 0; j < plain.Length; j++)
        {
            double wavelength = 2 * Math.PI / plain[j];
            if (wavelength < 8192 / 4.0)
            {
                Assert.Equal(plain[j], scaled[j]);
                kept++;
            }
            else if (wavelength > 8192 / 1.0)
            {
                Assert.Equal(plain[j] / 8, scaled[j], 15);
                divided++;
            }
            else
            {
                Assert.InRange(scaled[j], plain[j] / 8, plain[j]);
                blended++;
            }
        }

        Assert.True(kept > 0 && divided > 0 && blended > 0, $"kept {kept}, divided {divided}, blended {blended}");
        Assert.Equal(1.0, plain[0]);
    }
}
