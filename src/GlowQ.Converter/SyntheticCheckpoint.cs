using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using GlowQ.Format;

namespace GlowQ.Converter;

/// <summary>
/// Writes HF-format checkpoints with the shapes of real models and random weights with realistic statistics, for
/// speed work at real sizes (no large real model can be had on the build machines). Weights are N(0, σ_row²/d_in)
/// with σ_row log-normal per output row, a few heavy outlier input channels on the projections that read a norm
/// output, norm weights near 1, and a small embedding. Everything is derived from the seed.
/// </summary>
public static class SyntheticCheckpoint
{
    public sealed record Shape(
        string Name, string Architecture, int Dim, int Hidden, int Layers, int Heads, int KvHeads, int Vocab, int MaxPositions,
        double RopeTheta, bool Tied, bool QkvBias, string RopeScalingJson = "null");

    public static readonly IReadOnlyList<Shape> Shapes =
    [
        new("llama-3.2-1b", "LlamaForCausalLM", 2048, 8192, 16, 32, 8, 128256, 131072, 500000, true, false,
            """{"rope_type":"llama3","factor":32.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}"""),
        new("llama-2-7b", "LlamaForCausalLM", 4096, 11008, 32, 32, 32, 32000, 4096, 10000, false, false),
        new("qwen2.5-0.5b", "Qwen2ForCausalLM", 896, 4864, 24, 14, 2, 151936, 32768, 1000000, true, true),
        new("tiny", "LlamaForCausalLM", 128, 344, 2, 4, 2, 512, 512, 10000, true, false),
    ];

    public static Shape Find(string name) => Shapes.FirstOrDefault(s => s.Name == name)
        ?? throw new ArgumentException($"--shape must be one of {string.Join(", ", Shapes.Select(s => s.Name))}, got '{name}'");

    /// <summary>Writes config.json, model.safetensors (F16) and a llama2.c tokenizer.bin of the model's vocabulary into <paramref name="directory"/>.</summary>
    public static long Write(Shape s, string directory, ulong seed, IProgress<string>? progress = null)
    {
        Directory.CreateDirectory(directory);
        int headDim = s.Dim / s.Heads;
        int qDim = s.Heads * headDim, kvDim = s.KvHeads * headDim;
        var tensors = new List<(string Name, TensorDType DType, long[] Shape)> { ("model.embed_tokens.weight", TensorDType.F16, [s.Vocab, s.Dim]) };
        for (int l = 0; l < s.Layers; l++)
        {
            string p = $"model.layers.{l}.";
            tensors.Add((p + "input_layernorm.weight", TensorDType.F16, [s.Dim]));
            tensors.Add((p + "self_attn.q_proj.weight", TensorDType.F16, [qDim, s.Dim]));
            tensors.Add((p + "self_attn.k_proj.weight", TensorDType.F16, [kvDim, s.Dim]));
            tensors.Add((p + "self_attn.v_proj.weight", TensorDType.F16, [kvDim, s.Dim]));
            if (s.QkvBias)
            {
                tensors.Add((p + "self_attn.q_proj.bias", TensorDType.F16, [qDim]));
                tensors.Add((p + "self_attn.k_proj.bias", TensorDType.F16, [kvDim]));
                tensors.Add((p + "self_attn.v_proj.bias", TensorDType.F16, [kvDim]));
            }

            tensors.Add((p + "self_attn.o_proj.weight", TensorDType.F16, [s.Dim, qDim]));
            tensors.Add((p + "post_attention_layernorm.weight", TensorDType.F16, [s.Dim]));
            tensors.Add((p + "mlp.gate_proj.weight", TensorDType.F16, [s.Hidden, s.Dim]));
            tensors.Add((p + "mlp.up_proj.weight", TensorDType.F16, [s.Hidden, s.Dim]));
            tensors.Add((p + "mlp.down_proj.weight", TensorDType.F16, [s.Dim, s.Hidden]));
        }

        tensors.Add(("model.norm.weight", TensorDType.F16, [s.Dim]));
        if (!s.Tied)
        {
            tensors.Add(("lm_head.weight", TensorDType.F16, [s.Vocab, s.Dim]));
        }

        long bytes = 0;
        using (var writer = new SafetensorsStreamWriter(Path.Combine(directory, "model.safetensors"), tensors))
        {
            foreach ((string name, _, long[] shape) in tensors)
            {
                progress?.Report(name);
                ulong tensorSeed = seed ^ Fnv1a(name);
                int rows = (int)shape[0], cols = shape.Length > 1 ? (int)shape[1] : 1;
                bool norm = name.EndsWith("norm.weight", StringComparison.Ordinal);
                bool bias = name.EndsWith(".bias", StringComparison.Ordinal);
                bool readsNorm = name.Contains("q_proj.weight", StringComparison.Ordinal) || name.Contains("k_proj.weight", StringComparison.Ordinal)
                                 || name.Contains("v_proj.weight", StringComparison.Ordinal) || name.Contains("gate_proj", StringComparison.Ordinal)
                                 || name.Contains("up_proj", StringComparison.Ordinal);
                var rng = new Random64(tensorSeed);
                var outliers = new HashSet<int>();
                if (readsNorm)
                {
                    // The same few channels in every layer, as real residual streams have: seeded by shape, not name.
                    var channelRng = new Random64(seed ^ 0xC0FFEEUL);
                    for (int k = 0; k < Math.Max(2, cols / 256); k++)
                    {
                        outliers.Add((int)(channelRng.NextUInt() % (uint)cols));
                    }
                }

                var row = new Half[cols];
                for (int r = 0; r < rows; r++)
                {
                    double rowScale = Math.Exp(0.3 * rng.NextGaussian()) / Math.Sqrt(cols);
                    for (int c = 0; c < row.Length; c++)
                    {
                        double v = norm ? 1 + 0.1 * rng.NextGaussian()
                            : bias ? 0.02 * rng.NextGaussian()
                            : name.Contains("embed", StringComparison.Ordinal) || name.StartsWith("lm_head", StringComparison.Ordinal) ? 0.02 * rng.NextGaussian()
                            : rowScale * rng.NextGaussian() * (outliers.Contains(c) ? 8 : 1);
                        row[c] = (Half)v;
                    }

                    writer.Append(MemoryMarshal.AsBytes(row.AsSpan()));
                    bytes += row.Length * 2L;
                }
            }

            writer.Commit();
        }

        File.WriteAllText(Path.Combine(directory, "config.json"), string.Create(CultureInfo.InvariantCulture, $$"""
            {
              "architectures": ["{{s.Architecture}}"],
              "model_type": "{{(s.Architecture == "Qwen2ForCausalLM" ? "qwen2" : "llama")}}",
              "hidden_size": {{s.Dim}},
              "intermediate_size": {{s.Hidden}},
              "num_hidden_layers": {{s.Layers}},
              "num_attention_heads": {{s.Heads}},
              "num_key_value_heads": {{s.KvHeads}},
              "vocab_size": {{s.Vocab}},
              "max_position_embeddings": {{s.MaxPositions}},
              "rms_norm_eps": 1e-05,
              "rope_theta": {{s.RopeTheta:R}},
              "rope_scaling": {{s.RopeScalingJson}},
              "hidden_act": "silu",
              "tie_word_embeddings": {{(s.Tied ? "true" : "false")}},
              "bos_token_id": 1,
              "eos_token_id": 2,
              "torch_dtype": "float16",
              "synthetic": "glowq synth --shape {{s.Name}} --seed {{seed}}"
            }
            """));
        File.WriteAllBytes(Path.Combine(directory, "tokenizer.bin"), Llama2cTokenizerFile(s.Vocab));
        return bytes;
    }

