using GlowQ.Format.Glq;
using MathNet.Numerics.LinearAlgebra.Double;

namespace GlowQ.Converter.Tests;

public sealed class GptqQuantizerTests
{
    /// <summary>Calibration-like inputs: correlated channels (a shared latent factor) and a few heavy channels.</summary>
    private static (float[] X, double[] Sigma) CorrelatedInputs(int tokens, int cols, int seed)
    {
        var random = new Random(seed);
        var x = new float[tokens * cols];
        for (int t = 0; t < tokens; t++)
        {
            double latent = Gaussian(random), latent2 = Gaussian(random);
            for (int j = 0; j < cols; j++)
            {
                double heavy = j % 11 == 3 ? 6 : 1;
                x[t * cols + j] = (float)(heavy * (0.8 * latent * Math.Sin(j + 1) + 0.5 * latent2 * Math.Cos(3 * j) + 0.4 * Gaussian(random)));
            }
        }

        var sigma = new double[cols * cols];
        for (int t = 0; t < tokens; t++)
        {
            for (int i = 0; i < cols; i++)
            {
                for (int j = 0; j < cols; j++)
                {
                    sigma[i * cols + j] += (double)x[t * cols + i] * x[t * cols + j] / tokens;
                }
            }
        }

        return (x, sigma);
    }

