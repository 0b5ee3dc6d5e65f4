namespace GlowQ.Format;

/// <summary>
/// A full-precision model checkpoint, whatever its file format. Tensors are named as in HF Llama checkpoints
/// (<see cref="TensorNames"/>) so every reader presents one vocabulary to the engine and the converter.
/// </summary>
public interface ICheckpoint : IDisposable
{
    /// <summary>The file or directory the checkpoint was opened from.</summary>
    string SourcePath { get; }

    /// <summary>"safetensors" or "llama2.c".</summary>
    string FormatName { get; }

    ModelConfig Config { get; }

    IEnumerable<string> TensorNames { get; }

    /// <summary>The tensor called <paramref name="name"/>, or null when the checkpoint has none.</summary>
    TensorView? FindTensor(string name);
}

/// <summary>Canonical (HF Llama) tensor names.</summary>
public static class LlamaTensorNames
{
    public const string Embedding = "model.embed_tokens.weight";
    public const string FinalNorm = "model.norm.weight";
    public const string OutputHead = "lm_head.weight";

    public static string Layer(int layer, string suffix) => $"model.layers.{layer}.{suffix}";

    public static string AttentionNorm(int layer) => Layer(layer, "input_layernorm.weight");

    public static string FfnNorm(int layer) => Layer(layer, "post_attention_layernorm.weight");

    public static string Query(int layer) => Layer(layer, "self_attn.q_proj.weight");

    public static string Key(int layer) => Layer(layer, "self_attn.k_proj.weight");

    public static string Value(int layer) => Layer(layer, "self_attn.v_proj.weight");

    public static string Output(int layer) => Layer(layer, "self_attn.o_proj.weight");

    public static string Gate(int layer) => Layer(layer, "mlp.gate_proj.weight");

    public static string Up(int layer) => Layer(layer, "mlp.up_proj.weight");

    public static string Down(int layer) => Layer(layer, "mlp.down_proj.weight");

    public static string Bias(string weightName) => weightName[..^"weight".Length] + "bias";
}
