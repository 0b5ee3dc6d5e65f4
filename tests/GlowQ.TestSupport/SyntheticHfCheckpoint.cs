namespace GlowQ.TestSupport;

/// <summary>Writes a tiny random HF checkpoint (config.json + model.safetensors) of a given architecture and dtype.</summary>
public static class SyntheticHfCheckpoint
{
    public sealed record Shape(
        string Architecture, int Dim, int Hidden, int Layers, int Heads, int KvHeads, int Vocab, int? HeadDim = null,
        bool Tied = true, string DType = "F32", string ExtraConfig = "");

    public static void Write(string directory, Shape s, int seed = 1)
    {
        int headDim = s.HeadDim ?? s.Dim / s.Heads;
        int qDim = s.Heads * headDim, kvDim = s.KvHeads * headDim;
        var random = new Random(seed);
        var entries = new List<SafetensorsWriter.Entry>();

        void Add(string name, long[] shape, double scale, double offset = 0)
        {
            long count = shape.Aggregate(1L, (a, b) => a * b);
            float[] values = [.. Enumerable.Range(0, (int)count).Select(_ => (float)(offset + scale * (random.NextDouble() * 2 - 1)))];
            entries.Add(s.DType switch
            {
                "F16" => SafetensorsWriter.F16(name, shape, values),
                "BF16" => SafetensorsWriter.BF16(name, shape, values),
                _ => SafetensorsWriter.F32(name, shape, values),
            });
        }

        Add("model.embed_tokens.weight", [s.Vocab, s.Dim], 1);
        for (int l = 0; l < s.Layers; l++)
        {
            string p = $"model.layers.{l}.";
            Add(p + "input_layernorm.weight", [s.Dim], 0.2, 1);
            Add(p + "self_attn.q_proj.weight", [qDim, s.Dim], 1 / Math.Sqrt(s.Dim));
            Add(p + "self_attn.k_proj.weight", [kvDim, s.Dim], 1 / Math.Sqrt(s.Dim));
            Add(p + "self_attn.v_proj.weight", [kvDim, s.Dim], 1 / Math.Sqrt(s.Dim));
            if (s.Architecture == "Qwen2ForCausalLM")
            {
                Add(p + "self_attn.q_proj.bias", [qDim], 0.5);
                Add(p + "self_attn.k_proj.bias", [kvDim], 0.5);
                Add(p + "self_attn.v_proj.bias", [kvDim], 0.5);
            }

            Add(p + "self_attn.o_proj.weight", [s.Dim, qDim], 1 / Math.Sqrt(qDim));
            Add(p + "post_attention_layernorm.weight", [s.Dim], 0.2, 1);
            Add(p + "mlp.gate_proj.weight", [s.Hidden, s.Dim], 1 / Math.Sqrt(s.Dim));
            Add(p + "mlp.up_proj.weight", [s.Hidden, s.Dim], 1 / Math.Sqrt(s.Dim));
            Add(p + "mlp.down_proj.weight", [s.Dim, s.Hidden], 1 / Math.Sqrt(s.Hidden));
        }

        Add("model.norm.weight", [s.Dim], 0.2, 1);
        if (!s.Tied)
        {
            Add("lm_head.weight", [s.Vocab, s.Dim], 1 / Math.Sqrt(s.Dim));
        }

        Directory.CreateDirectory(directory);
        SafetensorsWriter.Write(Path.Combine(directory, "model.safetensors"), entries);
        File.WriteAllText(Path.Combine(directory, "config.json"), $$"""
            {"architectures":["{{s.Architecture}}"],"hidden_size":{{s.Dim}},"intermediate_size":{{s.Hidden}},
             "num_hidden_layers":{{s.Layers}},"num_attention_heads":{{s.Heads}},"num_key_value_heads":{{s.KvHeads}},
             {{(s.HeadDim is int h ? $"\"head_dim\":{h}," : "")}}"vocab_size":{{s.Vocab}},"max_position_embeddings":64,
             "rms_norm_eps":1e-5,"tie_word_embeddings":{{(s.Tied ? "true" : "false")}}{{s.ExtraConfig}}}
            """);
    }
}
