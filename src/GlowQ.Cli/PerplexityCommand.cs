using System.CommandLine;
using System.Text;
using System.Text.Json;
using GlowQ.Engine;

namespace GlowQ.Cli;

/// <summary><c>glowq ppl</c>: perplexity of a model on a text file.</summary>
internal static class PerplexityCommand
{
    public static Command Create(TextWriter stdout, CliDefaults defaults)
    {
        var common = new CommonOptions(defaults);
        var text = new Option<string>("--text") { Description = "UTF-8 text file to score (CRLF line ends are normalised).", Required = true };
        var seqLen = new Option<int>("--seq-len", "-L") { Description = "Window length in tokens (default: the model's maximum).", DefaultValueFactory = _ => 0 };
        var perLine = new Option<bool>("--per-line") { Description = "Score each non-empty line as its own document (own BOS, truncated to --seq-len)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object {\"ppl\", \"nll\", \"tokens\", ...} instead of text." };

        var command = new Command(
            "ppl",
            "Perplexity on a text file. Default protocol: the whole text tokenised once with BOS and cut into non-overlapping "
            + "windows of --seq-len tokens; each window predicts its tokens 1..L-1. --per-line: one document per line.");
        common.AddTo(command);
        command.Options.Add(text);
        command.Options.Add(seqLen);
        command.Options.Add(perLine);
        command.Options.Add(json);

        command.SetAction(parse =>
        {
            string path = parse.GetValue(text)!;
            string content = Utf8TextFile.Read(path, "text file").Text;

            int length = parse.GetValue(seqLen);
            if (length != 0 && length < 2)
            {
                throw new CliUsageException($"--seq-len must be at least 2, got {length}");
            }

            bool lines = parse.GetValue(perLine);
            // The context must hold a whole window: --seq-len, or the model's full trained length by default.
            using LoadedModel loaded = length > 0 ? common.Load(parse, length) : common.Load(parse, config => config.MaxSequenceLength);
            int window = loaded.Model.ContextLength;
            List<int[]> windows = lines
                ? Perplexity.PerLineWindows(loaded.Tokenizer, content, window)
                : Perplexity.ContiguousWindows(loaded.Tokenizer, content, window);
            if (windows.Sum(w => Math.Max(0, w.Length - 1)) == 0)
            {
                throw new CliUsageException($"{path}: no text to score (need at least two tokens)");
            }

            PerplexityResult result = Perplexity.Evaluate(loaded.Model, windows);
            string protocol = lines ? "per-line" : "contiguous";
            if (parse.GetValue(json))
            {
                using var buffer = new MemoryStream();
                using (var writer = new Utf8JsonWriter(buffer))
                {
                    writer.WriteStartObject();
                    writer.WriteNumber("ppl", result.Perplexity);
                    writer.WriteNumber("nll", result.MeanNll);
                    writer.WriteNumber("tokens", result.Tokens);
                    writer.WriteNumber("windows", result.Windows);
                    writer.WriteNumber("seq_len", window);
                    writer.WriteString("protocol", protocol);
                    writer.WriteEndObject();
                }

                stdout.WriteLine(Encoding.UTF8.GetString(buffer.ToArray()));
            }
            else
            {
                stdout.WriteLine(
                    $"perplexity {result.Perplexity:F4} (mean nll {result.MeanNll:F5} over {result.Tokens} predicted tokens, "
                    + $"{result.Windows} windows, {protocol}, seq-len {window})");
            }

            return GlowQCommandLine.ExitOk;
        });
        return command;
    }
}
