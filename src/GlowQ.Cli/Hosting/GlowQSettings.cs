namespace GlowQ.Cli.Hosting;

/// <summary>
/// The defaults of the command-line options, as configuration: <c>appsettings.json</c> beside the binary, then
/// <c>GLOWQ_</c> environment variables (<c>GLOWQ_GENERATION__TEMPERATURE=0</c>), then the command line itself, each
/// overriding the one before. Bound by the configuration-binding source generator, so it works under Native AOT.
/// Properties are settable with the built-in defaults as initial values: a source absent from configuration leaves them.
/// </summary>
public sealed class GlowQSettings
{
    public const string FileName = "appsettings.json";

    public const string EnvironmentPrefix = "GLOWQ_";

    public ModelSettings Model { get; set; } = new();

    public GenerationSettings Generation { get; set; } = new();

    public ChatSettings Chat { get; set; } = new();

    /// <summary>The first out-of-range value, as "Section:Key must be …, got …", or null when all are usable.</summary>
    public string? Problem()
    {
        GenerationSettings g = Generation;
        return (Model.Threads < 0 ? $"Model:Threads must be ≥ 0, got {Model.Threads}" : null)
            ?? (Model.Backend is not ("auto" or "cuda" or "cpu") ? $"Model:Backend must be auto, cuda or cpu, got '{Model.Backend}'" : null)
            ?? (g.MaxTokens < 0 ? $"Generation:MaxTokens must be ≥ 0, got {g.MaxTokens}" : null)
            ?? (g.Context < 0 ? $"Generation:Context must be ≥ 0, got {g.Context}" : null)
            ?? (Chat.MaxTokens < 0 ? $"Chat:MaxTokens must be ≥ 0, got {Chat.MaxTokens}" : null)
            ?? (g.Temperature < 0 || !float.IsFinite(g.Temperature) ? $"Generation:Temperature must be a finite number ≥ 0, got {g.Temperature}" : null)
            ?? (g.TopK < 0 ? $"Generation:TopK must be ≥ 0, got {g.TopK}" : null)
            ?? (g.TopP is <= 0 or > 1 || float.IsNaN(g.TopP) ? $"Generation:TopP must be in (0, 1], got {g.TopP}" : null)
            ?? (g.MinP is < 0 or > 1 || float.IsNaN(g.MinP) ? $"Generation:MinP must be in [0, 1], got {g.MinP}" : null)
            ?? (g.RepeatPenalty <= 0 || !float.IsFinite(g.RepeatPenalty) ? $"Generation:RepeatPenalty must be a finite number > 0, got {g.RepeatPenalty}" : null)
            ?? (g.RepeatLastN < 0 ? $"Generation:RepeatLastN must be ≥ 0, got {g.RepeatLastN}" : null);
    }
}

/// <summary>Which model runs and how it is loaded (--model, --threads, --profile, --restore, --metric, --kv-cache, --backend, --cuda-graphs).</summary>
public sealed class ModelSettings
{
    /// <summary>A model file or directory; empty runs the model built into the binary.</summary>
    public string? Path { get; set; }

    public int Threads { get; set; }

    public string? Profile { get; set; }

    public string? Restore { get; set; }

    public string? Metric { get; set; }

    public string? KvCache { get; set; }

    /// <summary>auto (CUDA when a device answers, else the CPU), cuda or cpu.</summary>
    public string Backend { get; set; } = "auto";

    /// <summary>On the GPU, launch each decoded token's kernels as one CUDA graph.</summary>
    public bool CudaGraphs { get; set; }
}

/// <summary>Sampling and length defaults of <c>glowq generate</c> and <c>glowq chat</c>.</summary>
public sealed class GenerationSettings
{
    public int MaxTokens { get; set; } = 256;

    public float Temperature { get; set; } = 0.8f;

    public int TopK { get; set; } = 40;

    public float TopP { get; set; } = 0.95f;

    public float MinP { get; set; } = 0.05f;

    public float RepeatPenalty { get; set; } = 1.0f;

    public int RepeatLastN { get; set; } = 64;

    /// <summary>Fixed seed for sampling; null draws one from the clock and prints it.</summary>
    public ulong? Seed { get; set; }

    /// <summary>Context length in tokens; 0 takes the model's (at most 4096).</summary>
    public int Context { get; set; }
}

/// <summary>Defaults of <c>glowq chat</c> that differ from one-shot generation.</summary>
public sealed class ChatSettings
{
    /// <summary>Most tokens per reply.</summary>
    public int MaxTokens { get; set; } = 256;

    public string? System { get; set; }

    public string? Format { get; set; }
}
