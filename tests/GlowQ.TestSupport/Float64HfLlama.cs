using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace GlowQ.TestSupport;

/// <summary>
/// An independent float64 forward pass of an HF Llama-family checkpoint (Llama, Mistral, Qwen2), written from the HF
/// transformers formulas and sharing no code with the product: its own safetensors and config.json reading, rotate-half
/// RoPE with Llama-3 scaling, grouped-query attention with an optional sliding window, q/k/v biases, tied or separate
/// output head. Scalar loops, whole-sequence recomputation: slow, for tiny models only.
/// </summary>
public sealed class Float64HfLlama
{
    private readonly Dictionary<string, double[]> _t = [];
    private readonly int _dim, _hidden, _layers, _heads, _kvHeads, _headDim, _vocab;
    private readonly double _eps;
    private readonly int? _window;
    private readonly bool _tied, _bias;
    private readonly double[] _invFreq;

    public Float64HfLlama(string directory)
    {
        using JsonDocument config = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(directory, "config.json")));
        JsonElement c = config.RootElement;
        string arch = c.GetProperty("architectures")[0].GetString()!;
        _dim = c.GetProperty("hidden_size").GetInt32();
        _hidden = c.GetProperty("intermediate_size").GetInt32();
        _layers = c.GetProperty("num_hidden_layers").GetInt32();
        _heads = c.GetProperty("num_attention_heads").GetInt32();
        _kvHeads = c.TryGetProperty("num_key_value_heads", out var kv) ? kv.GetInt32() : _heads;
        _headDim = c.TryGetProperty("head_dim", out var hd) ? hd.GetInt32() : _dim / _heads;
        _vocab = c.GetProperty("vocab_size").GetInt32();
        _eps = c.GetProperty("rms_norm_eps").GetDouble();
        _tied = c.TryGetProperty("tie_word_embeddings", out var tie) && tie.GetBoolean();
        _bias = arch == "Qwen2ForCausalLM";
        _window = arch == "MistralForCausalLM" && c.TryGetProperty("sliding_window", out var sw) && sw.ValueKind == JsonValueKind.Number ? sw.GetInt32() : null;
        double theta = c.TryGetProperty("rope_theta", out var th) ? th.GetDouble() : 10000;

        // transformers: inv_freq = 1 / theta^(arange(0, d, 2)/d), then _compute_llama3_parameters when rope_type is llama3.
        _invFreq = new double[_headDim / 2];
        for (int j = 0; j < _invFreq.Length; j++)
        {
            _invFreq[j] = 1.0 / Math.Pow(theta, 2.0 * j / _headDim);
        }

        if (c.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind == JsonValueKind.Object)
        {
            double factor = rs.GetProperty("factor").GetDouble();
            double low = rs.GetProperty("low_freq_factor").GetDouble();
            double high = rs.GetProperty("high_freq_factor").GetDouble();
            double old = rs.GetProperty("original_max_position_embeddings").GetDouble();
            for (int j = 0; j < _invFreq.Length; j++)
            {
                double wavelen = 2 * Math.PI / _invFreq[j];
                double llama = wavelen > old / low ? _invFreq[j] / factor : _invFreq[j];
                double smooth = (old / wavelen - low) / (high - low);
                double smoothed = (1 - smooth) * llama / factor + smooth * llama;
                bool medium = !(wavelen < old / high) && !(wavelen > old / low);
                _invFreq[j] = medium ? smoothed : llama;
            }
        }

        ReadSafetensors(Path.Combine(directory, "model.safetensors"));
    }

    /// <summary>Logits after each token (row t predicts token t+1).</summary>
    public double[][] Logits(IReadOnlyList<int> tokens)
    {
        int n = tokens.Count, kvDim = _kvHeads * _headDim, qDim = _heads * _headDim;
        var x = new double[n][];
        for (int t = 0; t < n; t++)
        {
            x[t] = _t["model.embed_tokens.weight"].AsSpan(tokens[t] * _dim, _dim).ToArray();
        }

        for (int l = 0; l < _layers; l++)
        {
            string p = $"model.layers.{l}.";
            var q = new double[n][];
            var k = new double[n][];
            var v = new double[n][];
            for (int t = 0; t < n; t++)
            {
                double[] h = RmsNorm(x[t], _t[p + "input_layernorm.weight"]);
                q[t] = Linear(p + "self_attn.q_proj", h, qDim, _dim);
                k[t] = Linear(p + "self_attn.k_proj", h, kvDim, _dim);
                v[t] = Linear(p + "self_attn.v_proj", h, kvDim, _dim);
                RotateHalf(q[t], t);
                RotateHalf(k[t], t);
            }

            for (int t = 0; t < n; t++)
            {
                var attention = new double[qDim];
                for (int h = 0; h < _heads; h++)
                {
                    int kvh = h / (_heads / _kvHeads);
                    int first = _window is int w ? Math.Max(0, t - w + 1) : 0;
                    var scores = new double[t + 1 - first];
                    for (int s = first; s <= t; s++)
                    {
                        double dot = 0;
                        for (int i = 0; i < _headDim; i++)
                        {
                            dot += q[t][h * _headDim + i] * k[s][kvh * _headDim + i];
                        }

                        scores[s - first] = dot / Math.Sqrt(_headDim);
                    }

                    double max = scores.Max();
                    double sum = scores.Sum(z => Math.Exp(z - max));
                    for (int s = first; s <= t; s++)
                    {
                        double a = Math.Exp(scores[s - first] - max) / sum;
                        for (int i = 0; i < _headDim; i++)
                        {
                            attention[h * _headDim + i] += a * v[s][kvh * _headDim + i];
                        }
                    }
                }

                double[] o = Linear(p + "self_attn.o_proj", attention, _dim, qDim);
                for (int i = 0; i < _dim; i++)
                {
                    x[t][i] += o[i];
                }

                double[] hn = RmsNorm(x[t], _t[p + "post_attention_layernorm.weight"]);
                double[] gate = Linear(p + "mlp.gate_proj", hn, _hidden, _dim);
                double[] up = Linear(p + "mlp.up_proj", hn, _hidden, _dim);
                for (int i = 0; i < _hidden; i++)
                {
                    gate[i] = gate[i] / (1 + Math.Exp(-gate[i])) * up[i];
                }

                double[] down = Linear(p + "mlp.down_proj", gate, _dim, _hidden);
                for (int i = 0; i < _dim; i++)
                {
                    x[t][i] += down[i];
                }
            }
        }

        string head = _tied ? "model.embed_tokens" : "lm_head";
        return [.. x.Select(row => Linear(head, RmsNorm(row, _t["model.norm.weight"]), _vocab, _dim, bias: false))];
    }

    private void RotateHalf(double[] vector, int position)
    {
        int half = _headDim / 2;
        for (int h = 0; h < vector.Length / _headDim; h++)
        {
            for (int j = 0; j < half; j++)
            {
                double angle = position * _invFreq[j];
                int a = h * _headDim + j, b = a + half;
                (vector[a], vector[b]) = (vector[a] * Math.Cos(angle) - vector[b] * Math.Sin(angle), vector[b] * Math.Cos(angle) + vector[a] * Math.Sin(angle));
            }
        }
    }

    private double[] Linear(string name, double[] x, int rows, int cols, bool bias = true)
    {
        double[] w = _t[name + ".weight"];
        double[]? b = bias && _bias && _t.TryGetValue(name + ".bias", out var found) ? found : null;
        var y = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double s = b?[r] ?? 0;
            for (int c = 0; c < cols; c++)
            {
                s += w[(long)r * cols + c] * x[c];
            }

            y[r] = s;
        }

        return y;
    }

    private double[] RmsNorm(double[] x, double[] weight)
    {
        double scale = 1.0 / Math.Sqrt(x.Sum(v => v * v) / x.Length + _eps);
        return [.. x.Select((v, i) => weight[i] * v * scale)];
    }

    private void ReadSafetensors(string path)
    {
        byte[] file = File.ReadAllBytes(path);
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        using JsonDocument header = JsonDocument.Parse(Encoding.UTF8.GetString(file, 8, headerLength));
        foreach (JsonProperty tensor in header.RootElement.EnumerateObject())
        {
            if (tensor.Name == "__metadata__")
            {
                continue;
            }

            string dtype = tensor.Value.GetProperty("dtype").GetString()!;
            int begin = 8 + headerLength + tensor.Value.GetProperty("data_offsets")[0].GetInt32();
            int end = 8 + headerLength + tensor.Value.GetProperty("data_offsets")[1].GetInt32();
            int size = dtype == "F32" ? 4 : 2;
            var values = new double[(end - begin) / size];
            for (int i = 0; i < values.Length; i++)
            {
                ReadOnlySpan<byte> at = file.AsSpan(begin + i * size);
                values[i] = dtype switch
                {
                    "F32" => BinaryPrimitives.ReadSingleLittleEndian(at),
                    "F16" => (double)BinaryPrimitives.ReadHalfLittleEndian(at),
                    "BF16" => BitConverter.UInt32BitsToSingle((uint)BinaryPrimitives.ReadUInt16LittleEndian(at) << 16),
                    _ => throw new NotSupportedException(dtype),
                };
            }

            _t[tensor.Name] = values;
        }
    }
}
