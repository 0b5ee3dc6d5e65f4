using System.CommandLine;
using GlowQ.Cli.Hosting;
using GlowQ.Engine;

namespace GlowQ.Cli;

/// <summary>
/// The generation options shared by <c>glowq generate</c> and <c>glowq chat</c>: token limit, sampling, seed, context.
/// Their defaults come from configuration (<see cref="GenerationSettings"/>), so the command line overrides
/// appsettings.json and the environment, and --help shows the defaults in force.
/// </summary>
internal sealed class SamplingCliOptions(GenerationSettings defaults, int maxTokensDefault, string maxTokensDescription, string contextDescription)
{
    public Option<int> MaxTokens { get; } = new("--max-tokens", "-n") { Description = maxTokensDescription, DefaultValueFactory = _ => maxTokensDefault };

    public Option<float> Temperature { get; } = new("--temperature") { Description = "Sampling temperature; 0 = greedy.", DefaultValueFactory = _ => defaults.Temperature };

    public Option<int> TopK { get; } = new("--top-k") { Description = "Keep only the K most likely tokens (0 = off).", DefaultValueFactory = _ => defaults.TopK };

    public Option<float> TopP { get; } = new("--top-p") { Description = "Keep the smallest set of tokens whose probability reaches P (1 = off).", DefaultValueFactory = _ => defaults.TopP };

    public Option<float> MinP { get; } = new("--min-p") { Description = "Drop tokens less likely than M × the most likely one (0 = off).", DefaultValueFactory = _ => defaults.MinP };

    public Option<float> RepeatPenalty { get; } = new("--repeat-penalty") { Description = "Penalty for recently generated tokens (1 = off).", DefaultValueFactory = _ => defaults.RepeatPenalty };

    public Option<int> RepeatLastN { get; } = new("--repeat-last-n") { Description = "How many recent tokens the repeat penalty considers.", DefaultValueFactory = _ => defaults.RepeatLastN };

    public Option<ulong?> Seed { get; } = new("--seed", "-s") { Description = "Random seed (default: time-based, printed on stderr).", DefaultValueFactory = _ => defaults.Seed };

    public Option<int> Context { get; } = new("--context", "-c") { Description = contextDescription, DefaultValueFactory = _ => defaults.Context };

    public void AddTo(Command command)
    {
        foreach (Option o in new Option[] { MaxTokens, Temperature, TopK, TopP, MinP, RepeatPenalty, RepeatLastN, Seed, Context })
        {
            command.Options.Add(o);
        }
    }

    /// <summary>The token limit, the context length (0: the model's) and the sampling options, checked.</summary>
    public (int MaxTokens, int ContextLength, SamplingOptions Sampling) Parse(ParseResult parse)
    {
        int limit = parse.GetValue(MaxTokens);
        if (limit < 0)
        {
            throw new CliUsageException($"--max-tokens must be ≥ 0, got {limit}");
        }

        int contextLength = parse.GetValue(Context);
        if (contextLength < 0)
        {
            throw new CliUsageException($"--context must be ≥ 0, got {contextLength}");
        }

        var sampling = new SamplingOptions
        {
            Temperature = parse.GetValue(Temperature),
            TopK = parse.GetValue(TopK),
            TopP = parse.GetValue(TopP),
            MinP = parse.GetValue(MinP),
            RepeatPenalty = parse.GetValue(RepeatPenalty),
            RepeatLastN = parse.GetValue(RepeatLastN),
            Seed = parse.GetValue(Seed) ?? (ulong)DateTime.UtcNow.Ticks,
        };
        if (sampling.Problem() is string problem)
        {
            throw new CliUsageException(problem);
        }

        return (limit, contextLength, sampling);
    }
}
