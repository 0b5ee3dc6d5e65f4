using System.CommandLine;
using GlowQ.Engine;

namespace GlowQ.Cli;

/// <summary><c>glowq generate</c>: continue a prompt, streaming only the generated text to stdout.</summary>
internal static class GenerateCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr, CliDefaults defaults)
    {
        var common = new CommonOptions(defaults);
        var generation = new SamplingCliOptions(
            defaults.Settings.Generation,
            defaults.Settings.Generation.MaxTokens,
            "Most tokens to generate.",
            "Context length in tokens (default: the model's, at most 4096).");
        var prompt = new Option<string>("--prompt", "-p") { Description = "Text to continue.", Required = true };

        var command = new Command("generate", "Continue a prompt; the generated text streams to stdout, everything else goes to stderr.");
        common.AddTo(command);
        command.Options.Add(prompt);
        generation.AddTo(command);

        command.SetAction(parse =>
        {
            string text = parse.GetValue(prompt) ?? "";
            if (text.Length == 0)
            {
                throw new CliUsageException("--prompt is empty; give some text to continue");
            }

            (int limit, int contextLength, SamplingOptions sampling) = generation.Parse(parse);

            bool quiet = parse.GetValue(common.Quiet);
            using LoadedModel loaded = common.Load(parse, contextLength);
            int[] tokens = loaded.Tokenizer.Encode(text, addBos: true);
            if (tokens.Length >= loaded.Model.ContextLength)
            {
                throw new CliUsageException($"the prompt is {tokens.Length} tokens but the context holds {loaded.Model.ContextLength}; shorten it or raise --context");
            }

            using var cancel = new InterruptCancellation(stderr);
            var result = new TextGenerator(loaded.Model, loaded.Tokenizer).Generate(tokens, limit, sampling, stdout, cancel.Token);
            stdout.WriteLine();
            if (!quiet)
            {
                stderr.WriteLine(
                    $"glowq: {result.PromptTokens} prompt tokens, {result.GeneratedTokens} generated ({result.StopReason}); "
                    + $"first token {result.TimeToFirstToken.TotalMilliseconds:F1} ms, decode {result.DecodeTokensPerSecond:F1} tok/s"
                    + (sampling.Temperature > 0 ? $"; seed {sampling.Seed}" : ""));
            }

            return result.StopReason == "cancelled" ? GlowQCommandLine.ExitInterrupted : GlowQCommandLine.ExitOk;
        });
        return command;
    }
}
