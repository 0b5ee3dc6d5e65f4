using GlowQ.Format;

namespace GlowQ.Engine;

/// <summary>How the engine stores projection and embedding weights in memory.</summary>
public enum WeightStorage
{
    /// <summary>fp16 when the checkpoint is fp16, fp32 otherwise (BF16 widens to fp32 exactly).</summary>
    Auto,
    F32,
    F16,
}

/// <summary>The weights of one decoder layer.</summary>
public sealed record LayerWeights(
    float[] AttentionNorm,
    WeightMatrix Query,
    WeightMatrix Key,
    WeightMatrix Value,
    WeightMatrix Output,
    float[] FfnNorm,
    WeightMatrix Gate,
    WeightMatrix Up,
    WeightMatrix Down);

/// <summary>All weights of a Llama-family model, loaded from a checkpoint with every shape checked against its config.</summary>
public sealed class LlamaWeights
{
    public LlamaWeights(ModelConfig config, WeightMatrix embedding, LayerWeights[] layers, float[] finalNorm, WeightMatrix outputHead)
    {
        Config = config;
        Embedding = embedding;
        Layers = layers;
        FinalNorm = finalNorm;
        OutputHead = outputHead;
    }

    public ModelConfig Config { get; }

    /// <summary>[vocab × dim]; also the output head when embeddings are tied.</summary>
    public WeightMatrix Embedding { get; }

    public IReadOnlyList<LayerWeights> Layers { get; }

    public float[] FinalNorm { get; }

    public WeightMatrix OutputHead { get; }

    public long ByteSize =>
        Embedding.ByteSize + (ReferenceEquals(OutputHead, Embedding) ? 0 : OutputHead.ByteSize) + FinalNorm.Length * 4L
        + Layers.Sum(l => l.Query.ByteSize + l.Key.ByteSize + l.Value.ByteSize + l.Output.ByteSize
                          + l.Gate.ByteSize + l.Up.ByteSize + l.Down.ByteSize + (l.AttentionNorm.Length + l.FfnNorm.Length) * 4L);

    /// <summary>
    /// A model of one decoder layer (no vocabulary: a 1-row dummy embedding), for running that layer alone over stored
    /// hidden states with <see cref="LlamaModel.RunLayer"/> while the rest of the model stays on disk.
    /// </summary>
    public static LlamaWeights SingleLayer(ModelConfig config, LayerWeights layer)
    {
        ModelConfig one = config with { Layers = 1, VocabSize = 1, TiedEmbeddings = true };
        var embedding = WeightMatrix.FromSingle(1, config.Dim, new float[config.Dim]);
        return new LlamaWeights(one, embedding, [layer], [.. Enumerable.Repeat(1f, config.Dim)], embedding);
    }

    /// <summary>Layer <paramref name="l"/>'s weights alone, read from the checkpoint (fp32 or fp16 as <paramref name="storage"/> says).</summary>
    public static LayerWeights LoadLayer(ICheckpoint checkpoint, int l, WeightStorage storage = WeightStorage.F32) =>
        new Loader(checkpoint, storage).Layer(l);

    public static LlamaWeights Load(ICheckpoint checkpoint, WeightStorage storage = WeightStorage.Auto)
    {
        var loader = new Loader(checkpoint, storage);
        ModelConfig c = checkpoint.Config;
        var layers = new LayerWeights[c.Layers];
        for (int l = 0; l < c.Layers; l++)
        {
            layers[l] = loader.Layer(l);
        }

        WeightMatrix embedding = loader.Matrix(LlamaTensorNames.Embedding, c.VocabSize, c.Dim);
        WeightMatrix head = c.TiedEmbeddings ? embedding : loader.Matrix(LlamaTensorNames.OutputHead, c.VocabSize, c.Dim);
        return new LlamaWeights(c, embedding, layers, loader.Vector(LlamaTensorNames.FinalNorm, c.Dim), head);
    }

    /// <summary>Reads tensors with their shapes checked against the config.</summary>
    private sealed class Loader(ICheckpoint checkpoint, WeightStorage storage)
    {
        private readonly bool _half = storage == WeightStorage.F16
            || (storage == WeightStorage.Auto && checkpoint.FindTensor(LlamaTensorNames.Query(0))?.DType == TensorDType.F16);

        public WeightMatrix Matrix(string name, int rows, int cols, bool bias = false)
        {
            TensorView t = checkpoint.RequireTensor(name, rows, cols);
            float[]? b = bias ? Vector(LlamaTensorNames.Bias(name), rows) : null;
            if (_half)
            {
                var data = new Half[(long)rows * cols];
                t.CopyTo(data);
                return WeightMatrix.FromHalf(rows, cols, data, b);
            }

            var f = new float[(long)rows * cols];
            t.CopyTo(f);
            return WeightMatrix.FromSingle(rows, cols, f, b);
        }

        public float[] Vector(string name, int length)
        {
            var v = new float[length];
            checkpoint.RequireTensor(name, length).CopyTo(v);
            return v;
        }

        public LayerWeights Layer(int l)
        {
            ModelConfig c = checkpoint.Config;
            return new LayerWeights(
                Vector(LlamaTensorNames.AttentionNorm(l), c.Dim),
                Matrix(LlamaTensorNames.Query(l), c.QDim, c.Dim, c.QkvBias),
                Matrix(LlamaTensorNames.Key(l), c.KvDim, c.Dim, c.QkvBias),
                Matrix(LlamaTensorNames.Value(l), c.KvDim, c.Dim, c.QkvBias),
                Matrix(LlamaTensorNames.Output(l), c.Dim, c.QDim),
                Vector(LlamaTensorNames.FfnNorm(l), c.Dim),
                Matrix(LlamaTensorNames.Gate(l), c.HiddenDim, c.Dim),
                Matrix(LlamaTensorNames.Up(l), c.HiddenDim, c.Dim),
                Matrix(LlamaTensorNames.Down(l), c.Dim, c.HiddenDim));
        }
    }
}
