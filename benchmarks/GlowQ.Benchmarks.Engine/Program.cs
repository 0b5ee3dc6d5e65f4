// Decode and prefill speed of the fp32/fp16 CPU reference engine on a synthetic Llama-shaped model, or of a .glq file
// through the int4 runtime next to the fp32 engine running the same file's dense simulation (Q(W) + A·B).
// Usage: dotnet run -c Release --project benchmarks/GlowQ.Benchmarks.Engine -- [--dim 2048] [--layers 4]
//        [--heads 32] [--kv-heads 8] [--hidden 8192] [--vocab 32000] [--dtype f16|f32] [--threads 1,2]
//        [--prompt 128] [--gen 64] [--repeats 5] [--model PATH]
//        [--glq FILE.glq [--engines int4,fp32] [--restore all|none|default] [--widen-head yes|no]]
using System.Diagnostics;
using System.Globalization;
using GlowQ.Converter;
using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Model;

var options = BenchmarkOptions.Parse(args);
var rows = new List<string>();
if (options.Glq is { } glqPath)
{
    using GlqFile file = GlqFile.Open(glqPath);
    GlqModel glq = GlqModel.Read(file);
    ModelConfig c = glq.Config;
    byte[]? mask = options.Restore switch
    {
        "all" => [.. Enumerable.Repeat((byte)1, glq.Units.Count)],
        "none" => new byte[glq.Units.Count],
        _ => null,
    };
    Console.Error.WriteLine($"{file.Name}: {glq.Method}, dim {c.Dim}, {c.Layers} layers, {c.Heads}/{c.KvHeads} heads, hidden {c.HiddenDim}, vocab {c.VocabSize}; "
                            + $"{(mask ?? glq.DefaultMask).Count(m => m != 0)}/{glq.Units.Count} units restored");
    LlamaWeights? dense = options.Engines.Contains("fp32") ? SimulatedQuantizedModel.Load(file, mask) : null;
    foreach (int threads in options.Threads)
    {
        var inference = new InferenceOptions { ContextLength = options.Prompt + options.Gen + 1, Threads = threads };
        foreach (string engine in options.Engines)
        {
            using ILanguageModel model = engine == "int4" ? GlqRuntimeModel.Open(glqPath, mask, inference, options.WidenHead) : new LlamaModel(dense!, inference);
            // Bytes a decode step streams: every weight but an untied embedding, of which only one row is read.
            long untiedEmbedding = c.TiedEmbeddings ? 0 : (engine == "int4" ? (long)file.RequireTensor(LlamaTensorNames.Embedding).Length : dense!.Embedding.ByteSize);
            rows.Add(Measure(model, $"{engine} | {threads}", model.WeightBytes - untiedEmbedding, options));
        }
    }
}
else
{
    LlamaWeights weights = options.Model is { } path
        ? LoadCheckpoint(path, options.DType)
        : SyntheticLlama.Create(options);
    ModelConfig c = weights.Config;
    Console.Error.WriteLine($"model: dim {c.Dim}, {c.Layers} layers, {c.Heads}/{c.KvHeads} heads, hidden {c.HiddenDim}, vocab {c.VocabSize}, "
                            + $"{weights.ByteSize / 1e6:F1} MB weights ({options.DType})");
    foreach (int threads in options.Threads)
    {
        using var model = new LlamaModel(weights, new InferenceOptions { ContextLength = options.Prompt + options.Gen + 1, Threads = threads });
        // Bytes a decode step streams: every layer's weights and the output head; of the embedding only one row is read.
        long bytesPerToken = ReferenceEquals(weights.OutputHead, weights.Embedding) ? weights.ByteSize : weights.ByteSize - weights.Embedding.ByteSize;
        rows.Add(Measure(model, $"{options.DType} | {threads}", bytesPerToken, options));
    }
}

Console.WriteLine($"prompt {options.Prompt} tokens, {options.Gen} generated, {options.Repeats} repeats after one warm-up; medians (min–max)");
Console.WriteLine();
Console.WriteLine("| weights | threads | prefill tok/s | range | decode tok/s | range | weight GB/s in decode |");
Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
rows.ForEach(Console.WriteLine);

static string Measure(ILanguageModel model, string label, long bytesPerToken, BenchmarkOptions options)
{
    ModelConfig c = model.Config;
    var rng = new Random(1);
    int[] prompt = [.. Enumerable.Range(0, options.Prompt).Select(_ => rng.Next(c.VocabSize))];
    var logits = new float[c.VocabSize];
    var prefill = new List<double>();
    var decode = new List<double>();
    for (int r = -1; r < options.Repeats; r++) // r = -1 is the warm-up
    {
        var clock = Stopwatch.StartNew();
        model.Forward(prompt, 0, logits);
        double prefillSeconds = clock.Elapsed.TotalSeconds;
        int token = TensorArgMax(logits);
        clock.Restart();
        for (int i = 0; i < options.Gen; i++)
        {
            model.Forward([token], options.Prompt + i, logits);
            token = TensorArgMax(logits);
        }

        double decodeSeconds = clock.Elapsed.TotalSeconds;
        if (r >= 0)
        {
            prefill.Add(options.Prompt / prefillSeconds);
            decode.Add(options.Gen / decodeSeconds);
        }
    }

    double medianDecode = Median(decode);
    return string.Create(CultureInfo.InvariantCulture,
        $"| {label} | {Median(prefill):F1} | {prefill.Min():F1}–{prefill.Max():F1} | {medianDecode:F2} | {decode.Min():F2}–{decode.Max():F2} | {bytesPerToken * medianDecode / 1e9:F2} |");
}

