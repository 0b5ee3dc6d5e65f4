using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Kernels;

namespace GlowQ.Runtime.Model;

/// <summary>
/// The layer projections of a .glq model as int4 products with GlowQ correction, read in place from the file mapping.
/// Each layer has four input groups (attention input → q/k/v, attention output → o, FFN input → gate/up,
/// SwiGLU state → down); a group runs as the file's units over that input, so a glowq file makes one fused call per
/// group, a layerwise file one per module, and an rtn file (no units) one plain fused call per group.
/// </summary>
public sealed class Int4Projections : ILayerProjections
{
    private const int Q = ProjectionPlan.Q, K = ProjectionPlan.K, V = ProjectionPlan.V, O = ProjectionPlan.O;
    private const int Gate = ProjectionPlan.Gate, Up = ProjectionPlan.Up, DownProj = ProjectionPlan.Down;

    private readonly UnitCall[][][] _calls; // [layer][group][call]
    private readonly byte[] _mask;
    private readonly W4GemvWithCorrection _gemv;
    private readonly int _hiddenDim;
    private readonly float[] _up, _swigluScratch;

    // One slot per module, filled per call with the caller's buffers, so dispatching allocates nothing.
    private readonly float[][] _byModule = new float[7][];
    private readonly float[][] _outputs = new float[Int4Unit.MaxMembers][];

    /// <param name="mask">One entry per unit of <paramref name="model"/>, 1 restores the unit's correction.</param>
    public Int4Projections(GlqFile file, GlqModel model, byte[] mask, WorkerPool pool, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(mask);
        ModelConfig c = model.Config;
        _mask = mask;
        _hiddenDim = c.HiddenDim;
        _calls = ProjectionPlan.Calls(file, model, out Int4Unit?[] units);
        int maxRank = units.Select(u => u?.Rank ?? 0).DefaultIfEmpty(0).Max();
        _gemv = new W4GemvWithCorrection(pool, Math.Max(Math.Max(c.Dim, c.HiddenDim), c.QDim), maxRank, maxTokens);
        _up = new float[maxTokens * c.HiddenDim];
        _swigluScratch = new float[c.HiddenDim];
        ByteSize = _calls.Sum(layer => layer.Sum(g => g.Sum(call => call.Unit.WeightBytes + (Restores(call) ? call.Unit.CorrectionBytes : 0))));
    }

    /// <summary>int4 weights, scales, zero points and biases, plus the restored units' correction factors (mapped, not copied).</summary>
    public long ByteSize { get; }

    public void QueryKeyValue(int layer, float[] x, int tokens, float[] q, float[] k, float[] v)
    {
        _byModule[Q] = q;
        _byModule[K] = k;
        _byModule[V] = v;
        RunGroup(layer, 0, x, tokens);
    }

    public void AttentionOutput(int layer, float[] attention, int tokens, float[] y)
    {
        _byModule[O] = y;
        RunGroup(layer, 1, attention, tokens);
    }

    public void GateUpSwiGlu(int layer, float[] x, int tokens, float[] hidden)
    {
        UnitCall[] calls = _calls[layer][2];
        if (calls.Length == 1 && calls[0].Modules is [Gate, Up])
        {
            // gate and up in one unit: the kernel forms silu(gate)·up itself and writes only the product.
            _gemv.RunSwiGlu(calls[0].Unit, Restores(calls[0]), x, hidden, tokens);
            return;
        }

        _byModule[Gate] = hidden;
        _byModule[Up] = _up;
        RunGroup(layer, 2, x, tokens);
        int width = _hiddenDim;
        for (int t = 0; t < tokens; t++)
        {
            VectorMath.SwiGlu(hidden.AsSpan(t * width, width), _up.AsSpan(t * width, width), _swigluScratch);
        }
    }

    public void Down(int layer, float[] hidden, int tokens, float[] y)
    {
        _byModule[DownProj] = y;
        RunGroup(layer, 3, hidden, tokens);
    }

    private void RunGroup(int layer, int group, float[] x, int tokens)
    {
        foreach (UnitCall call in _calls[layer][group])
        {
            int members = call.Modules.Length;
            for (int i = 0; i < members; i++)
            {
                _outputs[i] = _byModule[call.Modules[i]];
            }

            _gemv.Run(call.Unit, Restores(call), x, tokens, _outputs.AsSpan(0, members));
        }

        Array.Clear(_byModule);
        Array.Clear(_outputs);
    }

    private bool Restores(UnitCall call) => call.MaskIndex >= 0 && _mask[call.MaskIndex] != 0;
}
