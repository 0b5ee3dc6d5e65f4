namespace GlowQ.Converter;

/// <summary>
/// GlowQ-S importance scores of a unit (method notes §6); higher means restoring the unit's correction matters more.
/// All units of all layers are ranked together on one metric.
/// </summary>
public static class ImportanceMetrics
{
    public static readonly IReadOnlyList<string> Names = ["gsvd", "gsvd-energy", "norm_error", "frobenius", "cosine", "layer_order"];

    /// <summary>Every metric for one unit, from its members' weights W_i, dequantised weights Q(W_i) and factors.</summary>
    /// <param name="layer">The unit's layer; layer_order ranks earlier layers higher.</param>
    /// <param name="layers">Number of layers in the model.</param>
    public static IReadOnlyDictionary<string, double> Compute(
        IReadOnlyList<float[]> weights, IReadOnlyList<float[]> dequantized, UnitFactors factors, int layer, int layers)
    {
        double errorSquared = 0, weightSquared = 0, dot = 0, quantizedSquared = 0;
        for (int i = 0; i < weights.Count; i++)
        {
            float[] w = weights[i], q = dequantized[i];
            if (w.Length != q.Length)
            {
                throw new ArgumentException($"member {i}: {w.Length} weights but {q.Length} dequantised values");
            }

            for (int k = 0; k < w.Length; k++)
            {
                double e = (double)w[k] - q[k];
                errorSquared += e * e;
                weightSquared += (double)w[k] * w[k];
                quantizedSquared += (double)q[k] * q[k];
                dot += (double)w[k] * q[k];
            }
        }

        double cosine = weightSquared > 0 && quantizedSquared > 0 ? dot / Math.Sqrt(weightSquared * quantizedSquared) : 1;
        return new Dictionary<string, double>(StringComparer.Ordinal)
        {
            // The reference code's score: Σ_{j≤r} s_j of the whitened error (unnormalised).
            ["gsvd"] = factors.SingularValueSum,
            // The paper's score: the fraction of whitened error energy the rank-r factors capture.
            ["gsvd-energy"] = factors.CapturedEnergyFraction,
            ["norm_error"] = weightSquared > 0 ? Math.Sqrt(errorSquared / weightSquared) : 0,
            ["frobenius"] = Math.Sqrt(errorSquared),
            ["cosine"] = 1 - cosine,
            // Earlier layers first, without the reference's bug that sorts every qkv/mlp unit last.
            ["layer_order"] = layers - layer,
        };
    }

    /// <summary>
    /// The restoration mask that restores the top <paramref name="fraction"/> of units by <paramref name="scores"/>
    /// (descending; ties by unit order, so masks are reproducible).
    /// </summary>
    public static byte[] TopFraction(IReadOnlyList<float> scores, double fraction)
    {
        if (!(fraction >= 0 && fraction <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(fraction), $"restore fraction must be in [0, 1], got {fraction}");
        }

        int keep = (int)Math.Round(fraction * scores.Count, MidpointRounding.AwayFromZero);
        var mask = new byte[scores.Count];
        foreach (int i in Enumerable.Range(0, scores.Count).OrderByDescending(i => scores[i]).ThenBy(i => i).Take(keep))
        {
            mask[i] = 1;
        }

        return mask;
    }
}
