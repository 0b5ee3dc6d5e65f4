using ILGPU.Algorithms;

namespace GlowQ.Kernels;

/// <summary>Element-wise functions shared by kernels (device code: float only).</summary>
public static class Activations
{
    /// <summary>
    /// silu(g) = g / (1 + e^(−g)). For very negative g, e^(−g) overflows to +∞ and the quotient is −0, the limit, so
    /// no clamp is needed (unlike tanh-based forms).
    /// </summary>
    public static float Silu(float g) => g / (1f + XMath.Exp(-g));
}
