using System.CommandLine;
using System.Security.Cryptography;
using System.Text;
using GlowQ.Converter;
using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.Tokenizers;

namespace GlowQ.Cli;

/// <summary>The quantisation, correction and calibration options shared by <c>glowq convert</c> and <c>glowq eval</c>.</summary>
internal sealed class ConversionCliOptions
{
    public Option<string> Quantizer { get; } = new("--quantizer")
    {
        Description = "Base 4-bit quantiser: rtn (round to nearest) or gptq (error feedback on the calibration statistic, damping 1 %).",
        DefaultValueFactory = _ => "rtn",
    };

    public Option<bool> ActOrder { get; } = new("--act-order")
    {
        Description = "GPTQ: quantise columns by decreasing input energy (group grids fixed from the original weights).",
    };

    public Option<int> GroupSize { get; } = new("--group-size")
    {
        Description = "Input columns per quantisation group, a multiple of 8 (inputs that do not divide are padded).",
        DefaultValueFactory = _ => 128,
    };

    public Option<int> Rank { get; } = new("--rank")
    {
        Description = "Rank of the correction (clamped to what each unit's shape allows, with a notice).",
        DefaultValueFactory = _ => 64,
    };

    public Option<string?> Calib { get; } = new("--calib") { Description = "Calibration text file (in-domain; never the evaluation text)." };

    public Option<int?> CalibGenerate { get; } = new("--calib-generate") { Description = "Data-free calibration: sample N sequences from the full-precision model (seeded)." };

    public Option<int> CalibSamples { get; } = new("--calib-samples") { Description = "Calibration sequences taken from --calib.", DefaultValueFactory = _ => 64 };

    public Option<int> CalibSeqLen { get; } = new("--calib-seq-len")
    {
        Description = "Tokens per calibration sequence (default: min(2048, the model's maximum)).",
        DefaultValueFactory = _ => 0,
    };

    public Option<string> CalibMode { get; } = new("--calib-mode")
    {
        Description = "fp: calibrate every layer on the full-precision model's activations; sequential: on the activations of the already quantised layers before it.",
        DefaultValueFactory = _ => "fp",
    };

    public Option<string> Metrics { get; } = new("--metrics")
    {
        Description = $"Importance scores to compute and store, comma-separated: {string.Join(",", ImportanceMetrics.Names)}.",
        DefaultValueFactory = _ => string.Join(",", ImportanceMetrics.Names),
    };

    public Option<ulong> Seed { get; } = new("--seed") { Description = "Seed of calibration sampling and the randomised SVD.", DefaultValueFactory = _ => 42 };

    public ConversionCliOptions()
    {
        Quantizer.AcceptOnlyFromAmong([.. ConversionOptions.Quantizers]);
        CalibMode.AcceptOnlyFromAmong([.. ConversionOptions.CalibrationModes]);
    }

    public void AddTo(Command command)
    {
        foreach (Option o in new Option[] { Quantizer, ActOrder, GroupSize, Rank, Calib, CalibGenerate, CalibSamples, CalibSeqLen, CalibMode, Metrics, Seed })
        {
            command.Options.Add(o);
        }
    }

    /// <summary>Checks what can be checked before opening the model; throws <see cref="CliUsageException"/>.</summary>
    public void Validate(ParseResult parse, bool needsCalibration, string whatNeedsIt)
    {
        int g = parse.GetValue(GroupSize), r = parse.GetValue(Rank);
        if (g is < 8 or > 65536 || g % 8 != 0)
        {
            throw new CliUsageException($"--group-size must be a multiple of 8 from 8 to 65536, got {g}");
        }

        if (r < 1)
        {
            throw new CliUsageException($"--rank must be ≥ 1, got {r}");
        }

        if (parse.GetValue(CalibSamples) < 1)
        {
            throw new CliUsageException($"--calib-samples must be ≥ 1, got {parse.GetValue(CalibSamples)}");
        }

        string? calibPath = parse.GetValue(Calib);
        int? generate = parse.GetValue(CalibGenerate);
        if (needsCalibration && calibPath is null && generate is null)
        {
            throw new CliUsageException($"{whatNeedsIt} needs calibration: --calib FILE or --calib-generate N");
        }

        if (calibPath is not null && generate is not null)
        {
            throw new CliUsageException("give either --calib or --calib-generate, not both");
        }

        if (generate is < 1)
        {
            throw new CliUsageException($"--calib-generate must be ≥ 1, got {generate}");
        }

        if (calibPath is not null && !File.Exists(calibPath))
        {
            throw new FileNotFoundException($"{calibPath}: calibration text not found", calibPath);
        }
    }

    public IReadOnlyList<string> ParseMetrics(ParseResult parse)
    {
        string value = parse.GetValue(Metrics)!;
        List<string> names = [.. value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Distinct(StringComparer.Ordinal)];
        string? unknown = names.FirstOrDefault(n => !ImportanceMetrics.Names.Contains(n));
        if (unknown is not null || names.Count == 0)
        {
            throw new CliUsageException($"--metrics takes a comma-separated list of {string.Join(", ", ImportanceMetrics.Names)}, got '{value}'");
        }

        return names;
    }

    /// <summary>
    /// The calibration sequences (from text, or sampled from the full-precision model) and their source for the
    /// metadata: the text's SHA-256, or "generated". Empty when none was asked for.
    /// </summary>
    public (List<int[]> Sequences, string Source) Calibration(
        ParseResult parse, ICheckpoint checkpoint, ITextTokenizer tokenizer, IConversionProgress progress, CancellationToken cancellation)
    {
        int max = checkpoint.Config.MaxSequenceLength;
        int seqLen = parse.GetValue(CalibSeqLen) is > 0 and var l ? l : Math.Min(2048, max);
        if (seqLen > max || seqLen < 2)
        {
            throw new CliUsageException($"--calib-seq-len must be 2..{max} for this model, got {seqLen}");
        }

        if (parse.GetValue(Calib) is string path)
        {
            (string content, byte[] text) = Utf8TextFile.Read(path, "calibration text");

            List<int[]> sequences = CalibrationData.FromText(tokenizer, content, parse.GetValue(CalibSamples), seqLen);
            if (sequences.Count == 0)
            {
                throw new CliUsageException($"{path}: too little text for one calibration sequence of {seqLen} tokens");
            }

            return (sequences, Convert.ToHexStringLower(SHA256.HashData(text)));
        }

        if (parse.GetValue(CalibGenerate) is int n)
        {
            progress.Notice($"sampling {n} calibration sequences of {seqLen} tokens from the full-precision model");
            using var fp = new LlamaModel(LlamaWeights.Load(checkpoint), new InferenceOptions { ContextLength = seqLen });
            return (CalibrationData.Generate(fp, checkpoint.Config.BosTokenId ?? 1, n, seqLen, parse.GetValue(Seed), progress, cancellation), "generated");
        }

        return ([], "generated");
    }

    /// <summary>Conversion options from the parsed command line (method, mask and calibration set by the caller).</summary>
    public ConversionOptions Options(ParseResult parse, IReadOnlyList<string> metrics) => new()
    {
        Quantizer = parse.GetValue(Quantizer)!,
        Gptq = new GptqOptions(ActOrder: parse.GetValue(ActOrder)),
        GroupSize = parse.GetValue(GroupSize),
        Rank = parse.GetValue(Rank),
        CalibrationMode = parse.GetValue(CalibMode)!,
        Seed = parse.GetValue(Seed),
        Metrics = metrics,
        MaskMetric = metrics[0],
        ConverterName = "glowq " + typeof(ConversionCliOptions).Assembly.GetName().Version,
    };
}
