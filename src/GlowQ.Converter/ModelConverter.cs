using System.Runtime.InteropServices;
using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.Format.Glq;

namespace GlowQ.Converter;

/// <summary>Choices of one conversion (formats/glq-v1.md names the metadata each one becomes).</summary>
public sealed record ConversionOptions
{
    /// <summary>glowq (shared B per input-sharing unit), layerwise (one A/B pair per module) or rtn (no correction).</summary>
    public string Method { get; init; } = "glowq";

    /// <summary>Base quantiser: rtn (round to nearest) or gptq (error feedback on the calibration statistic).</summary>
    public string Quantizer { get; init; } = "rtn";

    public GptqOptions Gptq { get; init; } = new();

    public int GroupSize { get; init; } = 128;

    public int Rank { get; init; } = 64;

    public double Shrinkage { get; init; } = 0.05;

    /// <summary>
    /// fp: every layer is calibrated on the full-precision model's activations (the reference). sequential: on the
    /// activations of the already quantised and corrected layers before it (GPTQ-style).
    /// </summary>
    public string CalibrationMode { get; init; } = "fp";

    public static readonly IReadOnlyList<string> CalibrationModes = ["fp", "sequential"];

    public ulong Seed { get; init; } = 42;

    /// <summary>Calibration token sequences (unused by rtn with the rtn quantiser).</summary>
    public IReadOnlyList<int[]> Calibration { get; init; } = [];

    /// <summary>SHA-256 of the calibration text, or "generated".</summary>
    public string CalibrationSource { get; init; } = "generated";

    /// <summary>Fraction of units whose correction the default mask restores (ranked by <see cref="MaskMetric"/>).</summary>
    public double RestoreFraction { get; init; } = 1.0;

    /// <summary>Importance metrics whose scores the file stores (see <see cref="ImportanceMetrics.Names"/>).</summary>
    public IReadOnlyList<string> Metrics { get; init; } = ImportanceMetrics.Names;

    public string MaskMetric { get; init; } = "gsvd";

    public string ConverterName { get; init; } = "glowq";

    public static readonly IReadOnlyList<string> Quantizers = ["rtn", "gptq"];

    /// <summary>Whether this conversion needs calibration activations (any correction, or GPTQ).</summary>
    public bool NeedsCalibration => Calibrates(Method, Quantizer);

    /// <summary>Whether a conversion by <paramref name="method"/> on <paramref name="quantizer"/> needs calibration activations.</summary>
    public static bool Calibrates(string method, string quantizer) => method != "rtn" || quantizer == "gptq";
}

/// <summary>The tokenizer to embed: the original file's bytes and its type (llama2c, sentencepiece, hf-json).</summary>
public sealed record EmbeddedTokenizer(byte[] File, string Type)
{
    /// <summary>tokenizer_config.json's bytes (hf-json: its bos/eos tokens complete the tokenizer).</summary>
    public byte[]? ConfigFile { get; init; }

    /// <summary>plain, llama2, llama3 or chatml (see <see cref="GlowQ.Tokenizers.ChatTemplates"/>).</summary>
    public string ChatFormat { get; init; } = GlowQ.Tokenizers.ChatTemplates.Plain;

    /// <summary>The model's original Jinja chat template, kept for reference.</summary>
    public string? ChatTemplate { get; init; }
}

/// <summary>What a conversion produced, per unit, in canonical unit order.</summary>
public sealed record ConversionReport(IReadOnlyList<GlqUnit> Units, IReadOnlyDictionary<string, float[]> Scores, byte[] Mask, long FileBytes);

/// <summary>
/// Turns a full-precision checkpoint into a .glq file by the GlowQ method: calibrate layer by layer, quantise every
/// projection to 4 bits, factorise each unit's whitened error, score the units, and stream tensors into the file
/// in production order. Only one layer's statistics, errors and factors are alive at a time.
/// </summary>
public static class ModelConverter
{
    private const string TokenizerTensor = "tokenizer.file";
    private const string TokenizerConfigTensor = "tokenizer.config";

