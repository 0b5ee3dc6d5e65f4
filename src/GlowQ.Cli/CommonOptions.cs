using System.CommandLine;
using System.Globalization;
using GlowQ.Cli.Hosting;
using GlowQ.Converter;
using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Cuda;
using GlowQ.Runtime.Gpu;
using GlowQ.Runtime.Model;
using GlowQ.Runtime.Profiles;
using GlowQ.Tokenizers;
using Microsoft.Extensions.Logging;

namespace GlowQ.Cli;

/// <summary>Options shared by the verbs that load a model; their defaults come from configuration (<see cref="ModelSettings"/>).</summary>
internal sealed class CommonOptions(CliDefaults defaults)
{
    public Option<string> Model { get; } = new("--model", "-m")
    {
        Description = "Model: a .glq file (run by the int4 runtime), an HF checkpoint directory (config.json + safetensors) or a llama2.c .bin file (run in fp32). "
            + "Default: the bundled stories260K.glq, built into the binary.",
        DefaultValueFactory = _ => defaults.Settings.Model.Path ?? "",
    };

    public Option<string?> Tokenizer { get; } = new("--tokenizer")
    {
        Description = "Tokenizer file or directory (tokenizer.json, tokenizer.model or llama2.c tokenizer.bin) when it is not beside the model.",
    };

    public Option<int> Threads { get; } = new("--threads", "-t")
    {
        Description = "Worker threads (0: one per core).",
        DefaultValueFactory = _ => defaults.Settings.Model.Threads,
    };

    public Option<bool> Quiet { get; } = new("--quiet", "-q")
    {
        Description = "Print only warnings and errors on stderr.",
    };

    public Option<bool> Simulated { get; } = new("--simulated")
    {
        Description = "Run a .glq file as the converter's dense fp32 simulation (Q(W) + A·B) instead of the int4 runtime, for comparison.",
    };

    public Option<string?> Restore { get; } = new("--restore")
    {
        Description = "Which GlowQ units of a .glq file run their correction: a FRACTION in [0, 1] of units ranked by --metric, 'all' or 'none' (default: the file's mask).",
        DefaultValueFactory = _ => defaults.Settings.Model.Restore,
    };

    public Option<string?> Metric { get; } = new("--metric")
    {
        Description = "Stored importance score that ranks units for --restore FRACTION (default: gsvd, or the file's first).",
        DefaultValueFactory = _ => defaults.Settings.Model.Metric,
    };

    public Option<string?> Profile { get; } = new("--profile")
    {
        Description = "Device profile: a name built into the binary (orin-nano-8gb, orin-nx-16gb, agx-orin-64gb, xavier-nx, agx-xavier, jetson-nano-4gb, h100-dev, cpu) or a .json path. "
            + "Default: the detected Jetson, else cpu. Its memory budget is checked before a .glq model is loaded; a named profile also sets the default --restore fraction.",
        DefaultValueFactory = _ => defaults.Settings.Model.Profile,
    };

    public Option<string?> KvCache { get; } = new("--kv-cache")
    {
        Description = "KV cache element type: f16 (half the memory; keys and values rounded to fp16 once, attention still in fp32) or f32. "
            + "Default: the device profile's kv_cache_dtype for .glq models, f32 for .bin and HF checkpoints (the fp32 reference).",
        DefaultValueFactory = _ => defaults.Settings.Model.KvCache,
    };

    public Option<bool> CudaGraphs { get; } = new("--cuda-graphs")
    {
        Description = "On the GPU, record each decoded token's kernels as a CUDA graph and launch it as one submission "
            + "(updated in place from token to token). Off by default until measured; ignored on the CPU.",
        DefaultValueFactory = _ => defaults.Settings.Model.CudaGraphs,
    };

    public Option<string> Backend { get; } = new("--backend")
    {
        Description = "Where a .glq model runs: cuda (an NVIDIA GPU through its driver), cpu (the int4 CPU kernels) or auto "
            + "(cuda when a device answers, else cpu with one line saying why). Checkpoints (.bin, HF) run on the CPU.",
        DefaultValueFactory = _ => defaults.Settings.Model.Backend,
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
        command.Options.Add(KvCache);
        command.Options.Add(Backend);
        command.Options.Add(CudaGraphs);
    }

    /// <summary>The --model path, or null for the bundled model.</summary>
    public string? ModelPath(ParseResult parse) => parse.GetValue(Model) is { Length: > 0 } path ? path : null;

    public int ThreadCount(ParseResult parse) => CheckThreads(parse.GetValue(Threads));

    /// <summary>A --threads value: ≥ 0, where 0 is one per core.</summary>
    public static int CheckThreads(int threads) =>
        threads >= 0 ? threads : throw new CliUsageException($"--threads must be ≥ 0, got {threads}");

