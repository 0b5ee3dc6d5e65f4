using ILGPU;
using ILGPU.Algorithms;

namespace GlowQ.Kernels;

/// <summary>Serial reductions shared by kernels (device code: float only).</summary>
internal static class Reductions
{
    /// <summary>
    /// The largest of values[start … end) (end &gt; start), or NaN when any value is NaN: a NaN must win, as it does in
    /// the CPU softmax and sampler, so a diverging model shows up rather than being masked by a finite value.
    /// </summary>
    public static float MaxOrNaN(ArrayView<float> values, int start, int end)
    {
        float max = values[start];
        for (int i = start + 1; i < end; i++)
        {
            float value = values[i];
            if (value > max || XMath.IsNaN(value))
            {
                max = value;
            }
        }

        return max;
    }
}