    public static ConversionReport Convert(
        ICheckpoint checkpoint, EmbeddedTokenizer tokenizer, string outputPath, ConversionOptions o,
        IConversionProgress? progress = null, CancellationToken cancellation = default)
    {
        progress ??= SilentProgress.Instance;
        if (!GlqModel.Methods.Contains(o.Method))
        {
            throw new ArgumentException($"--method must be one of {string.Join(", ", GlqModel.Methods)}, got '{o.Method}'");
        }

        if (!ConversionOptions.Quantizers.Contains(o.Quantizer))
        {
            throw new ArgumentException($"--quantizer must be one of {string.Join(", ", ConversionOptions.Quantizers)}, got '{o.Quantizer}'");
        }

        if (!ConversionOptions.CalibrationModes.Contains(o.CalibrationMode))
        {
            throw new ArgumentException($"--calib-mode must be one of {string.Join(", ", ConversionOptions.CalibrationModes)}, got '{o.CalibrationMode}'");
        }

        if (o.NeedsCalibration && o.Calibration.Count == 0)
        {
            throw new ArgumentException($"method {o.Method} with quantizer {o.Quantizer} needs calibration sequences");
        }

        ModelConfig c = checkpoint.Config;
        IReadOnlyList<GlqUnit> units = GlqModel.CanonicalUnits(c, o.Method, o.Rank);
        NoticeClampedRanks(units, o.Rank, progress);
        string[] metrics = [.. o.Metrics];
        if (metrics.Length == 0 || metrics.Any(m => !ImportanceMetrics.Names.Contains(m)) || !metrics.Contains(o.MaskMetric))
        {
            throw new ArgumentException($"metrics must be among {string.Join(", ", ImportanceMetrics.Names)} and include the mask metric {o.MaskMetric}, got {string.Join(",", metrics)}");
        }

        var scores = metrics.ToDictionary(m => m, _ => new float[units.Count], StringComparer.Ordinal);
        byte[] mask = new byte[units.Count];
        GlqMetadata metadata = Metadata(c, o, units, scores, mask, tokenizer);

        using var writer = GlqWriter.Create(outputPath, metadata, Specs(c, o, units, tokenizer));
        writer.WriteTensor(TokenizerTensor, tokenizer.File);
        if (tokenizer.ConfigFile is not null)
        {
            writer.WriteTensor(TokenizerConfigTensor, tokenizer.ConfigFile);
        }

        float[] embedding = ReadFloats(checkpoint, LlamaTensorNames.Embedding, c.VocabSize, c.Dim);
        WriteHalf(writer, LlamaTensorNames.Embedding, embedding);
        WriteHalf(writer, LlamaTensorNames.FinalNorm, ReadFloats(checkpoint, LlamaTensorNames.FinalNorm, c.Dim));
        if (!c.TiedEmbeddings)
        {
            WriteHalf(writer, LlamaTensorNames.OutputHead, ReadFloats(checkpoint, LlamaTensorNames.OutputHead, c.VocabSize, c.Dim));
        }

        // Only the embedding table and one layer's weights are in memory at a time; calibration advances stored
        // activations through a single-layer model of the current layer.
        LayerwiseCalibration? calibration = !o.NeedsCalibration
            ? null
            : new LayerwiseCalibration(c, o.Calibration, WeightMatrix.FromSingle(c.VocabSize, c.Dim, embedding));
        embedding = [];
        progress.BeginStage("quantise layers", c.Layers);
        for (int l = 0; l < c.Layers; l++)
        {
            // Cancelling disposes the writer uncommitted, which deletes the temporary file: no partial output.
            cancellation.ThrowIfCancellationRequested();
            LayerWeights layer = LlamaWeights.LoadLayer(checkpoint, l, WeightStorage.F32);
            LayerStatistics? stats = null;
            bool sequential = calibration is not null && o.CalibrationMode == "sequential";
            if (calibration is not null)
            {
                using var layerModel = new LlamaModel(LlamaWeights.SingleLayer(c, layer), new InferenceOptions { ContextLength = calibration.LongestSequence });
                stats = sequential ? calibration.ObserveNextLayer(layerModel) : calibration.NextLayer(layerModel);
            }

            WriteHalf(writer, LlamaTensorNames.AttentionNorm(l), layer.AttentionNorm);
            WriteHalf(writer, LlamaTensorNames.FfnNorm(l), layer.FfnNorm);
            IReadOnlyList<GlqLinear> linears = GlqModel.LayerLinears(c, l);
            WeightMatrix[] matrices = [layer.Query, layer.Key, layer.Value, layer.Output, layer.Gate, layer.Up, layer.Down];
            var quantized = new Dictionary<string, (float[] W, float[] Q)>(StringComparer.Ordinal);
            var secondMoments = new Dictionary<ActivationSite, double[]>();
            for (int i = 0; i < linears.Count; i++)
            {
                QuantizedMatrix q;
                if (o.Quantizer == "gptq")
                {
                    ActivationSite site = Site(linears[i]);
                    if (!secondMoments.TryGetValue(site, out double[]? h))
                    {
                        // GPTQ weighs errors by the raw statistic; the shrinkage only regularises the whitening.
                        h = stats!.For(site).CovarianceArray(0);
                        secondMoments[site] = h;
                    }

                    q = GptqQuantizer.Quantize(matrices[i].F32!, linears[i].Rows, linears[i].Cols, o.GroupSize, h, o.Gptq);
                }
                else
                {
                    q = RtnQuantizer.Quantize(matrices[i].F32!, linears[i].Rows, linears[i].Cols, o.GroupSize);
                }

                writer.WriteTensor(linears[i].QWeight, q.Codes);
                writer.WriteTensor(linears[i].Scales, MemoryMarshal.AsBytes(q.Scales.AsSpan()));
                writer.WriteTensor(linears[i].Zeros, q.Zeros);
                if (linears[i].HasBias)
                {
                    writer.WriteTensor(linears[i].Bias, MemoryMarshal.AsBytes(matrices[i].Bias.AsSpan()));
                }

                var dequantized = new float[matrices[i].F32!.Length];
                q.Dequantize(dequantized);
                quantized[linears[i].Module] = (matrices[i].F32!, dequantized);
            }

            Dictionary<string, GlqLinear> byModule = linears.ToDictionary(x => x.Module, StringComparer.Ordinal);
            foreach (int unitIndex in GlqModel.UnitsOfLayer(units, l))
            {
                GlqUnit unit = units[unitIndex];
                GlqLinear[] members = [.. unit.Members.Select(m => byModule[m])];
                float[][] errors = [.. members.Select(m => Subtract(quantized[m.Module].W, quantized[m.Module].Q))];
                double[] whitening = stats!.For(Site(members[0])).WhiteningArray(o.Shrinkage);
                UnitFactors f = SharedLowRankFactorization.Factorize(
                    errors, [.. members.Select(m => m.Rows)], members[0].Cols, whitening,
                    new SharedLowRankFactorization.Options(unit.Rank, o.Seed + (ulong)unitIndex));
                WriteHalf(writer, unit.BName, f.B);
                for (int i = 0; i < members.Length; i++)
                {
                    WriteHalf(writer, unit.AName(members[i].Module), f.A[i]);
                }

                IReadOnlyDictionary<string, double> unitScores = ImportanceMetrics.Compute(
                    [.. members.Select(m => quantized[m.Module].W)], [.. members.Select(m => quantized[m.Module].Q)], f, l, c.Layers);
                foreach (string metric in metrics)
                {
                    scores[metric][unitIndex] = (float)unitScores[metric];
                }

                if (sequential)
                {
                    // A and B rounded to fp16 first, as the file stores them.
                    float[] storedB = RoundToHalf(f.B);
                    for (int i = 0; i < members.Length; i++)
                    {
                        SimulatedQuantizedModel.AddLowRank(quantized[members[i].Module].Q, RoundToHalf(f.A[i]), storedB, unit.Rank);
                    }
                }
            }

            if (sequential)
            {
                // The layer as the runtime will run it: dequantised int4 plus fp16 corrections, fp16 norms.
                WeightMatrix Effective(int i) => WeightMatrix.FromSingle(linears[i].Rows, linears[i].Cols, quantized[linears[i].Module].Q, matrices[i].Bias);
                var asRun = new LayerWeights(
                    RoundToHalf(layer.AttentionNorm), Effective(0), Effective(1), Effective(2), Effective(3),
                    RoundToHalf(layer.FfnNorm), Effective(4), Effective(5), Effective(6));
                using var quantizedLayer = new LlamaModel(LlamaWeights.SingleLayer(c, asRun), new InferenceOptions { ContextLength = calibration!.LongestSequence });
                calibration.AdvanceThrough(quantizedLayer);
            }

            // A layer's weights, errors and factors are large-object-heap garbage now. Collecting here keeps the peak at
            // one layer instead of however many layers the GC's allocation budget lets pile up.
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            progress.Advance(l + 1, $"layer {l + 1}/{c.Layers}");
        }

        progress.BeginStage("write", 1);

        if (units.Count > 0)
        {
            ImportanceMetrics.TopFraction(scores[o.MaskMetric], o.RestoreFraction).CopyTo(mask, 0);
            writer.ReplaceMetadata(Metadata(c, o, units, scores, mask, tokenizer));
        }

        writer.Commit();
        progress.Advance(1);
        return new ConversionReport(units, scores, mask, new FileInfo(outputPath).Length);
    }