    /// <param name="contextLength">Positions the KV cache holds; 0: the model's maximum, capped (<see cref="InferenceOptions.DefaultContextCap"/>).</param>
    public LoadedModel Load(ParseResult parse, int contextLength) => Load(parse, _ => contextLength);

    /// <param name="contextLength">Positions the KV cache holds, chosen from the model's configuration once it is read.</param>
    public LoadedModel Load(ParseResult parse, Func<ModelConfig, int> contextLength)
    {
        string? path = ModelPath(parse);
        bool glq = path is null || path.EndsWith(".glq", StringComparison.OrdinalIgnoreCase);
        // Only what the command line says: a configured default --restore must not stop a checkpoint from running.
        if (!glq && (parse.GetValue(Simulated) || parse.GetResult(Restore) is { Implicit: false } || parse.GetResult(Metric) is { Implicit: false }))
        {
            throw new CliUsageException("--simulated, --restore and --metric apply to .glq models only");
        }

        string backend = BackendOption.Parse(parse.GetValue(Backend));
        if (backend == "cuda" && (!glq || parse.GetValue(Simulated)))
        {
            throw new CliUsageException("--backend cuda runs .glq models on the int4 kernels; checkpoints and --simulated run on the CPU");
        }

        KvCacheDtype? kvCache = KvCacheChoice(parse);
        LoadedModel loaded;
        KvCacheDtype kvCacheUsed;
        if (glq)
        {
            loaded = LoadGlq(parse, path is null ? BundledModel.Open() : GlqFile.Open(path), contextLength, kvCache, backend, out kvCacheUsed);
        }
        else
        {
            // The fp32 engine is the numerical reference: its cache stays fp32 unless asked otherwise.
            kvCacheUsed = kvCache ?? KvCacheDtype.F32;
            var options = new InferenceOptions { Threads = ThreadCount(parse), KvCacheDtype = kvCacheUsed };
            loaded = ModelLoader.Load(path!, parse.GetValue(Tokenizer), config => options with { ContextLength = contextLength(config) });
        }

        if (defaults.Log.IsEnabled(LogLevel.Information))
        {
            var c = loaded.Model.Config;
            string name = path is null ? $"{BundledModel.Name} (bundled)" : Path.GetFileName(Path.TrimEndingDirectorySeparator(path));
            defaults.Log.LogInformation(
                "{Model}", $"{name} ({loaded.CheckpointFormat}, {c.Architecture}): {c.Layers} layers, dim {c.Dim}, "
                + $"{c.Heads}/{c.KvHeads} heads, vocab {c.VocabSize}, {loaded.Model.WeightBytes / 1e6:F1} MB weights; "
                + $"context {loaded.Model.ContextLength}, KV cache {kvCacheUsed.Name()} "
                + $"({kvCacheUsed.CacheBytes(c.Layers, c.KvHeads, c.HeadDim, loaded.Model.ContextLength) / 1e6:F1} MB), {loaded.Model.Threads} threads; "
                + $"tokenizer {loaded.Tokenizer.Description}");
        }

        return loaded;
    }

