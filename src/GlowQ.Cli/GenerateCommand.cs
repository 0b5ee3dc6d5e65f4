using System.CommandLine;
using GlowQ.Engine;

namespace GlowQ.Cli;

/// <summary><c>glowq generate</c>: continue a prompt, streaming only the generated text to stdout.</summary>
internal static class GenerateCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var common = new CommonOptions();
        var prompt = new Option<string>("--prompt", "-p") { Description = "Text to continue.", Required = true };
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Most tokens to generate.", DefaultValueFactory = _ => 256 };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature; 0 = greedy.", DefaultValueFactory = _ => 0.8f };
        var topK = new Option<int>("--top-k") { Description = "Keep only the K most likely tokens (0 = off).", DefaultValueFactory = _ => 40 };
        var topP = new Option<float>("--top-p") { Description = "Keep the smallest set of tokens whose probability reaches P (1 = off).", DefaultValueFactory = _ => 0.95f };
        var minP = new Option<float>("--min-p") { Description = "Drop tokens less likely than M × the most likely one (0 = off).", DefaultValueFactory = _ => 0.05f };
        var repeatPenalty = new Option<float>("--repeat-penalty") { Description = "Penalty for recently generated tokens (1 = off).", DefaultValueFactory = _ => 1.0f };
        var repeatLastN = new Option<int>("--repeat-last-n") { Description = "How many recent tokens the repeat penalty considers.", DefaultValueFactory = _ => 64 };
        var seed = new Option<ulong?>("--seed", "-s") { Description = "Random seed (default: time-based, printed on stderr)." };
        var context = new Option<int>("--context", "-c") { Description = "Context length in tokens (default: the model's, at most 4096).", DefaultValueFactory = _ => 0 };

        var command = new Command("generate", "Continue a prompt; the generated text streams to stdout, everything else goes to stderr.");
        common.AddTo(command);
        foreach (Option o in new Option[] { prompt, maxTokens, temperature, topK, topP, minP, repeatPenalty, repeatLastN, seed, context })
        {
            command.Options.Add(o);
        }

        command.SetAction(parse =>
        {
            string text = parse.GetValue(prompt) ?? "";
            if (text.Length == 0)
            {
                throw new CliUsageException("--prompt is empty; give some text to continue");
            }

            int limit = parse.GetValue(maxTokens);
            if (limit < 0)
            {
                throw new CliUsageException($"--max-tokens must be ≥ 0, got {limit}");
            }

            int contextLength = parse.GetValue(context);
            if (contextLength < 0)
            {
                throw new CliUsageException($"--context must be ≥ 0, got {contextLength}");
            }

            ulong seedValue = parse.GetValue(seed) ?? (ulong)DateTime.UtcNow.Ticks;
            var sampling = new SamplingOptions
            {
                Temperature = parse.GetValue(temperature),
                TopK = parse.GetValue(topK),
                TopP = parse.GetValue(topP),
                MinP = parse.GetValue(minP),
                RepeatPenalty = parse.GetValue(repeatPenalty),
                RepeatLastN = parse.GetValue(repeatLastN),
                Seed = seedValue,
            };
            if (sampling.Problem() is string problem)
            {
                throw new CliUsageException(problem);
            }

            bool quiet = parse.GetValue(common.Quiet);
            using LoadedModel loaded = common.Load(parse, contextLength, stderr);
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
                    + (sampling.Temperature > 0 ? $"; seed {seedValue}" : ""));
            }

            return result.StopReason == "cancelled" ? GlowQCommandLine.ExitInterrupted : GlowQCommandLine.ExitOk;
        });
        return command;
    }
}