    private static float[] RoundToHalf(float[] values)
    {
        var half = new Half[values.Length];
        var back = new float[values.Length];
        System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(values, half);
        System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(half, back);
        return back;
    }

    private static void NoticeClampedRanks(IReadOnlyList<GlqUnit> units, int requested, IConversionProgress progress)
    {
        GlqUnit[] clamped = [.. units.Where(u => u.Rank < requested)];
        if (clamped.Length > 0)
        {
            progress.Notice($"rank {requested} exceeds what {clamped.Length} of {units.Count} units allow; "
                + $"clamped to min(input size, stacked output rows), e.g. {clamped[0].Name} → {clamped[0].Rank}");
        }
    }

    private static float[] ReadFloats(ICheckpoint checkpoint, string name, params long[] shape)
    {
        TensorView t = checkpoint.RequireTensor(name, shape);
        var values = new float[t.ElementCount];
        t.CopyTo(values);
        return values;
    }

    private static ActivationSite Site(GlqLinear linear) => linear.Module switch
    {
        var m when m.EndsWith("o_proj", StringComparison.Ordinal) => ActivationSite.AttentionOutput,
        var m when m.EndsWith("down_proj", StringComparison.Ordinal) => ActivationSite.DownInput,
        var m when m.Contains("self_attn", StringComparison.Ordinal) => ActivationSite.AttentionInput,
        _ => ActivationSite.FfnInput,
    };

