using System.CommandLine;
using System.Globalization;
using GlowQ.Converter;
using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.Format.Glq;

namespace GlowQ.Cli;

/// <summary><c>glowq convert</c>: a full-precision checkpoint to a .glq file by GlowQ, per-module (layerwise) or plain RTN/GPTQ.</summary>
internal static class ConvertCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var model = new Option<string>("--model", "-m") { Description = "Source checkpoint: an HF directory or a llama2.c .bin file.", Required = true };
        var output = new Option<string>("--output", "-o") { Description = "The .glq file to write (written atomically).", Required = true };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Tokenizer file to embed when it is not beside the model." };
        var method = new Option<string>("--method") { Description = "glowq (shared B per input-sharing unit), layerwise (one A/B pair per module) or rtn (no correction).", DefaultValueFactory = _ => "glowq" };
        method.AcceptOnlyFromAmong([.. GlqModel.Methods]);
        var conversion = new ConversionCliOptions();
        var restore = new Option<string>("--restore") { Description = "Default restoration mask: 'all', 'none' or a fraction of units (by --metric).", DefaultValueFactory = _ => "all" };
        var metric = new Option<string?>("--metric") { Description = "Metric that ranks units for --restore (default: the first of --metrics)." };
        metric.AcceptOnlyFromAmong([.. ImportanceMetrics.Names]);
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Print nothing on stderr but errors." };

        var command = new Command("convert", "Quantise a full-precision checkpoint to 4 bits with GlowQ correction and write one .glq file.");
        command.Options.Add(model);
        command.Options.Add(output);
        command.Options.Add(tokenizer);
        command.Options.Add(method);
        conversion.AddTo(command);
        command.Options.Add(restore);
        command.Options.Add(metric);
        command.Options.Add(quiet);

        command.SetAction(parse =>
        {
            string target = parse.GetValue(output)!;
            string chosen = parse.GetValue(method)!;
            string quantizer = parse.GetValue(conversion.Quantizer)!;
            IReadOnlyList<string> metrics = conversion.ParseMetrics(parse);
            string maskMetric = parse.GetValue(metric) ?? metrics[0];
            if (!metrics.Contains(maskMetric))
            {
                throw new CliUsageException($"--metric {maskMetric} is not among --metrics {string.Join(",", metrics)}");
            }

            double fraction = RestoreOption.Parse(parse.GetValue(restore)!);
            bool needsCalibration = ConversionOptions.Calibrates(chosen, quantizer);
            conversion.Validate(parse, needsCalibration, chosen != "rtn" ? $"--method {chosen}" : "--quantizer gptq");

            using ICheckpoint checkpoint = CheckpointExtensions.Open(parse.GetValue(model)!);
            (string tokenizerPath, GlowQ.Tokenizers.ITextTokenizer textTokenizer) = ModelLoader.ResolveTokenizer(checkpoint.SourcePath, parse.GetValue(tokenizer));
            EmbeddedTokenizer embedded = EmbeddedTokenizers.FromLoaded(tokenizerPath, textTokenizer);
            var log = new ProgressDisplay(stderr, "glowq convert", ProgressDisplay.IsTerminal(stderr), parse.GetValue(quiet));

            // Ctrl+C and SIGTERM both cancel: the writer is then disposed uncommitted and its temporary file deleted.
            // Cancellation is checked between layers (and calibration tokens), so it takes effect within one layer.
            using var cancel = new InterruptCancellation(
                stderr, "glowq convert: cancelling after the current layer; no output will be written", writesFiles: true);
            (List<int[]> calibration, string calibrationSource) = needsCalibration
                ? conversion.Calibration(parse, checkpoint, textTokenizer, log, cancel.Token)
                : ([], "generated");
            var clock = System.Diagnostics.Stopwatch.StartNew();
            ConversionReport report = ModelConverter.Convert(checkpoint, embedded, target, conversion.Options(parse, metrics) with
            {
                Method = chosen,
                Calibration = calibration,
                CalibrationSource = calibrationSource,
                RestoreFraction = fraction,
                MaskMetric = maskMetric,
            }, log, cancel.Token);
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"wrote {target}: {report.FileBytes} bytes, method {chosen}, quantizer {quantizer}, {report.Units.Count} units, {report.Mask.Count(b => b == 1)} restored ({clock.Elapsed.TotalSeconds:F1} s)"));
            return GlowQCommandLine.ExitOk;
        });
        return command;
    }
}
