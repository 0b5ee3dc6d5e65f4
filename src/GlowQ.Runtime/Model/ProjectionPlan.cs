using GlowQ.Format;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Kernels;

namespace GlowQ.Runtime.Model;

/// <summary>
/// How a .glq file's projections run, whatever the backend: per layer, four input groups (attention input → q/k/v,
/// attention output → o, FFN input → gate/up, SwiGLU state → down), each a list of calls over that input — one per
/// file unit, plus one plain call for the group's projections outside any unit (rtn files).
/// </summary>
internal static class ProjectionPlan
{
    // Module indices within GlqModel.LayerLinears.
    public const int Q = 0, K = 1, V = 2, O = 3, Gate = 4, Up = 5, Down = 6;

    public const int QkvGroup = 0, OutputGroup = 1, GateUpGroup = 2, DownGroup = 3;

    public static readonly int[][] Groups = [[Q, K, V], [O], [Gate, Up], [Down]];

    /// <summary>[layer][group][call], viewing the file in place; <paramref name="units"/> holds each file unit once.</summary>
    public static UnitCall[][][] Calls(GlqFile file, GlqModel model, out Int4Unit?[] units)
    {
        ModelConfig c = model.Config;
        int groupSize = model.Quantization.GroupSize;
        var unitOf = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int u = 0; u < model.Units.Count; u++)
        {
            foreach (string member in model.Units[u].Members)
            {
                unitOf[member] = u;
            }
        }

        units = new Int4Unit?[model.Units.Count];
        var calls = new UnitCall[c.Layers][][];
        for (int l = 0; l < c.Layers; l++)
        {
            IReadOnlyList<GlqLinear> linears = GlqModel.LayerLinears(c, l);
            calls[l] = new UnitCall[Groups.Length][];
            for (int g = 0; g < Groups.Length; g++)
            {
                var groupCalls = new List<UnitCall>();
                var plain = new List<int>();
                foreach (int m in Groups[g])
                {
                    if (!unitOf.TryGetValue(linears[m].Module, out int u))
                    {
                        plain.Add(m);
                    }
                    else if (!groupCalls.Any(call => call.MaskIndex == u))
                    {
                        Int4Unit unit = units[u] ??= Int4Unit.FromGlq(file, model, u);
                        int[] modules = [.. model.Units[u].Members.Select(member => IndexOf(linears, member, model.Units[u].Name))];
                        groupCalls.Add(new UnitCall(unit, u, modules));
                    }
                }

                if (plain.Count > 0)
                {
                    // Projections outside any unit (rtn files): still one fused call over the shared input.
                    groupCalls.Add(new UnitCall(new Int4Unit([.. plain.Select(m => Int4Matrix.FromGlq(file, linears[m], groupSize))]), -1, [.. plain]));
                }

                calls[l][g] = [.. groupCalls];
            }
        }

        return calls;
    }

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
}

/// <summary>One fused call: a unit, its mask index (−1: not a file unit, never corrected), its members' module indices.</summary>
internal sealed record UnitCall(Int4Unit Unit, int MaskIndex, int[] Modules);
