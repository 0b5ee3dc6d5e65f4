using ILGPU;

namespace GlowQ.Kernels;

/// <summary>
/// Reductions across one warp for kernels that give each output row a whole warp (coalesced reads: lane l reads
/// elements l, l + warp, … of the row, so a warp's loads of one step are adjacent). Every lane of the warp must be
/// active — launch such kernels over rows · <see cref="Warp.WarpSize"/> threads and never return before the reduction —
/// because the shuffles (PTX <c>shfl.sync</c> with a full mask) wait for all 32 lanes.
/// </summary>
internal static class WarpMath
{
    /// <summary>The sum of <paramref name="value"/> over the warp's lanes, returned to every lane (butterfly order).</summary>
    public static float Sum(float value)
    {
        for (int offset = Warp.WarpSize / 2; offset > 0; offset >>= 1)
        {
            value += Warp.ShuffleXor(value, offset);
        }

        return value;
    }

    /// <summary>Σ_c matrix[start + c] · input[c] over the columns this lane owns (c ≡ lane mod warp), fp16 widened exactly.</summary>
    public static float LaneHalfRowDot(ArrayView<ILGPU.Half> matrix, long start, ArrayView<float> input, int cols)
    {
        float sum = 0f;
        for (int c = Warp.LaneIdx; c < cols; c += Warp.WarpSize)
        {
            sum += (float)matrix[start + c] * input[c];
        }

        return sum;
    }
}
