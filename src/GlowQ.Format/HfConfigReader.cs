using System.Text.Json;

namespace GlowQ.Format;

/// <summary>Reads an HF config.json of a supported Llama-family architecture into a <see cref="ModelConfig"/>.</summary>
public static class HfConfigReader
{
    public static readonly IReadOnlyList<string> SupportedArchitectures = ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"];

    public static ModelConfig Read(string configPath)
    {
        byte[] bytes = File.ReadAllBytes(configPath);
        try
        {
            using JsonDocument doc = JsonDocument.Parse(bytes);
            return Parse(doc.RootElement, configPath);
        }
        catch (JsonException e)
        {
            throw ModelFormatException.For(configPath, $"not valid JSON ({e.Message.Split('\n')[0]})");
        }
    }

    public static ModelConfig Parse(JsonElement root, string source)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw ModelFormatException.For(source, "expected a JSON object");
        }

        string architecture = root.TryGetProperty("architectures", out JsonElement archs) && archs.ValueKind == JsonValueKind.Array && archs.GetArrayLength() > 0
            ? archs[0].GetString() ?? ""
            : throw ModelFormatException.For(source, "field 'architectures' is missing");
        if (!SupportedArchitectures.Contains(architecture))
        {
            throw ModelFormatException.For(source, $"unsupported architecture '{architecture}' (supported: {string.Join(", ", SupportedArchitectures)})");
        }

        string act = OptionalString(root, "hidden_act") ?? "silu";
        if (act != "silu")
        {
            throw ModelFormatException.For(source, $"hidden_act '{act}' is not supported (expected 'silu')");
        }

        int dim = RequiredInt(root, "hidden_size", source);
        int heads = RequiredInt(root, "num_attention_heads", source);
        int headDim = OptionalInt(root, "head_dim") ?? (heads > 0 ? dim / heads : 0);
        bool isQwen2 = architecture == "Qwen2ForCausalLM";
        int? slidingWindow = OptionalInt(root, "sliding_window");
        if (isQwen2 && OptionalBool(root, "use_sliding_window") != true)
        {
            slidingWindow = null;
        }

        var config = new ModelConfig
        {
            Architecture = architecture,
            Dim = dim,
            HiddenDim = RequiredInt(root, "intermediate_size", source),
            Layers = RequiredInt(root, "num_hidden_layers", source),
            Heads = heads,
            KvHeads = OptionalInt(root, "num_key_value_heads") ?? heads,
            HeadDim = headDim,
            VocabSize = RequiredInt(root, "vocab_size", source),
            MaxSequenceLength = OptionalInt(root, "max_position_embeddings") ?? 2048,
            NormEps = (float)(OptionalDouble(root, "rms_norm_eps") ?? 1e-6),
            RopeTheta = OptionalDouble(root, "rope_theta") ?? 10000.0,
            RopeScaling = ReadRopeScaling(root, source),
            RopeLayout = RopeLayout.RotateHalf,
            TiedEmbeddings = OptionalBool(root, "tie_word_embeddings") ?? false,
            QkvBias = isQwen2 || (OptionalBool(root, "attention_bias") ?? false),
            SlidingWindow = slidingWindow,
            BosTokenId = OptionalInt(root, "bos_token_id"),
            EosTokenIds = ReadIds(root, "eos_token_id"),
        };
        config.Validate(source);
        return config;
    }

    private static Llama3RopeScaling? ReadRopeScaling(JsonElement root, string source)
    {
        if (!root.TryGetProperty("rope_scaling", out JsonElement s) || s.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        string type = OptionalString(s, "rope_type") ?? OptionalString(s, "type") ?? "";
        if (type == "default")
        {
            return null;
        }

        if (type != "llama3")
        {
            throw ModelFormatException.For(source, $"rope_scaling type '{type}' is not supported (supported: llama3)");
        }

        return new Llama3RopeScaling(
            OptionalDouble(s, "factor") ?? throw ModelFormatException.For(source, "rope_scaling.factor is missing"),
            OptionalDouble(s, "low_freq_factor") ?? 1.0,
            OptionalDouble(s, "high_freq_factor") ?? 4.0,
            OptionalInt(s, "original_max_position_embeddings") ?? 8192);
    }

    private static int[] ReadIds(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out JsonElement e))
        {
            return [];
        }

        return e.ValueKind switch
        {
            JsonValueKind.Number => [e.GetInt32()],
            JsonValueKind.Array => [.. e.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.Number).Select(x => x.GetInt32())],
            _ => [],
        };
    }

    private static int RequiredInt(JsonElement root, string name, string source) =>
        OptionalInt(root, name) ?? throw ModelFormatException.For(source, $"field '{name}' is missing or not an integer");

    private static int? OptionalInt(JsonElement root, string name) =>
        root.TryGetProperty(name, out JsonElement e) && e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int v) ? v : null;

    private static double? OptionalDouble(JsonElement root, string name) =>
        root.TryGetProperty(name, out JsonElement e) && e.ValueKind == JsonValueKind.Number ? e.GetDouble() : null;

    private static bool? OptionalBool(JsonElement root, string name) =>
        root.TryGetProperty(name, out JsonElement e) && e.ValueKind is JsonValueKind.True or JsonValueKind.False ? e.GetBoolean() : null;

    private static string? OptionalString(JsonElement root, string name) =>
        root.TryGetProperty(name, out JsonElement e) && e.ValueKind == JsonValueKind.String ? e.GetString() : null;
}