    private static float[] Subtract(float[] a, float[] b)
    {
        var e = new float[a.Length];
        System.Numerics.Tensors.TensorPrimitives.Subtract(a, b, e);
        return e;
    }

    private static void WriteHalf(GlqWriter writer, string name, ReadOnlySpan<float> values)
    {
        var half = new Half[values.Length];
        System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(values, half);
        writer.WriteTensor(name, MemoryMarshal.AsBytes(half.AsSpan()));
    }

    /// <summary>Tensor specs in the order <see cref="Convert"/> produces them.</summary>
    private static List<GlqTensorSpec> Specs(ModelConfig c, ConversionOptions o, IReadOnlyList<GlqUnit> units, EmbeddedTokenizer tokenizer)
    {
        var specs = new List<GlqTensorSpec> { new(TokenizerTensor, GlqDType.U8, tokenizer.File.Length) };
        if (tokenizer.ConfigFile is not null)
        {
            specs.Add(new(TokenizerConfigTensor, GlqDType.U8, tokenizer.ConfigFile.Length));
        }

        specs.Add(new(LlamaTensorNames.Embedding, GlqDType.F16, c.VocabSize, c.Dim));
        specs.Add(new(LlamaTensorNames.FinalNorm, GlqDType.F16, c.Dim));
        if (!c.TiedEmbeddings)
        {
            specs.Add(new(LlamaTensorNames.OutputHead, GlqDType.F16, c.VocabSize, c.Dim));
        }

        for (int l = 0; l < c.Layers; l++)
        {
            specs.Add(new(LlamaTensorNames.AttentionNorm(l), GlqDType.F16, c.Dim));
            specs.Add(new(LlamaTensorNames.FfnNorm(l), GlqDType.F16, c.Dim));
            IReadOnlyList<GlqLinear> linears = GlqModel.LayerLinears(c, l);
            foreach (GlqLinear linear in linears)
            {
                int groups = linear.Groups(o.GroupSize);
                specs.Add(new(linear.QWeight, GlqDType.U4, linear.Rows, groups * o.GroupSize));
                specs.Add(new(linear.Scales, GlqDType.F16, linear.Rows, groups));
                specs.Add(new(linear.Zeros, GlqDType.U4, linear.Rows, groups));
                if (linear.HasBias)
                {
                    specs.Add(new(linear.Bias, GlqDType.F32, linear.Rows));
                }
            }

            Dictionary<string, GlqLinear> byModule = linears.ToDictionary(x => x.Module, StringComparer.Ordinal);
            foreach (int unitIndex in GlqModel.UnitsOfLayer(units, l))
            {
                GlqUnit unit = units[unitIndex];
                specs.Add(new(unit.BName, GlqDType.F16, unit.Rank, byModule[unit.Members[0]].Cols));
                foreach (string member in unit.Members)
                {
                    specs.Add(new(unit.AName(member), GlqDType.F16, byModule[member].Rows, unit.Rank));
                }
            }
        }

        return specs;
    }