    /// <summary>
    /// An open .glq file (which this takes over) on the int4 runtime, or with --simulated the dense simulation, under
    /// the mask --restore chooses.
    /// </summary>
    /// <param name="kvCache">--kv-cache, or null for the device profile's KV cache dtype.</param>
    /// <param name="backend">auto, cuda or cpu (--backend).</param>
    private LoadedModel LoadGlq(ParseResult parse, GlqFile file, Func<ModelConfig, int> contextLength, KvCacheDtype? kvCache, string backend, out KvCacheDtype kvCacheUsed)
    {
        bool handedOver = false;
        try
        {
            GlqModel model = GlqModel.Read(file);
            var options = new InferenceOptions { ContextLength = contextLength(model.Config), Threads = ThreadCount(parse), DecodeGraphs = parse.GetValue(CudaGraphs) };
            // Resolved here rather than by the engine, so the memory plan counts the KV cache the engine will allocate.
            options = options with { ContextLength = options.ContextLengthFor(model.Config) };
            string? profileName = parse.GetValue(Profile);
            DeviceProfile profile = DeviceProfiles.Resolve(profileName);
            byte[] mask = ChooseMask(parse, model, profileName is null ? null : profile.RestoreFraction);
            kvCacheUsed = kvCache ?? (KvCacheDtypes.TryParse(profile.KvCacheDtype, out KvCacheDtype profiled) ? profiled : KvCacheDtype.F32);
            options = options with { KvCacheDtype = kvCacheUsed };

            // Refuse before allocating anything: weights, corrections, the KV cache for the whole context, workspace.
            MemoryPlan plan = MemoryPlan.For(file, model, mask, options.ContextLength, kvCacheUsed.ElementBytes());
            long machineBytes = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
            if (defaults.Log.IsEnabled(LogLevel.Debug))
            {
                defaults.Log.LogDebug(
                    "profile {Profile}: budget {Budget:F1} MB; memory plan {Total:F1} MB (weights {Weights:F1}, corrections {Corrections:F1}, KV cache {Kv:F1}, workspace {Workspace:F1})",
                    profile.Name, profile.BudgetBytes(machineBytes) / 1e6, plan.TotalBytes / 1e6, plan.WeightBytes / 1e6, plan.CorrectionBytes / 1e6, plan.KvCacheBytes / 1e6, plan.WorkspaceBytes / 1e6);
            }

            plan.EnsureFits(profile, machineBytes);
            string restored = $"{mask.Count(m => m != 0)}/{mask.Length} units restored";
            if (parse.GetValue(Simulated))
            {
                LoadedModel simulated = GlqEvaluationLoader.Load(file, parse.GetValue(Tokenizer), options, mask);
                return new LoadedModel(simulated.Model, simulated.Tokenizer, $"{simulated.CheckpointFormat}, {restored}")
                {
                    ChatFormat = simulated.ChatFormat,
                    DefaultSystemPrompt = simulated.DefaultSystemPrompt,
                };
            }

            ITextTokenizer tokenizer = parse.GetValue(Tokenizer) is string tokenizerPath
                ? TokenizerLoader.Load(tokenizerPath)
                : EmbeddedTokenizers.FromGlq(file, model);
            if (OpenGpu(file, mask, options, backend) is GpuGlqModel gpu)
            {
                handedOver = true;
                return new LoadedModel(gpu, tokenizer, $".glq {model.Method}, int4 on {gpu.DeviceDescription}, {restored}")
                {
                    ChatFormat = model.ChatFormat,
                    DefaultSystemPrompt = model.DefaultSystemPrompt,
                };
            }

            var runtime = GlqRuntimeModel.Open(file, mask, options);
            handedOver = true;
            return new LoadedModel(runtime, tokenizer, $".glq {model.Method}, int4 runtime, {restored}")
            {
                ChatFormat = model.ChatFormat,
                DefaultSystemPrompt = model.DefaultSystemPrompt,
            };
        }
        finally
        {
            if (!handedOver)
            {
                file.Dispose();
            }
        }
    }

    /// <summary>
    /// The GPU model of <paramref name="file"/> when the backend allows CUDA and a device answers (the model then owns
    /// the file); null for the CPU. auto without a device says why in one line; cuda without one is an error.
    /// </summary>
    private GpuGlqModel? OpenGpu(GlqFile file, byte[] mask, InferenceOptions options, string backend)
    {
        CudaProbeResult? probe = BackendOption.Probe(backend);
        if (probe is null)
        {
            return null;
        }

        if (!probe.IsAvailable)
        {
            if (defaults.Log.IsEnabled(LogLevel.Information))
            {
                defaults.Log.LogInformation("{Reason}", $"no GPU ({probe.Describe()}): running on the CPU");
            }

            return null;
        }

        return BackendOption.OpenGpu(file, mask, options);
    }

    /// <summary>--kv-cache, or null when it is not given.</summary>
    private KvCacheDtype? KvCacheChoice(ParseResult parse) => parse.GetValue(KvCache) is string name ? ParseKvCache(name) : null;

    /// <summary>A --kv-cache value: f16 or f32.</summary>
    public static KvCacheDtype ParseKvCache(string name) =>
        KvCacheDtypes.TryParse(name, out KvCacheDtype dtype) ? dtype : throw new CliUsageException($"--kv-cache must be f16 or f32, got '{name}'");

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
        return RestoreOption.TopFraction(model, fraction, metric);
    }
}

/// <summary>
/// The model built into the binary: stories260K converted by this product's converter (models/stories260K/README.md
/// gives the command and the licence). It is read in place from the binary's resource data, so <c>glowq chat</c> runs
/// with no model file at all.
/// </summary>
internal static class BundledModel
{
    public const string Name = "stories260K.glq";

    internal const string ResourceName = "GlowQ.Cli.bundled.glq";

    public static GlqFile Open()
    {
        Stream stream = typeof(BundledModel).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new FileNotFoundException($"{Name}: the bundled model is missing from this build of glowq; pass --model FILE");
        if (stream is not UnmanagedMemoryStream bytes)
        {
            stream.Dispose();
            throw new InvalidOperationException($"{Name}: the bundled model is not in the binary's mapped resource data");
        }

        return GlqFile.Open(Name, bytes);
    }

    /// <summary>The full-precision stories260K that the build copies beside the binary, the default source of <c>glowq eval</c>.</summary>
    public static string FullPrecisionPath => System.IO.Path.Combine(AppContext.BaseDirectory, "models", "stories260K", "stories260K.bin");
}
