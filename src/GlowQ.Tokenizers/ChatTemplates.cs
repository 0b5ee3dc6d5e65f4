using System.Text.Json;

namespace GlowQ.Tokenizers;

/// <summary>
/// The chat formats the runtime renders natively, recognised from a model's Jinja chat template by the markers each
/// family's template must emit. Matching markers rather than whole templates keeps small template edits (a changed
/// default system prompt, tool-call branches) from turning a known family into "plain".
/// </summary>
public static class ChatTemplates
{
    public const string Plain = "plain";
    public const string Llama2 = "llama2";
    public const string Llama3 = "llama3";
    public const string ChatMl = "chatml";

    /// <summary>The chat format a template renders; <see cref="Plain"/> for none or an unknown template.</summary>
    public static string Detect(string? template) => template switch
    {
        null or "" => Plain,
        _ when template.Contains("<|start_header_id|>", StringComparison.Ordinal) && template.Contains("<|eot_id|>", StringComparison.Ordinal) => Llama3,
        _ when template.Contains("<|im_start|>", StringComparison.Ordinal) && template.Contains("<|im_end|>", StringComparison.Ordinal) => ChatMl,
        _ when template.Contains("[INST]", StringComparison.Ordinal) && template.Contains("[/INST]", StringComparison.Ordinal) => Llama2,
        _ => Plain,
    };

    /// <summary>
    /// The chat template of a tokenizer_config.json: its "chat_template" string, or, when it is a list of named
    /// templates, the one named "default" (else the first). Null when the file has none.
    /// </summary>
    public static string? FromTokenizerConfig(byte[] tokenizerConfigJson, string source)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(tokenizerConfigJson);
            if (document.RootElement.ValueKind != JsonValueKind.Object || !document.RootElement.TryGetProperty("chat_template", out JsonElement template))
            {
                return null;
            }

            switch (template.ValueKind)
            {
                case JsonValueKind.String:
                    return template.GetString();
                case JsonValueKind.Array:
                    JsonElement? chosen = null;
                    foreach (JsonElement named in template.EnumerateArray())
                    {
                        if (named.ValueKind == JsonValueKind.Object && named.TryGetProperty("template", out JsonElement text) && text.ValueKind == JsonValueKind.String)
                        {
                            bool isDefault = named.TryGetProperty("name", out JsonElement name) && name.ValueKind == JsonValueKind.String && name.GetString() == "default";
                            if (isDefault || chosen is null)
                            {
                                chosen = text;
                            }

                            if (isDefault)
                            {
                                break;
                            }
                        }
                    }

                    return chosen?.GetString();
                case JsonValueKind.Null:
                    return null;
                default:
                    throw new TokenizerFormatException($"{source}: 'chat_template' is a {template.ValueKind}, expected a string or a list of named templates");
            }
        }
        catch (JsonException e)
        {
            throw new TokenizerFormatException($"{source}: not valid JSON ({e.Message})");
        }
    }
}
