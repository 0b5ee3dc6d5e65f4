using System.Globalization;
using System.Text;
using System.Text.Json;
using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.Format.Glq;

namespace GlowQ.Converter.Evaluation;

/// <summary>
/// One row of the accuracy table. <paramref name="Kind"/>: fp, rtn, gptq, layerwise, glowq, glowq-gptq or glowq-s
/// (GlowQ with only the top <paramref name="Fraction"/> of units restored, ranked by <paramref name="Metric"/>).
/// </summary>
public sealed record EvaluationVariant(string Name, string Kind, string? Metric = null, double? Fraction = null);

/// <param name="BitsPerWeight">Bits per projection weight: int4 codes, fp16 scales, 4-bit zero points and the
/// restored correction factors, over the number of q/k/v/o/gate/up/down weights (the source dtype's bits for fp).</param>
/// <param name="FactorBytes">Bytes of the restored units' A and B factors (fp16).</param>
/// <param name="BxProductsPerToken">B·x products computed per token: one per restored unit.</param>
public sealed record VariantResult(
    EvaluationVariant Variant, double Perplexity, double BitsPerWeight, long FactorBytes, int BxProductsPerToken, int RestoredUnits, int Units);

/// <summary>
/// The accuracy table users come for: a model converted once per base quantiser and method, every variant scored on
/// the same windows, GlowQ-S evaluated at several restore fractions per importance metric from ONE GlowQ file (masks
/// are chosen from its stored scores, as the runtime does at load time).
/// </summary>
public static class AccuracyEvaluation
{
    public static readonly IReadOnlyList<string> Kinds = ["fp", "rtn", "gptq", "layerwise", "glowq", "glowq-gptq", "glowq-s"];

    /// <summary>
    /// Parses "fp,rtn,gptq,layerwise,glowq,glowq-s:0.25,0.5,0.75": plain names, and glowq-s followed by its
    /// fractions (numbers after "glowq-s:" belong to it); each fraction becomes one variant per metric.
    /// </summary>
    public static List<EvaluationVariant> ParseVariants(string spec, IReadOnlyList<string> metrics)
    {
        var variants = new List<EvaluationVariant>();
        bool inFractions = false;
        foreach (string raw in spec.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            string token = raw;
            if (token.StartsWith("glowq-s:", StringComparison.Ordinal))
            {
                inFractions = true;
                token = token["glowq-s:".Length..];
            }
            else if (!IsNumber(token))
            {
                inFractions = false;
            }

            if (inFractions)
            {
                if (!double.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out double f) || !(f >= 0 && f <= 1))
                {
                    throw new ArgumentException($"--variants: glowq-s fraction must be a number in [0, 1], got '{token}'");
                }

                foreach (string metric in metrics)
                {
                    variants.Add(new EvaluationVariant(string.Create(CultureInfo.InvariantCulture, $"glowq-s {metric} {f:0.###}"), "glowq-s", metric, f));
                }
            }
            else if (Kinds.Contains(token) && token != "glowq-s")
            {
                variants.Add(new EvaluationVariant(token, token));
            }
            else
            {
                throw new ArgumentException($"--variants: unknown variant '{raw}' (expected {string.Join(", ", Kinds.Where(k => k != "glowq-s"))}, or glowq-s:F1,F2,…)");
            }
        }

        if (variants.Count == 0)
        {
            throw new ArgumentException("--variants: no variants given");
        }

