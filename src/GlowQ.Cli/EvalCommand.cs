using System.CommandLine;
using System.Globalization;
using System.Text;
using GlowQ.Converter;
using GlowQ.Converter.Evaluation;
using GlowQ.Engine;
using GlowQ.Format;

namespace GlowQ.Cli;

/// <summary>
/// <c>glowq eval</c>: the accuracy table — a full-precision model converted by every requested method and scored on
/// one text, written as markdown, CSV and a PNG plot (or one JSON object).
/// </summary>
internal static class EvalCommand
{
    public const string DefaultVariants = "fp,rtn,gptq,layerwise,glowq,glowq-s:0.25,0.5,0.75";

    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var model = new Option<string>("--model", "-m") { Description = "Full-precision source: an HF directory or a llama2.c .bin file. Default: models/stories260K/stories260K.bin beside the binary." };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Tokenizer file when it is not beside the model." };
        var text = new Option<string>("--text") { Description = "UTF-8 evaluation text (CRLF line ends are normalised).", Required = true };
        var perLine = new Option<bool>("--per-line") { Description = "Score each non-empty line as its own document (own BOS, truncated to --seq-len)." };
        var seqLen = new Option<int>("--seq-len", "-L") { Description = "Evaluation window in tokens (default: the model's maximum).", DefaultValueFactory = _ => 0 };
        var variants = new Option<string>("--variants")
        {
            Description = "Variants to compare: fp, rtn, gptq, layerwise, glowq, glowq-gptq, and glowq-s:F1,F2,… (GlowQ restoring a fraction of units, once per metric).",
            DefaultValueFactory = _ => DefaultVariants,
        };
        var conversion = new ConversionCliOptions();
        var output = new Option<string>("--output", "-o") { Description = "Prefix of the files written: PREFIX.md, PREFIX.csv, PREFIX.png.", DefaultValueFactory = _ => "glowq-eval" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object {\"variants\":[{\"name\",\"ppl\",\"bits_per_weight\",\"factor_bytes\",…}]} instead of the markdown table." };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Print nothing on stderr but errors." };

        var command = new Command("eval", "Accuracy table: perplexity, bits per weight, correction bytes and B·x products per token for each quantisation variant.");
        command.Options.Add(model);
        command.Options.Add(tokenizer);
        command.Options.Add(text);
        command.Options.Add(perLine);
        command.Options.Add(seqLen);
        command.Options.Add(variants);
        conversion.AddTo(command);
        command.Options.Add(output);
        command.Options.Add(json);
        command.Options.Add(quiet);

        command.SetAction(parse =>
        {
            IReadOnlyList<string> metrics = conversion.ParseMetrics(parse);
            List<EvaluationVariant> chosen;
            try
            {
                chosen = AccuracyEvaluation.ParseVariants(parse.GetValue(variants)!, metrics);
            }
            catch (ArgumentException e)
            {
                throw new CliUsageException(e.Message);
            }

            EvaluationVariant[] calibrated = [.. chosen.Where(AccuracyEvaluation.NeedsCalibration)];
            bool needsCalibration = calibrated.Length > 0;
            conversion.Validate(parse, needsCalibration, "--variants " + string.Join(",", calibrated.Select(v => v.Kind).Distinct()));
            string textPath = parse.GetValue(text)!;
            string content = Utf8TextFile.Read(textPath, "text file").Text;
            int length = parse.GetValue(seqLen);
            if (length is not 0 and < 2)
            {
                throw new CliUsageException($"--seq-len must be at least 2, got {length}");
            }

            string prefix = parse.GetValue(output)!;
            string? directory = Path.GetDirectoryName(Path.GetFullPath(prefix));
            if (directory is null || !Directory.Exists(directory))
            {
                throw new DirectoryNotFoundException($"{prefix}: output directory {directory} does not exist");
            }

            string source = parse.GetValue(model) is { Length: > 0 } m ? m : BundledModel.FullPrecisionPath;
            using ICheckpoint checkpoint = CheckpointExtensions.Open(source);
            (string tokenizerPath, GlowQ.Tokenizers.ITextTokenizer textTokenizer) = ModelLoader.ResolveTokenizer(checkpoint.SourcePath, parse.GetValue(tokenizer));
            int window = length > 0 ? Math.Min(length, checkpoint.Config.MaxSequenceLength) : checkpoint.Config.MaxSequenceLength;
            bool lines = parse.GetValue(perLine);
            List<int[]> windows = lines ? Perplexity.PerLineWindows(textTokenizer, content, window) : Perplexity.ContiguousWindows(textTokenizer, content, window);
            if (windows.Sum(w => Math.Max(0, w.Length - 1)) == 0)
            {
                throw new CliUsageException($"{textPath}: no text to score (need at least two tokens)");
            }

            var log = new ProgressDisplay(stderr, "glowq eval", ProgressDisplay.IsTerminal(stderr), parse.GetValue(quiet));
            using var cancel = new InterruptCancellation(stderr, "glowq eval: cancelling; temporary files will be removed", writesFiles: true);
            (List<int[]> calibration, string calibrationSource) = needsCalibration
                ? conversion.Calibration(parse, checkpoint, textTokenizer, log, cancel.Token)
                : ([], "generated");
            ConversionOptions options = conversion.Options(parse, metrics) with { Calibration = calibration, CalibrationSource = calibrationSource };
            List<VariantResult> results = AccuracyEvaluation.Run(
                checkpoint, EmbeddedTokenizers.FromLoaded(tokenizerPath, textTokenizer), windows, window, chosen, options,
                directory, log, cancel.Token);

            long tokens = windows.Sum(w => (long)Math.Max(0, w.Length - 1));
            string protocol = string.Create(CultureInfo.InvariantCulture,
                $"{Path.GetFileName(textPath)}, {(lines ? "per line" : "contiguous windows")}, seq-len {window}, {tokens} predicted tokens; "
                + $"W4 asymmetric g{options.GroupSize}, rank {options.Rank}, "
                + $"calibration {(calibration.Count == 0 ? "none" : $"{calibration.Count}×{calibration.Max(c => c.Length)} tokens ({(calibrationSource == "generated" ? "generated" : "text")})")}, seed {options.Seed}");
            string markdown = AccuracyEvaluation.Markdown(results, protocol);
            string title = $"{Path.GetFileName(Path.TrimEndingDirectorySeparator(source))}: perplexity vs restored fraction";
            Write(prefix + ".md", Encoding.UTF8.GetBytes(markdown));
            Write(prefix + ".csv", Encoding.UTF8.GetBytes(AccuracyEvaluation.Csv(results)));
            Write(prefix + ".png", AccuracyEvaluation.Chart(results, title).RenderPng());
            stdout.Write(parse.GetValue(json) ? AccuracyEvaluation.Json(results, protocol) + "\n" : markdown);
            if (!parse.GetValue(quiet))
            {
                stderr.WriteLine($"glowq eval: wrote {prefix}.md, {prefix}.csv, {prefix}.png");
            }

            return GlowQCommandLine.ExitOk;
        });
        return command;
    }

    /// <summary>Writes through a temporary file and a rename, so a failure never leaves a truncated result.</summary>
    private static void Write(string path, byte[] content)
    {
        string temporary = path + ".tmp-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        try
        {
            File.WriteAllBytes(temporary, content);
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }
}
