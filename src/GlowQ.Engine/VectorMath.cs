using System.Numerics.Tensors;

namespace GlowQ.Engine;

/// <summary>The element-wise pieces of a Llama layer, on spans, allocation-free.</summary>
public static class VectorMath
{
    /// <summary>y = x / sqrt(mean(x²) + eps) ⊙ weight.</summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps, Span<float> y)
    {
        float meanSquare = TensorPrimitives.SumOfSquares(x) / x.Length;
        float scale = 1f / MathF.Sqrt(meanSquare + eps);
        TensorPrimitives.Multiply(x, scale, y);
        TensorPrimitives.Multiply(y, weight, y);
    }

    /// <summary>In-place softmax, shifted by the maximum so large logits cannot overflow.</summary>
    public static void Softmax(Span<float> x)
    {
        float max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, x);
        TensorPrimitives.Exp(x, x);
        float sum = TensorPrimitives.Sum(x);
        TensorPrimitives.Multiply(x, 1f / sum, x);
    }

    /// <summary>gate ← silu(gate) ⊙ up, the SwiGLU activation.</summary>
    public static void SwiGlu(Span<float> gate, ReadOnlySpan<float> up, Span<float> scratch)
    {
        TensorPrimitives.Sigmoid(gate, scratch);
        TensorPrimitives.Multiply(gate, scratch, gate);
        TensorPrimitives.Multiply(gate, up, gate);
    }

    /// <summary>log Σ exp(x), computed stably; used for per-token negative log-likelihood.</summary>
    public static double LogSumExp(ReadOnlySpan<float> x, Span<float> scratch)
    {
        float max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, scratch);
        TensorPrimitives.Exp(scratch, scratch);
        return max + Math.Log(TensorPrimitives.Sum(scratch));
    }
}