static LlamaWeights LoadCheckpoint(string path, string dtype)
{
    using ICheckpoint checkpoint = CheckpointExtensions.Open(path);
    return LlamaWeights.Load(checkpoint, dtype == "f16" ? WeightStorage.F16 : WeightStorage.F32);
}

static int TensorArgMax(float[] logits) => System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits);

static double Median(List<double> values)
{
    var sorted = values.Order().ToArray();
    return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
}

internal sealed record BenchmarkOptions(
    int Dim, int Layers, int Heads, int KvHeads, int Hidden, int Vocab, string DType, int[] Threads, int Prompt, int Gen, int Repeats, string? Model,
    string? Glq = null, string[]? EngineList = null, string Restore = "default", bool WidenHead = false)
{
    public static BenchmarkOptions Parse(string[] args)
    {
        var o = new BenchmarkOptions(2048, 4, 32, 8, 8192, 32000, "f16", [1, Environment.ProcessorCount], 128, 64, 5, null);
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            string v = args[i + 1];
            o = args[i] switch
            {
                "--dim" => o with { Dim = int.Parse(v, CultureInfo.InvariantCulture) },
                "--layers" => o with { Layers = int.Parse(v, CultureInfo.InvariantCulture) },
                "--heads" => o with { Heads = int.Parse(v, CultureInfo.InvariantCulture) },
                "--kv-heads" => o with { KvHeads = int.Parse(v, CultureInfo.InvariantCulture) },
                "--hidden" => o with { Hidden = int.Parse(v, CultureInfo.InvariantCulture) },
                "--vocab" => o with { Vocab = int.Parse(v, CultureInfo.InvariantCulture) },
                "--dtype" => o with { DType = v },
                "--threads" => o with { Threads = [.. v.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).Distinct()] },
                "--prompt" => o with { Prompt = int.Parse(v, CultureInfo.InvariantCulture) },
                "--gen" => o with { Gen = int.Parse(v, CultureInfo.InvariantCulture) },
                "--repeats" => o with { Repeats = int.Parse(v, CultureInfo.InvariantCulture) },
                "--model" => o with { Model = v },
                "--glq" => o with { Glq = v },
                "--engines" => o with { EngineList = v.Split(',') },
                "--restore" => o with { Restore = v },
                "--widen-head" => o with { WidenHead = v == "yes" },
                _ => throw new ArgumentException($"unknown option {args[i]}"),
            };
        }

        return o;
    }

    public string[] Engines => EngineList ?? ["int4", "fp32"];
}

/// <summary>Random Llama-shaped weights (uniform, scaled by 1/√fan-in so activations stay O(1)).</summary>
internal static class SyntheticLlama
{
    public static LlamaWeights Create(BenchmarkOptions o)
    {
        var config = new ModelConfig
        {
            Architecture = "LlamaForCausalLM", Dim = o.Dim, HiddenDim = o.Hidden, Layers = o.Layers, Heads = o.Heads,
            KvHeads = o.KvHeads, HeadDim = o.Dim / o.Heads, VocabSize = o.Vocab, MaxSequenceLength = 4096,
            NormEps = 1e-5f, RopeTheta = 10000, RopeLayout = RopeLayout.RotateHalf, TiedEmbeddings = false,
        };
        ulong state = 0x1234_5678_9ABC_DEF1UL;
        bool half = o.DType == "f16";
        WeightMatrix Matrix(int rows, int cols)
        {
            float scale = 1f / MathF.Sqrt(cols);
            if (half)
            {
                var h = new Half[(long)rows * cols];
                for (long i = 0; i < h.Length; i++)
                {
                    h[i] = (Half)(Next(ref state) * scale);
                }

                return WeightMatrix.FromHalf(rows, cols, h);
            }

            var f = new float[(long)rows * cols];
            for (long i = 0; i < f.Length; i++)
            {
                f[i] = Next(ref state) * scale;
            }

            return WeightMatrix.FromSingle(rows, cols, f);
        }

        float[] Ones(int n) => [.. Enumerable.Repeat(1f, n)];
        var layers = new LayerWeights[o.Layers];
        for (int l = 0; l < o.Layers; l++)
        {
            layers[l] = new LayerWeights(
                Ones(o.Dim), Matrix(config.QDim, o.Dim), Matrix(config.KvDim, o.Dim), Matrix(config.KvDim, o.Dim),
                Matrix(o.Dim, config.QDim), Ones(o.Dim), Matrix(o.Hidden, o.Dim), Matrix(o.Hidden, o.Dim), Matrix(o.Dim, o.Hidden));
        }

        return new LlamaWeights(config, Matrix(o.Vocab, o.Dim), layers, Ones(o.Dim), Matrix(o.Vocab, o.Dim));
    }

    private static float Next(ref ulong s)
    {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return (s >> 40) / 8388608f - 1f;
    }
}
