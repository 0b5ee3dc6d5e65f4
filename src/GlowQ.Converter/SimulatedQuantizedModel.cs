using System.Runtime.InteropServices;
using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.Format.Glq;

namespace GlowQ.Converter;

/// <summary>
/// The converter's simulated quantised forward pass: a .glq file turned back into dense fp32 weights,
/// W_eff = Q(W) + A·B for units the mask restores and Q(W) for the rest, run by the reference engine. Mathematically
/// the same as y = Q(W)·x + A·(B·x); it is the yardstick the int4 runtime must match, and what evaluation uses.
/// </summary>
public static class SimulatedQuantizedModel
{
    /// <param name="mask">One entry per unit (1 = restore); null uses the file's default mask.</param>
    public static LlamaWeights Load(GlqFile file, byte[]? mask = null)
    {
        GlqModel model = GlqModel.Read(file);
        ModelConfig c = model.Config;
        mask ??= model.DefaultMask;
        if (mask.Length != model.Units.Count)
        {
            throw new ArgumentException($"mask has {mask.Length} entries, the file has {model.Units.Count} units");
        }

        var dense = new Dictionary<string, float[]>(StringComparer.Ordinal);
        for (int l = 0; l < c.Layers; l++)
        {
            foreach (GlqLinear linear in GlqModel.LayerLinears(c, l))
            {
                dense[linear.Module] = Dequantize(file, linear, model.Quantization.GroupSize);
            }
        }

        for (int u = 0; u < model.Units.Count; u++)
        {
            if (mask[u] == 0)
            {
                continue;
            }

            GlqUnit unit = model.Units[u];
            float[] b = Floats(file, unit.BName);
            foreach (string member in unit.Members)
            {
                AddLowRank(dense[member], Floats(file, unit.AName(member)), b, unit.Rank);
            }
        }

        WeightMatrix Matrix(string module, int rows, int cols, bool bias) =>
            WeightMatrix.FromSingle(rows, cols, dense[module], bias ? Floats(file, module + ".bias") : null);

        var layers = new LayerWeights[c.Layers];
        for (int l = 0; l < c.Layers; l++)
        {
            IReadOnlyList<GlqLinear> m = GlqModel.LayerLinears(c, l);
            layers[l] = new LayerWeights(
                Floats(file, LlamaTensorNames.AttentionNorm(l)),
                Matrix(m[0].Module, m[0].Rows, m[0].Cols, m[0].HasBias),
                Matrix(m[1].Module, m[1].Rows, m[1].Cols, m[1].HasBias),
                Matrix(m[2].Module, m[2].Rows, m[2].Cols, m[2].HasBias),
                Matrix(m[3].Module, m[3].Rows, m[3].Cols, false),
                Floats(file, LlamaTensorNames.FfnNorm(l)),
                Matrix(m[4].Module, m[4].Rows, m[4].Cols, false),
                Matrix(m[5].Module, m[5].Rows, m[5].Cols, false),
                Matrix(m[6].Module, m[6].Rows, m[6].Cols, false));
        }

        var embedding = WeightMatrix.FromSingle(c.VocabSize, c.Dim, Floats(file, LlamaTensorNames.Embedding));
        WeightMatrix head = c.TiedEmbeddings ? embedding : WeightMatrix.FromSingle(c.VocabSize, c.Dim, Floats(file, LlamaTensorNames.OutputHead));
        return new LlamaWeights(c, embedding, layers, Floats(file, LlamaTensorNames.FinalNorm), head);
    }

    /// <summary>Q(W) of one projection, [rows × cols] fp32, via the format's one dequantisation.</summary>
    /// <summary>W += A·B for row-major W [rows × cols], A [rows × rank], B [rank × cols].</summary>
    public static void AddLowRank(float[] w, ReadOnlySpan<float> a, ReadOnlySpan<float> b, int rank)
    {
        int cols = b.Length / rank, rows = a.Length / rank;
        for (int r = 0; r < rows; r++)
        {
            Span<float> row = w.AsSpan(r * cols, cols);
            for (int j = 0; j < rank; j++)
            {
                System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(b.Slice(j * cols, cols), a[r * rank + j], row, row);
            }
        }
    }

    public static float[] Dequantize(GlqFile file, GlqLinear linear, int groupSize)
    {
        var w = new float[linear.Rows * linear.Cols];
        Int4Encoding.DequantizeMatrix(
            file.GetBytes(file.RequireTensor(linear.QWeight)),
            MemoryMarshal.Cast<byte, Half>(file.GetBytes(file.RequireTensor(linear.Scales))),
            file.GetBytes(file.RequireTensor(linear.Zeros)),
            linear.Rows, linear.Cols, groupSize, w);
        return w;
    }

    /// <summary>An F16 or F32 tensor widened to fp32.</summary>
    public static float[] Floats(GlqFile file, string name)
    {
        GlqTensorInfo t = file.RequireTensor(name);
        ReadOnlySpan<byte> bytes = file.GetBytes(t);
        var result = new float[t.ElementCount];
        switch (t.DType)
        {
            case GlqDType.F16:
                System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(bytes), result);
                break;
            case GlqDType.F32:
                MemoryMarshal.Cast<byte, float>(bytes).CopyTo(result);
                break;
            default:
                throw new ModelFormatException($"{file.Name}: tensor '{name}' is {t.DType.Name()}, expected F16 or F32");
        }

        return result;
    }
}

/// <summary>Opens a .glq file for evaluation through the simulated quantised model, with its embedded tokenizer.</summary>
public static class GlqEvaluationLoader
{
    public static LoadedModel Load(string path, string? tokenizerPath, InferenceOptions options, byte[]? mask = null)
    {
        using GlqFile file = GlqFile.Open(path);
        return Load(file, tokenizerPath, options, mask);
    }

    /// <summary>The simulation of an open file; the weights are copied out, so the caller keeps and disposes the file.</summary>
    public static LoadedModel Load(GlqFile file, string? tokenizerPath, InferenceOptions options, byte[]? mask = null)
    {
        GlqModel model = GlqModel.Read(file);
        LlamaWeights weights = SimulatedQuantizedModel.Load(file, mask);
        Tokenizers.ITextTokenizer tokenizer = tokenizerPath is not null
            ? Tokenizers.TokenizerLoader.Load(tokenizerPath)
            : EmbeddedTokenizers.FromGlq(file, model);
        return new LoadedModel(new LlamaModel(weights, options), tokenizer, $".glq {model.Method}, simulated int4")
        {
            ChatFormat = model.ChatFormat,
            DefaultSystemPrompt = model.DefaultSystemPrompt,
        };
    }
}
