using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using GlowQ.Converter;
using GlowQ.Engine;
using GlowQ.Format;

namespace GlowQ.Cli;

/// <summary><c>glowq convert</c>: a full-precision checkpoint to a .glq file by GlowQ, per-module (layerwise) or plain RTN.</summary>
internal static class ConvertCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var model = new Option<string>("--model", "-m") { Description = "Source checkpoint: an HF directory or a llama2.c .bin file.", Required = true };
        var output = new Option<string>("--output", "-o") { Description = "The .glq file to write (written atomically).", Required = true };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Tokenizer file to embed when it is not beside the model." };
        var method = new Option<string>("--method") { Description = "glowq (shared B per input-sharing unit), layerwise (one A/B pair per module) or rtn (no correction).", DefaultValueFactory = _ => "glowq" };
        method.AcceptOnlyFromAmong("glowq", "layerwise", "rtn");
        var groupSize = new Option<int>("--group-size") { Description = "Input columns per quantisation group (rows that do not divide pad).", DefaultValueFactory = _ => 128 };
        var rank = new Option<int>("--rank") { Description = "Rank of the correction (clamped to what each unit's shape allows).", DefaultValueFactory = _ => 64 };
        var calib = new Option<string?>("--calib") { Description = "Calibration text file (in-domain; never the evaluation text)." };
        var calibGenerate = new Option<int?>("--calib-generate") { Description = "Data-free calibration: sample N sequences from the full-precision model." };
        var calibSamples = new Option<int>("--calib-samples") { Description = "Calibration sequences taken from --calib.", DefaultValueFactory = _ => 64 };
        var calibSeqLen = new Option<int>("--calib-seq-len") { Description = "Tokens per calibration sequence (default: min(2048, the model's maximum)).", DefaultValueFactory = _ => 0 };
        var restore = new Option<string>("--restore") { Description = "Default restoration mask: 'all', 'none' or a fraction of units (by --metric).", DefaultValueFactory = _ => "all" };
        var metric = new Option<string>("--metric") { Description = $"Metric that ranks units for --restore: {string.Join(", ", ImportanceMetrics.Names)}.", DefaultValueFactory = _ => "gsvd" };
        metric.AcceptOnlyFromAmong([.. ImportanceMetrics.Names]);
        var seed = new Option<ulong>("--seed") { Description = "Seed of calibration sampling and the randomised SVD.", DefaultValueFactory = _ => 42 };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Print nothing on stderr but errors." };

        var command = new Command("convert", "Quantise a full-precision checkpoint to 4 bits with GlowQ correction and write one .glq file.");
        foreach (Option o in new Option[] { model, output, tokenizer, method, groupSize, rank, calib, calibGenerate, calibSamples, calibSeqLen, restore, metric, seed, quiet })
        {
            command.Options.Add(o);
        }

        command.SetAction(parse =>
        {
            string source = parse.GetValue(model)!;
            string target = parse.GetValue(output)!;
            string chosen = parse.GetValue(method)!;
            bool silent = parse.GetValue(quiet);
            int g = parse.GetValue(groupSize), r = parse.GetValue(rank), samples = parse.GetValue(calibSamples);
            if (g is < 8 or > 65536 || g % 8 != 0)
            {
                throw new CliUsageException($"--group-size must be a multiple of 8 from 8 to 65536, got {g}");
            }

            if (r < 1)
            {
                throw new CliUsageException($"--rank must be ≥ 1, got {r}");
            }

            double fraction = ParseRestore(parse.GetValue(restore)!);
            string? calibPath = parse.GetValue(calib);
            int? generate = parse.GetValue(calibGenerate);
            if (chosen != "rtn" && calibPath is null && generate is null)
            {
                throw new CliUsageException($"--method {chosen} needs calibration: --calib FILE or --calib-generate N");
            }

            if (calibPath is not null && generate is not null)
            {
                throw new CliUsageException("give either --calib or --calib-generate, not both");
            }

            using ICheckpoint checkpoint = CheckpointExtensions.Open(source);
            (string tokenizerPath, GlowQ.Tokenizers.ITextTokenizer textTokenizer) = ModelLoader.ResolveTokenizer(checkpoint.SourcePath, parse.GetValue(tokenizer));
            EmbeddedTokenizer embedded = EmbeddedTokenizers.FromLoaded(tokenizerPath, textTokenizer);
            int seqLen = parse.GetValue(calibSeqLen) is > 0 and var l ? l : Math.Min(2048, checkpoint.Config.MaxSequenceLength);
            if (seqLen > checkpoint.Config.MaxSequenceLength || seqLen < 2)
            {
                throw new CliUsageException($"--calib-seq-len must be 2..{checkpoint.Config.MaxSequenceLength}, got {seqLen}");
            }

            var log = new Progress(stderr, silent);
            List<int[]> calibration = [];
            string calibrationSource = "generated";
            if (calibPath is not null)
            {
                if (!File.Exists(calibPath))
                {
                    throw new FileNotFoundException($"{calibPath}: calibration text not found", calibPath);
                }

                byte[] text = File.ReadAllBytes(calibPath);
                calibrationSource = Convert.ToHexStringLower(SHA256.HashData(text));
                calibration = CalibrationData.FromText(textTokenizer, Encoding.UTF8.GetString(text), samples, seqLen);
                if (calibration.Count == 0)
                {
                    throw new CliUsageException($"{calibPath}: too little text for one calibration sequence of {seqLen} tokens");
                }
            }
            else if (generate is int n && chosen != "rtn")
            {
                if (n < 1)
                {
                    throw new CliUsageException($"--calib-generate must be ≥ 1, got {n}");
                }

                log.Report($"sampling {n} calibration sequences of {seqLen} tokens from the full-precision model");
                using var fp = new LlamaModel(LlamaWeights.Load(checkpoint), new InferenceOptions { ContextLength = seqLen });
                calibration = CalibrationData.Generate(fp, checkpoint.Config.BosTokenId ?? 1, n, seqLen, parse.GetValue(seed));
            }

            // Ctrl+C and SIGTERM both cancel: the writer is then disposed uncommitted and its temporary file deleted.
            // Cancellation is checked between layers, so it takes effect when the current layer is done.
            using var cancel = new InterruptCancellation(
                stderr, "glowq convert: cancelling after the current layer; no output will be written", alsoOnSigterm: true);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            ConversionReport report = ModelConverter.Convert(checkpoint, embedded, target, new ConversionOptions
            {
                Method = chosen,
                GroupSize = g,
                Rank = r,
                Seed = parse.GetValue(seed),
                Calibration = calibration,
                CalibrationSource = calibrationSource,
                RestoreFraction = fraction,
                MaskMetric = parse.GetValue(metric)!,
                ConverterName = "glowq " + typeof(ConvertCommand).Assembly.GetName().Version,
            }, log, cancel.Token);
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"wrote {target}: {report.FileBytes} bytes, method {chosen}, {report.Units.Count} units, {report.Mask.Count(b => b == 1)} restored ({clock.Elapsed.TotalSeconds:F1} s)"));
            return GlowQCommandLine.ExitOk;
        });
        return command;
    }

    private static double ParseRestore(string value) => value switch
    {
        "all" => 1.0,
        "none" => 0.0,
        _ when double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double f) && f is >= 0 and <= 1 => f,
        _ => throw new CliUsageException($"--restore must be 'all', 'none' or a fraction in [0, 1], got '{value}'"),
    };

    /// <summary>Progress lines on stderr.</summary>
    private sealed class Progress(TextWriter stderr, bool quiet) : IProgress<string>
    {
        public void Report(string value)
        {
            if (!quiet)
            {
                stderr.WriteLine($"glowq convert: {value}");
            }
        }
    }
}