    private static GlqMetadata Metadata(ModelConfig c, ConversionOptions o, IReadOnlyList<GlqUnit> units,
        IReadOnlyDictionary<string, float[]> scores, byte[] mask, EmbeddedTokenizer tokenizer)
    {
        var m = new GlqMetadata();
        GlqModel.WriteConfig(m, c);
        m.Set("general.converter", GlqValue.String(o.ConverterName))
            .Set("quant.bits", GlqValue.U8(4))
            .Set("quant.group_size", GlqValue.U32((uint)o.GroupSize))
            .Set("quant.scheme", GlqValue.String("asymmetric"))
            .Set("quant.scale_dtype", GlqValue.String("f16"))
            .Set("quant.base", GlqValue.String(o.Quantizer))
            .Set("quant.head", GlqValue.String("f16"))
            .Set("glowq.method", GlqValue.String(o.Method))
            .Set("glowq.rank", GlqValue.U32((uint)o.Rank))
            .Set("glowq.units", GlqValue.Strings(units.Select(u => u.Name)))
            .Set("glowq.mask.default", GlqValue.Bytes(mask))
            .Set("tokenizer.type", GlqValue.String(tokenizer.Type))
            .Set("tokenizer.file", GlqValue.String(TokenizerTensor))
            .Set("chat.format", GlqValue.String(tokenizer.ChatFormat));
        if (tokenizer.ConfigFile is not null)
        {
            m.Set("tokenizer.config_file", GlqValue.String(TokenizerConfigTensor));
        }

        if (tokenizer.ChatTemplate is not null)
        {
            m.Set("chat.template", GlqValue.String(tokenizer.ChatTemplate));
        }

        if (o.Quantizer == "gptq")
        {
            m.Set("quant.gptq.damping", GlqValue.F32((float)o.Gptq.Damping))
                .Set("quant.gptq.act_order", GlqValue.Bool(o.Gptq.ActOrder));
        }

        if (units.Count > 0)
        {
            m.Set("glowq.metrics", GlqValue.Strings(scores.Keys))
                .Set("glowq.mask.metric", GlqValue.String(o.MaskMetric))
                .Set("glowq.mask.fraction", GlqValue.F32((float)o.RestoreFraction));
        }

        if (o.NeedsCalibration)
        {
            m.Set("glowq.calib.source.sha256", GlqValue.String(o.CalibrationSource))
                .Set("glowq.calib.samples", GlqValue.U32((uint)o.Calibration.Count))
                .Set("glowq.calib.seq_len", GlqValue.U32((uint)o.Calibration.Max(s => s.Length)))
                .Set("glowq.calib.seed", GlqValue.U64(o.Seed))
                .Set("glowq.calib.shrinkage", GlqValue.F32((float)o.Shrinkage))
                .Set("glowq.calib.mode", GlqValue.String(o.CalibrationMode));
        }

        if (units.Count > 0)
        {
            foreach ((string metric, float[] values) in scores)
            {
                m.Set($"glowq.score.{metric}", GlqValue.Floats(values));
            }

            foreach (GlqUnit unit in units)
            {
                m.Set($"glowq.unit.{unit.Name}.members", GlqValue.Strings(unit.Members))
                    .Set($"glowq.unit.{unit.Name}.rank", GlqValue.U32((uint)unit.Rank));
            }
        }

        return m;
    }
}
