using System.CommandLine;
using GlowQ.Engine;

namespace GlowQ.Cli;

/// <summary>Options shared by the verbs that load a model.</summary>
internal sealed class CommonOptions
{
    public Option<string> Model { get; } = new("--model", "-m")
    {
        Description = "Model: an HF checkpoint directory (config.json + safetensors), a llama2.c .bin file, or a .glq file (run as its simulated int4 model). Default: the bundled stories260K.",
    };

    public Option<string?> Tokenizer { get; } = new("--tokenizer")
    {
        Description = "Tokenizer file or directory (tokenizer.json, tokenizer.model or llama2.c tokenizer.bin) when it is not beside the model.",
    };

    public Option<int> Threads { get; } = new("--threads", "-t")
    {
        Description = "Worker threads (default: one per core).",
        DefaultValueFactory = _ => 0,
    };

    public Option<bool> Quiet { get; } = new("--quiet", "-q")
    {
        Description = "Print nothing on stderr but errors.",
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Model);
        command.Options.Add(Tokenizer);
        command.Options.Add(Threads);
        command.Options.Add(Quiet);
    }

    public string ModelPath(ParseResult parse) => parse.GetValue(Model) is { Length: > 0 } path ? path : BundledModel.Path;

    public int ThreadCount(ParseResult parse)
    {
        int threads = parse.GetValue(Threads);
        return threads >= 0 ? threads : throw new CliUsageException($"--threads must be ≥ 0, got {threads}");
    }

    public LoadedModel Load(ParseResult parse, int contextLength, TextWriter stderr)
    {
        string path = ModelPath(parse);
        var options = new InferenceOptions { ContextLength = contextLength, Threads = ThreadCount(parse) };
        LoadedModel loaded = path.EndsWith(".glq", StringComparison.OrdinalIgnoreCase)
            ? GlowQ.Converter.GlqEvaluationLoader.Load(path, parse.GetValue(Tokenizer), options)
            : ModelLoader.Load(path, parse.GetValue(Tokenizer), options);
        if (!parse.GetValue(Quiet))
        {
            var c = loaded.Model.Config;
            stderr.WriteLine(
                $"glowq: {Path.GetFileName(Path.TrimEndingDirectorySeparator(path))} ({loaded.CheckpointFormat}, {c.Architecture}): {c.Layers} layers, dim {c.Dim}, "
                + $"{c.Heads}/{c.KvHeads} heads, vocab {c.VocabSize}, {loaded.Model.Weights.ByteSize / 1e6:F1} MB weights; "
                + $"context {loaded.Model.ContextLength}, {loaded.Model.Threads} threads; tokenizer {loaded.Tokenizer.Description}");
        }

        return loaded;
    }
}

/// <summary>The model that ships beside the binary.</summary>
internal static class BundledModel
{
    public static string Path => System.IO.Path.Combine(AppContext.BaseDirectory, "models", "stories260K", "stories260K.bin");
}