        return [.. variants.DistinctBy(v => v.Name)];
    }

    private static bool IsNumber(string token) => double.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out _);

    /// <summary>Whether the variant's conversion needs calibration activations.</summary>
    public static bool NeedsCalibration(EvaluationVariant variant) =>
        ConversionOf(variant.Kind) is (string method, string quantizer) && ConversionOptions.Calibrates(method, quantizer);

    /// <summary>The conversion a variant's kind needs: (method, base quantiser), or null for fp.</summary>
    private static (string Method, string Quantizer)? ConversionOf(string kind) => kind switch
    {
        "fp" => null,
        "rtn" => ("rtn", "rtn"),
        "gptq" => ("rtn", "gptq"),
        "layerwise" => ("layerwise", "rtn"),
        "glowq" or "glowq-s" => ("glowq", "rtn"),
        "glowq-gptq" => ("glowq", "gptq"),
        _ => throw new ArgumentException($"unknown variant kind '{kind}'"),
    };

    /// <summary>
    /// Converts what the variants need (into <paramref name="workDirectory"/>, deleted files afterwards), then scores
    /// every variant on <paramref name="windows"/>. <paramref name="baseOptions"/> supplies group size, rank,
    /// calibration and seed; its method and quantiser are overridden per conversion.
    /// </summary>
    public static List<VariantResult> Run(
        ICheckpoint checkpoint, EmbeddedTokenizer tokenizer, IReadOnlyList<int[]> windows, int contextLength,
        IReadOnlyList<EvaluationVariant> variants, ConversionOptions baseOptions, string workDirectory,
        IConversionProgress? progress = null, CancellationToken cancellation = default)
    {
        progress ??= SilentProgress.Instance;
        var files = new Dictionary<(string, string), string>();
        try
        {
            foreach ((string method, string quantizer) in variants.Select(v => ConversionOf(v.Kind)).OfType<(string, string)>().Distinct())
            {
                cancellation.ThrowIfCancellationRequested();
                string path = Path.Combine(workDirectory, $"glowq-eval-{method}-{quantizer}-{Environment.ProcessId}.glq");
                progress.Notice($"converting: method {method}, quantizer {quantizer}");
                ModelConverter.Convert(checkpoint, tokenizer, path, baseOptions with
                {
                    Method = method,
                    Quantizer = quantizer,
                    RestoreFraction = 1,
                    MaskMetric = baseOptions.Metrics[0],
                }, progress, cancellation);
                files[(method, quantizer)] = path;
            }

            var results = new List<VariantResult>();
            progress.BeginStage("evaluate variants", variants.Count);
            foreach (EvaluationVariant variant in variants)
            {
                cancellation.ThrowIfCancellationRequested();
                results.Add(Score(checkpoint, variant, ConversionOf(variant.Kind) is { } key ? files[key] : null, windows, contextLength));
                progress.Advance(results.Count, variant.Name);
            }

            return results;
        }
        finally
        {
            foreach (string path in files.Values)
            {
                File.Delete(path);
            }
        }
    }

    private static VariantResult Score(ICheckpoint checkpoint, EvaluationVariant variant, string? path, IReadOnlyList<int[]> windows, int contextLength)
    {
        var options = new InferenceOptions { ContextLength = contextLength };
        if (path is null)
        {
            using var fp = new LlamaModel(LlamaWeights.Load(checkpoint), options);
            double bits = SourceBitsPerWeight(checkpoint);
            return new VariantResult(variant, Perplexity.Evaluate(fp, windows).Perplexity, bits, 0, 0, 0, 0);
        }

        using GlqFile file = GlqFile.Open(path);
        GlqModel model = GlqModel.Read(file);
        byte[] mask = variant.Kind == "glowq-s"
            ? ImportanceMetrics.TopFraction(model.Scores[variant.Metric!], variant.Fraction!.Value)
            : [.. Enumerable.Repeat((byte)1, model.Units.Count)];
        using var quantized = new LlamaModel(SimulatedQuantizedModel.Load(file, mask), options);
        double ppl = Perplexity.Evaluate(quantized, windows).Perplexity;
        (long baseBytes, long weights) = BaseStorage(file, model);
        long factorBytes = model.CorrectionBytes(file, mask);
        int restored = mask.Count(b => b == 1);
        return new VariantResult(variant, ppl, (baseBytes + factorBytes) * 8.0 / weights, factorBytes, restored, restored, model.Units.Count);
    }

    /// <summary>Bytes of int4 codes, scales and zero points of every projection, and the number of weights they hold.</summary>
    private static (long Bytes, long Weights) BaseStorage(GlqFile file, GlqModel model)
    {
        long bytes = 0, weights = 0;
        for (int l = 0; l < model.Config.Layers; l++)
        {
            foreach (GlqLinear linear in GlqModel.LayerLinears(model.Config, l))
            {
                bytes += (long)(file.RequireTensor(linear.QWeight).Length + file.RequireTensor(linear.Scales).Length + file.RequireTensor(linear.Zeros).Length);
                weights += (long)linear.Rows * linear.Cols;
            }
        }

        return (bytes, weights);
    }

    private static double SourceBitsPerWeight(ICheckpoint checkpoint)
    {
        TensorView q = checkpoint.RequireTensor(LlamaTensorNames.Query(0), checkpoint.Config.QDim, checkpoint.Config.Dim);
        return q.ByteLength * 8.0 / q.ElementCount;
    }

    /// <summary>The table in markdown, one row per variant, with the protocol in a caption line.</summary>
    public static string Markdown(IReadOnlyList<VariantResult> results, string protocol)
    {
        var s = new StringBuilder();
        s.AppendLine(CultureInfo.InvariantCulture, $"Perplexity ({protocol}).").AppendLine();
        s.AppendLine("| variant | perplexity | Δ vs fp | bits/weight | factor bytes | B·x per token | restored units |");
        s.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        double? fp = results.FirstOrDefault(r => r.Variant.Kind == "fp")?.Perplexity;
        foreach (VariantResult r in results)
        {
            string delta = fp is double f && r.Variant.Kind != "fp" ? string.Create(CultureInfo.InvariantCulture, $"{(r.Perplexity - f) / f * 100:+0.00;-0.00} %") : "";
            s.AppendLine(CultureInfo.InvariantCulture,
                $"| {r.Variant.Name} | {r.Perplexity:F4} | {delta} | {r.BitsPerWeight:F2} | {r.FactorBytes:N0} | {r.BxProductsPerToken} | {(r.Units > 0 ? $"{r.RestoredUnits}/{r.Units}" : "")} |");
        }

        return s.ToString();
    }

    public static string Csv(IReadOnlyList<VariantResult> results)
    {
        var s = new StringBuilder("variant,kind,metric,fraction,ppl,bits_per_weight,factor_bytes,bx_products_per_token,restored_units,units\n");
        foreach (VariantResult r in results)
        {
            s.AppendLine(CultureInfo.InvariantCulture,
                $"{r.Variant.Name},{r.Variant.Kind},{r.Variant.Metric},{r.Variant.Fraction},{r.Perplexity:R},{r.BitsPerWeight:R},{r.FactorBytes},{r.BxProductsPerToken},{r.RestoredUnits},{r.Units}");
        }

        return s.ToString();
    }

    /// <summary>One JSON object: {"protocol":…, "variants":[{"name","ppl","bits_per_weight","factor_bytes","bx_products_per_token",…}]}.</summary>
    public static string Json(IReadOnlyList<VariantResult> results, string protocol)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("protocol", protocol);
            w.WriteStartArray("variants");
            foreach (VariantResult r in results)
            {
                w.WriteStartObject();
                w.WriteString("name", r.Variant.Name);
                w.WriteString("kind", r.Variant.Kind);
                if (r.Variant.Metric is not null)
                {
                    w.WriteString("metric", r.Variant.Metric);
                    w.WriteNumber("fraction", r.Variant.Fraction!.Value);
                }

                w.WriteNumber("ppl", r.Perplexity);
                w.WriteNumber("bits_per_weight", r.BitsPerWeight);
                w.WriteNumber("factor_bytes", r.FactorBytes);
                w.WriteNumber("bx_products_per_token", r.BxProductsPerToken);
                w.WriteNumber("restored_units", r.RestoredUnits);
                w.WriteNumber("units", r.Units);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>
    /// Perplexity against the fraction of units restored, one line per metric: each line runs from the plain int4
    /// model (0, when rtn was evaluated) through its glowq-s points to full GlowQ (1); fp, rtn, gptq and layerwise are
    /// horizontal references.
    /// </summary>
    public static LineChart Chart(IReadOnlyList<VariantResult> results, string title)
    {
        VariantResult? none = results.FirstOrDefault(r => r.Variant.Kind == "rtn");
        VariantResult? all = results.FirstOrDefault(r => r.Variant.Kind == "glowq");
        var series = new List<ChartSeries>();
        foreach (IGrouping<string?, VariantResult> metric in results.Where(r => r.Variant.Kind == "glowq-s").GroupBy(r => r.Variant.Metric))
        {
            var points = metric.Select(r => (r.Variant.Fraction!.Value, r.Perplexity)).ToList();
            if (none is not null && !points.Any(p => p.Item1 == 0))
            {
                points.Add((0, none.Perplexity));
            }

            if (all is not null && !points.Any(p => p.Item1 == 1))
            {
                points.Add((1, all.Perplexity));
            }

            series.Add(new ChartSeries(metric.Key!, [.. points.OrderBy(p => p.Item1)]));
        }

        List<ReferenceLine> references = [.. results
            .Where(r => r.Variant.Kind is "fp" or "rtn" or "gptq" or "layerwise" or "glowq" or "glowq-gptq")
            .Select(r => new ReferenceLine(r.Variant.Name, r.Perplexity))];
        return new LineChart(title, "fraction of units restored (GlowQ-S)", "perplexity", series, references);
    }
}
