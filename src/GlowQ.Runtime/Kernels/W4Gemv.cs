using GlowQ.Engine;

namespace GlowQ.Runtime.Kernels;

/// <summary>
/// y = Q(W)·x (+ bias) for one int4 matrix and T tokens: the product of a unit whose mask bit is 0, or of a
/// projection outside any unit. Same kernels, threading and no-allocation guarantee as <see cref="W4GemvWithCorrection"/>.
/// </summary>
public sealed class W4Gemv
{
    private readonly W4GemvWithCorrection _core;

    /// <param name="maxCols">The widest input this instance will multiply.</param>
    /// <param name="maxTokens">Tokens per internal chunk; longer inputs run in chunks of this many.</param>
    public W4Gemv(WorkerPool pool, int maxCols, int maxTokens = 1) => _core = new W4GemvWithCorrection(pool, maxCols, 0, maxTokens);

    internal Int4Path Path
    {
        get => _core.Path;
        set => _core.Path = value;
    }

    /// <summary>y[t·Rows + o] ← (Q(W)·x_t + bias)[o] for tokens t of x (row-major, Cols per token).</summary>
    public void Run(Int4Matrix w, float[] x, float[] y, int tokens = 1) => _core.RunPlain(w, x, y, tokens);
}
