using System.CommandLine;
using System.Globalization;
using GlowQ.Converter;
using GlowQ.Engine;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Model;
using GlowQ.Runtime.Profiles;
using GlowQ.Tokenizers;

namespace GlowQ.Cli;

/// <summary>Options shared by the verbs that load a model.</summary>
internal sealed class CommonOptions
{
    public Option<string> Model { get; } = new("--model", "-m")
    {
        Description = "Model: an HF checkpoint directory (config.json + safetensors), a llama2.c .bin file, or a .glq file (run by the int4 runtime). Default: the bundled stories260K.",
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

    public Option<bool> Simulated { get; } = new("--simulated")
    {
        Description = "Run a .glq file as the converter's dense fp32 simulation (Q(W) + A·B) instead of the int4 runtime, for comparison.",
    };

    public Option<string?> Restore { get; } = new("--restore")
    {
        Description = "Which GlowQ units of a .glq file run their correction: a FRACTION in [0, 1] of units ranked by --metric, 'all' or 'none' (default: the file's mask).",
    };

    public Option<string?> Metric { get; } = new("--metric")
    {
        Description = "Stored importance score that ranks units for --restore FRACTION (default: gsvd, or the file's first).",
    };

    public Option<string?> Profile { get; } = new("--profile")
    {
        Description = "Device profile: a name built into the binary (orin-nano-8gb, orin-nx-16gb, agx-orin-64gb, xavier-nx, agx-xavier, jetson-nano-4gb, h100-dev, cpu) or a .json path. "
            + "Default: the detected Jetson, else cpu. Its memory budget is checked before a .glq model is loaded; a named profile also sets the default --restore fraction.",
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Model);
        command.Options.Add(Tokenizer);
        command.Options.Add(Threads);
        command.Options.Add(Quiet);
        command.Options.Add(Simulated);
        command.Options.Add(Restore);
        command.Options.Add(Metric);
        command.Options.Add(Profile);
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
        bool glq = path.EndsWith(".glq", StringComparison.OrdinalIgnoreCase);
        if (!glq && (parse.GetValue(Simulated) || parse.GetValue(Restore) is not null || parse.GetValue(Metric) is not null))
        {
            throw new CliUsageException("--simulated, --restore and --metric apply to .glq models only");
        }

        LoadedModel loaded = glq ? LoadGlq(parse, path, options) : ModelLoader.Load(path, parse.GetValue(Tokenizer), options);
        if (!parse.GetValue(Quiet))
        {
            var c = loaded.Model.Config;
            stderr.WriteLine(
                $"glowq: {Path.GetFileName(Path.TrimEndingDirectorySeparator(path))} ({loaded.CheckpointFormat}, {c.Architecture}): {c.Layers} layers, dim {c.Dim}, "
                + $"{c.Heads}/{c.KvHeads} heads, vocab {c.VocabSize}, {loaded.Model.WeightBytes / 1e6:F1} MB weights; "
                + $"context {loaded.Model.ContextLength}, {loaded.Model.Threads} threads; tokenizer {loaded.Tokenizer.Description}");
        }

        return loaded;
    }

    /// <summary>A .glq file on the int4 runtime (or, with --simulated, the dense simulation) under the mask --restore chooses.</summary>
    private LoadedModel LoadGlq(ParseResult parse, string path, InferenceOptions options)
    {
        GlqFile file = GlqFile.Open(path);
        bool handedOver = false;
        try
        {
            GlqModel model = GlqModel.Read(file);
            string? profileName = parse.GetValue(Profile);
            DeviceProfile profile = DeviceProfiles.Resolve(profileName);
            byte[] mask = ChooseMask(parse, model, profileName is null ? null : profile.RestoreFraction);

            // Refuse before allocating anything: weights, corrections, the KV cache for the whole context, workspace.
            // The CPU engine keeps its KV cache in fp32 whatever the profile says.
            MemoryPlan.For(file, model, mask, options.ContextLength, kvElementBytes: 4)
                .EnsureFits(profile, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes);
            string restored = $"{mask.Count(m => m != 0)}/{mask.Length} units restored";
            if (parse.GetValue(Simulated))
            {
                LoadedModel simulated = GlqEvaluationLoader.Load(path, parse.GetValue(Tokenizer), options, mask);
                return new LoadedModel(simulated.Model, simulated.Tokenizer, $"{simulated.CheckpointFormat}, {restored}");
            }

            ITextTokenizer tokenizer = parse.GetValue(Tokenizer) is string tokenizerPath
                ? TokenizerLoader.Load(tokenizerPath)
                : EmbeddedTokenizers.FromGlq(file, model);
            var runtime = GlqRuntimeModel.Open(file, mask, options);
            handedOver = true;
            return new LoadedModel(runtime, tokenizer, $".glq {model.Method}, int4 runtime, {restored}");
        }
        finally
        {
            if (!handedOver)
            {
                file.Dispose();
            }
        }
    }

    /// <summary>The restoration mask: the file's default, all, none, or the top fraction of units by a stored score.</summary>
    /// <param name="profileFraction">The named device profile's restore fraction, used when --restore is not given.</param>
    private byte[] ChooseMask(ParseResult parse, GlqModel model, double? profileFraction)
    {
        string? restore = parse.GetValue(Restore);
        string? metric = parse.GetValue(Metric);
        int units = model.Units.Count;
        switch (restore)
        {
            case null when profileFraction is null && metric is not null:
                throw new CliUsageException("--metric ranks units for --restore FRACTION; give --restore too");
            case null when profileFraction is null:
                return model.DefaultMask;
            case "all" or "none" when metric is not null:
                throw new CliUsageException($"--metric does not apply to --restore {restore}");
            case "all":
                return [.. Enumerable.Repeat((byte)1, units)];
            case "none":
                return new byte[units];
        }

        double fraction = restore is null ? profileFraction!.Value : RestoreOption.Parse(restore);

        if (units == 0)
        {
            return [];
        }

        string name = metric
            ?? ImportanceMetrics.Names.FirstOrDefault(model.Scores.ContainsKey)
            ?? model.Scores.Keys.Order(StringComparer.Ordinal).FirstOrDefault()
            ?? throw new CliUsageException("the file stores no importance scores; --restore takes only 'all' or 'none'");
        if (!model.Scores.TryGetValue(name, out float[]? scores))
        {
            throw new CliUsageException(
                $"the file has no '{name}' scores; it stores {(model.Scores.Count == 0 ? "none" : string.Join(", ", model.Scores.Keys.Order(StringComparer.Ordinal)))}");
        }

        return ImportanceMetrics.TopFraction(scores, fraction);
    }
}

/// <summary>The model that ships beside the binary.</summary>
internal static class BundledModel
{
    public static string Path => System.IO.Path.Combine(AppContext.BaseDirectory, "models", "stories260K", "stories260K.bin");
}
