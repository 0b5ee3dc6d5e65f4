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
    // Module indices within GlqModel.LayerLinears: q, k, v, o, gate, up, down.
    private const int Q = 0, K = 1, V = 2, O = 3, Gate = 4, Up = 5, DownProj = 6;
    private static readonly int[][] Groups = [[Q, K, V], [O], [Gate, Up], [DownProj]];

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
        int group = model.Quantization.GroupSize;
        var unitOf = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int u = 0; u < model.Units.Count; u++)
        {
            foreach (string member in model.Units[u].Members)
            {
                unitOf[member] = u;
            }
        }

        var units = new Int4Unit?[model.Units.Count];
        _calls = new UnitCall[c.Layers][][];
        for (int l = 0; l < c.Layers; l++)
        {
            IReadOnlyList<GlqLinear> linears = GlqModel.LayerLinears(c, l);
            _calls[l] = new UnitCall[Groups.Length][];
            for (int g = 0; g < Groups.Length; g++)
            {
                var calls = new List<UnitCall>();
                var plain = new List<int>();
                foreach (int m in Groups[g])
                {
                    if (!unitOf.TryGetValue(linears[m].Module, out int u))
                    {
                        plain.Add(m);
                    }
                    else if (!calls.Any(call => call.MaskIndex == u))
                    {
                        Int4Unit unit = units[u] ??= Int4Unit.FromGlq(file, model, u);
                        int[] modules = [.. model.Units[u].Members.Select(member => IndexOf(linears, member, model.Units[u].Name))];
                        calls.Add(new UnitCall(unit, u, modules));
                    }
                }

                if (plain.Count > 0)
                {
                    // Projections outside any unit (rtn files): still one fused call over the shared input.
                    calls.Add(new UnitCall(new Int4Unit([.. plain.Select(m => Int4Matrix.FromGlq(file, linears[m], group))]), -1, [.. plain]));
                }

                _calls[l][g] = [.. calls];
            }
        }

        int maxRank = units.Select(u => u?.Rank ?? 0).DefaultIfEmpty(0).Max();
        _gemv = new W4GemvWithCorrection(pool, Math.Max(Math.Max(c.Dim, c.HiddenDim), c.QDim), maxRank, maxTokens);
        _up = new float[maxTokens * c.HiddenDim];
        _swigluScratch = new float[c.HiddenDim];
        ByteSize = _calls.Sum(layer => layer.Sum(g => g.Sum(call => call.Unit.WeightBytes + (call.MaskIndex >= 0 ? call.Unit.CorrectionBytes : 0))));
    }

    /// <summary>int4 weights, scales, zero points and biases, plus every unit's correction factors (mapped, not copied).</summary>
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

    private static int IndexOf(IReadOnlyList<GlqLinear> linears, string module, string unit)
    {
        for (int i = 0; i < linears.Count; i++)
        {
            if (linears[i].Module == module)
            {
                return i;
            }
        }

        throw new ModelFormatException($"unit '{unit}' names member '{module}', which is not a projection of its layer");
    }

    /// <summary>One kernel launch: a unit, its mask index (−1: not a file unit, never corrected), its members' module indices.</summary>
    private sealed record UnitCall(Int4Unit Unit, int MaskIndex, int[] Modules);
}
