namespace GlowQ.Format;

/// <summary>
/// A llama2.c legacy checkpoint: seven int32 fields (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
/// seq_len), then fp32 tensors, each stacked over layers: token embedding, rms_att, wq, wk, wv, wo, rms_ffn,
/// w1 (gate), w2 (down), w3 (up), rms_final, the RoPE cos/sin tables, and — when vocab_size is negative — a
/// separate classifier. Tensors are exposed under HF names; RoPE stays in the interleaved-pair layout.
/// </summary>
public sealed class Llama2cCheckpoint : ICheckpoint
{
    private const int HeaderBytes = 7 * sizeof(int);

    private readonly MappedFile _file;
    private readonly Dictionary<string, TensorView> _tensors;

    private Llama2cCheckpoint(MappedFile file, ModelConfig config, Dictionary<string, TensorView> tensors)
    {
        _file = file;
        Config = config;
        _tensors = tensors;
    }

    public string SourcePath => _file.Path;

    public string FormatName => "llama2.c";

    public ModelConfig Config { get; }

    public IEnumerable<string> TensorNames => _tensors.Keys;

    public TensorView? FindTensor(string name) => _tensors.GetValueOrDefault(name);

    public static Llama2cCheckpoint Open(string path) => MappedFile.OpenAndParse(path, Parse);

    private static Llama2cCheckpoint Parse(MappedFile file)
    {
        string path = file.Path;
        if (file.Length < HeaderBytes)
        {
            throw ModelFormatException.For(path, $"file is {file.Length} bytes, shorter than the 28-byte llama2.c header");
        }

        int dim = file.ReadInt32(0), hidden = file.ReadInt32(4), layers = file.ReadInt32(8), heads = file.ReadInt32(12);
        int kvHeads = file.ReadInt32(16), signedVocab = file.ReadInt32(20), seqLen = file.ReadInt32(24);
        bool tied = signedVocab > 0;
        int vocab = Math.Abs(signedVocab);
        const int Limit = 1 << 20;
        if (dim is <= 0 or > Limit || hidden is <= 0 or > Limit || layers is <= 0 or > 4096 || heads is <= 0 or > 4096
            || kvHeads <= 0 || kvHeads > heads || vocab is 0 or > (1 << 24) || seqLen is <= 0 or > (1 << 24) || dim % heads != 0)
        {
            throw ModelFormatException.For(path, $"header (dim {dim}, hidden {hidden}, layers {layers}, heads {heads}, kv_heads {kvHeads}, vocab {signedVocab}, seq_len {seqLen}) is not a valid llama2.c checkpoint");
        }

        int headDim = dim / heads;
        var config = new ModelConfig
        {
            Architecture = "LlamaForCausalLM",
            Dim = dim,
            HiddenDim = hidden,
            Layers = layers,
            Heads = heads,
            KvHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = vocab,
            MaxSequenceLength = seqLen,
            NormEps = 1e-5f,
            RopeTheta = 10000.0,
            RopeLayout = RopeLayout.InterleavedPairs,
            TiedEmbeddings = tied,
            BosTokenId = 1,
            EosTokenIds = [2],
        };
        config.Validate(path);

        var tensors = new Dictionary<string, TensorView>(StringComparer.Ordinal);
        long offset = HeaderBytes;
        int kvDim = kvHeads * headDim;

        TensorView Take(string name, params long[] shape)
        {
            var view = new TensorView(file, name, TensorDType.F32, shape, offset);
            offset += view.ByteLength;
            return view;
        }

        void Stacked(Func<int, string> name, params long[] shape)
        {
            for (int l = 0; l < layers; l++)
            {
                var t = Take(name(l), shape);
                tensors[t.Name] = t;
            }
        }

        tensors[LlamaTensorNames.Embedding] = Take(LlamaTensorNames.Embedding, vocab, dim);
        Stacked(LlamaTensorNames.AttentionNorm, dim);
        Stacked(LlamaTensorNames.Query, dim, dim);
        Stacked(LlamaTensorNames.Key, kvDim, dim);
        Stacked(LlamaTensorNames.Value, kvDim, dim);
        Stacked(LlamaTensorNames.Output, dim, dim);
        Stacked(LlamaTensorNames.FfnNorm, dim);
        Stacked(LlamaTensorNames.Gate, hidden, dim);
        Stacked(LlamaTensorNames.Down, dim, hidden);
        Stacked(LlamaTensorNames.Up, hidden, dim);
        tensors[LlamaTensorNames.FinalNorm] = Take(LlamaTensorNames.FinalNorm, dim);
        offset += 2L * seqLen * (headDim / 2) * sizeof(float); // RoPE tables: recomputed, never read
        if (!tied)
        {
            tensors[LlamaTensorNames.OutputHead] = Take(LlamaTensorNames.OutputHead, vocab, dim);
        }

        if (offset != file.Length)
        {
            throw ModelFormatException.For(path, $"header implies {offset} bytes ({(tied ? "tied" : "separate")} classifier), file has {file.Length} (truncated, or header fields wrong)");
        }

        return new Llama2cCheckpoint(file, config, tensors);
    }

    public void Dispose() => _file.Dispose();
}