    private static double Gaussian(Random r) => Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());

    private static float[] Weights(int rows, int cols, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, rows * cols).Select(_ => (float)(Gaussian(random) * 0.05))];
    }

    /// <summary>tr(E Σ Eᵀ): the mean squared output error of the layer over the calibration inputs.</summary>
    private static double OutputError(float[] w, QuantizedMatrix q, double[] sigma, int rows, int cols)
    {
        var dequantized = new float[w.Length];
        q.Dequantize(dequantized);
        double total = 0;
        var e = new double[cols];
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < cols; j++)
            {
                e[j] = (double)w[r * cols + j] - dequantized[r * cols + j];
            }

            for (int i = 0; i < cols; i++)
            {
                for (int j = 0; j < cols; j++)
                {
                    total += e[i] * sigma[i * cols + j] * e[j];
                }
            }
        }

        return total;
    }

    private static void AssertSameEncoding(QuantizedMatrix expected, QuantizedMatrix actual)
    {
        Assert.Equal(expected.Scales, actual.Scales);
        Assert.Equal(expected.Zeros, actual.Zeros);
        Assert.Equal(expected.Codes, actual.Codes);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void WithUncorrelatedInputs_NoErrorIsPassedOn_SoTheResultIsExactlyRtn(bool actOrder)
    {
        const int rows = 6, cols = 40, g = 16; // 40 columns: the last group is padded
        float[] w = Weights(rows, cols, 1);
        var sigma = new double[cols * cols];
        for (int j = 0; j < cols; j++)
        {
            sigma[j * cols + j] = 0.5 + j % 7; // diagonal: inputs uncorrelated, energies differ so act-order permutes
        }

        QuantizedMatrix gptq = GptqQuantizer.Quantize(w, rows, cols, g, sigma, new GptqOptions(ActOrder: actOrder, BlockSize: 8));
        AssertSameEncoding(RtnQuantizer.Quantize(w, rows, cols, g), gptq);
    }

    [Fact]
    public void WithAZeroStatistic_EveryColumnGetsUnitWeight_AndTheResultIsExactlyRtn()
    {
        const int rows = 3, cols = 24, g = 8;
        float[] w = Weights(rows, cols, 2);
        QuantizedMatrix gptq = GptqQuantizer.Quantize(w, rows, cols, g, new double[cols * cols], new GptqOptions());
        AssertSameEncoding(RtnQuantizer.Quantize(w, rows, cols, g), gptq);
    }

    [Theory]
    [InlineData(false, 32, 128)]
    [InlineData(false, 16, 24)] // blocks of 16: group boundaries inside the lazy-update scheme
    [InlineData(true, 32, 128)]
    [InlineData(true, 16, 20)]
    public void OnCorrelatedInputs_TheOutputErrorIsWellBelowRtns(bool actOrder, int g, int block)
    {
        const int rows = 24, cols = 96;
        (_, double[] sigma) = CorrelatedInputs(512, cols, 3);
        float[] w = Weights(rows, cols, 4);
        double rtn = OutputError(w, RtnQuantizer.Quantize(w, rows, cols, g), sigma, rows, cols);
        double gptq = OutputError(w, GptqQuantizer.Quantize(w, rows, cols, g, sigma, new GptqOptions(ActOrder: actOrder, BlockSize: block)), sigma, rows, cols);
        // GPTQ's greedy error feedback typically removes a third or more of the output error on correlated inputs.
        Assert.True(gptq < 0.85 * rtn, $"tr(EΣEᵀ): gptq {gptq:G4} vs rtn {rtn:G4}");
    }

    [Fact]
    public void TheResult_DoesNotDependOnTheLazyBlockSize()
    {
        const int rows = 9, cols = 64, g = 16;
        (_, double[] sigma) = CorrelatedInputs(256, cols, 5);
        float[] w = Weights(rows, cols, 6);
        QuantizedMatrix one = GptqQuantizer.Quantize(w, rows, cols, g, sigma, new GptqOptions(BlockSize: 16));
        QuantizedMatrix whole = GptqQuantizer.Quantize(w, rows, cols, g, sigma, new GptqOptions(BlockSize: 64));
        // Lazy batching only reorders the same updates; rounding differences may flip an exact tie, nothing more.
        int differing = Enumerable.Range(0, rows * cols).Count(i =>
            Int4Encoding.GetNibble(one.CodeRow(i / cols), i % cols) != Int4Encoding.GetNibble(whole.CodeRow(i / cols), i % cols));
        Assert.True(differing <= 1, $"{differing} codes differ");
        Assert.Equal(one.Scales, whole.Scales);
    }

    [Fact]
    public void PaddingColumns_HoldTheZeroPoint_SoTheyDequantizeToZero()
    {
        const int rows = 4, cols = 20, g = 8;
        (_, double[] sigma) = CorrelatedInputs(128, cols, 7);
        QuantizedMatrix q = GptqQuantizer.Quantize(Weights(rows, cols, 8), rows, cols, g, sigma, new GptqOptions());
        Assert.Equal(24, q.PaddedCols);
        for (int r = 0; r < rows; r++)
        {
            var full = new float[q.PaddedCols];
            Int4Encoding.DequantizeRow(q.CodeRow(r), q.ScaleRow(r), q.ZeroRow(r), g, full);
            Assert.All(full[cols..], v => Assert.Equal(0f, v));
            Assert.All(q.ScaleRow(r).ToArray(), s => Assert.True(Half.IsFinite(s) && s > Half.Zero));
        }
    }

    [Fact]
    public void InverseHessianFactor_IsTheUpperCholeskyFactorOfTheDampedInverse()
    {
        const int n = 37;
        (_, double[] sigma) = CorrelatedInputs(200, n, 9);
        int[] order = [.. Enumerable.Range(0, n).Reverse()];
        double[] u = GptqQuantizer.InverseHessianFactor(sigma, n, order, 0.01);

        double meanDiagonal = Enumerable.Range(0, n).Average(j => sigma[j * n + j]);
        var h = DenseMatrix.Create(n, n, (i, j) => sigma[order[i] * n + order[j]] + (i == j ? 0.01 * meanDiagonal : 0));
        var expected = h.Inverse();
        var um = DenseMatrix.Create(n, n, (i, j) => u[i * n + j]);
        Assert.True(um.StrictlyLowerTriangle().FrobeniusNorm() == 0, "U must be upper-triangular");
        double relative = (um.TransposeThisAndMultiply(um) - expected).FrobeniusNorm() / expected.FrobeniusNorm();
        Assert.True(relative < 1e-9, $"‖UᵀU − H⁻¹‖/‖H⁻¹‖ = {relative:G3}");
    }
}
