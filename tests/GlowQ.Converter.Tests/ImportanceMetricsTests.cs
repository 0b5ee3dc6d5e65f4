using MathNet.Numerics.LinearAlgebra.Double;

namespace GlowQ.Converter.Tests;

public sealed class ImportanceMetricsTests
{
    [Fact]
    public void Metrics_MatchTheirDefinitions()
    {
        float[] w = [3, 0, 4, 0];        // ‖W‖ = 5
        float[] q = [3, 1, 4, -1];       // E = [0, −1, 0, 1], ‖E‖ = √2
        var factors = new UnitFactors([new float[4]], new float[4], 1, [2.0, 1.0], WhitenedErrorEnergy: 10, CapturedEnergy: 4);
        var m = ImportanceMetrics.Compute([w], [q], factors, layer: 1, layers: 5);
        Assert.Equal(Math.Sqrt(2) / 5, m["norm_error"], 12);
        Assert.Equal(Math.Sqrt(2), m["frobenius"], 12);
        Assert.Equal(1 - 25 / (5 * Math.Sqrt(27)), m["cosine"], 12);
        Assert.Equal(2.0, m["gsvd"], 12);          // Σ_{j≤r} s_j with r = 1
        Assert.Equal(0.4, m["gsvd-energy"], 12);   // 4 / 10
        Assert.Equal(4, m["layer_order"]);
        Assert.Equal(ImportanceMetrics.Names.Order(), m.Keys.Order());
    }

    [Fact]
    public void GsvdScores_ComeFromTheFactorisation()
    {
        var r = new Random(4);
        float[] e = [.. Enumerable.Range(0, 8 * 6).Select(_ => (float)(r.NextDouble() - 0.5))];
        UnitFactors f = SharedLowRankFactorization.Factorize([e], [8], 6, DenseMatrix.CreateIdentity(6), new(Rank: 2, Seed: 1));
        double[] s = DenseMatrix.Create(8, 6, (i, j) => e[i * 6 + j]).Svd(computeVectors: false).S.ToArray();
        Assert.Equal(s[0] + s[1], f.SingularValueSum, 1e-9);
        Assert.Equal((s[0] * s[0] + s[1] * s[1]) / s.Sum(x => x * x), f.CapturedEnergyFraction, 1e-9);
    }

    [Theory]
    [InlineData(0.0, new byte[] { 0, 0, 0, 0 })]
    [InlineData(0.5, new byte[] { 1, 0, 1, 0 })]
    [InlineData(0.75, new byte[] { 1, 1, 1, 0 })]
    [InlineData(1.0, new byte[] { 1, 1, 1, 1 })]
    public void TopFraction_RestoresTheHighestScoringUnits(double fraction, byte[] expected)
    {
        Assert.Equal(expected, ImportanceMetrics.TopFraction([0.9f, 0.2f, 0.95f, 0.2f], fraction));
    }

    [Fact]
    public void TopFraction_OutOfRange_IsRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ImportanceMetrics.TopFraction([1f], 1.5));
    }
}