    /// <summary>
    /// A valid llama2.c tokenizer of exactly <paramref name="vocab"/> tokens: the three specials, the 256 byte
    /// tokens, the printable ASCII characters (space first, which llama2.c's dummy prefix needs), then filler pieces
    /// that never merge; any text encodes and any id decodes.
    /// </summary>
    public static byte[] Llama2cTokenizerFile(int vocab)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vocab, 259 + 95);
        using var buffer = new MemoryStream();
        using var w = new BinaryWriter(buffer);
        w.Write(16);
        for (int i = 0; i < vocab; i++)
        {
            string piece = i switch
            {
                0 => "<unk>",
                1 => "\n<s>\n",
                2 => "\n</s>\n",
                < 259 => $"<0x{i - 3:X2}>",
                < 259 + 95 => ((char)(' ' + i - 259)).ToString(),
                _ => $"\u00a7{i}",
            };
            byte[] bytes = Encoding.UTF8.GetBytes(piece);
            w.Write(i < 259 + 95 ? 0f : -1e6f - i);
            w.Write(bytes.Length);
            w.Write(bytes);
        }

        return buffer.ToArray();
    }

    private static ulong Fnv1a(string s)
    {
        ulong h = 14695981039346656037UL;
        foreach (char c in s)
        {
            h = (h ^ c) * 1099511628211UL;
        }

        return h;
    }

    /// <summary>xorshift64* with Box–Muller normals: fixed across platforms and runtimes.</summary>
    private sealed class Random64(ulong seed)
    {
        private ulong _s = seed == 0 ? 0x9E3779B97F4A7C15UL : seed;
        private double? _spare;

        public uint NextUInt()
        {
            _s ^= _s >> 12;
            _s ^= _s << 25;
            _s ^= _s >> 27;
            return (uint)((_s * 0x2545F4914F6CDD1DUL) >> 32);
        }

        public double NextGaussian()
        {
            if (_spare is double spare)
            {
                _spare = null;
                return spare;
            }

            double u1 = (NextUInt() + 0.5) / 4294967296.0, u2 = NextUInt() / 4294967296.0;
            double radius = Math.Sqrt(-2 * Math.Log(u1));
            _spare = radius * Math.Sin(2 * Math.PI * u2);
            return radius * Math.Cos(2 * Math.PI * u2);
        }
    }
}
