using System.Buffers.Binary;
using System.Text;
using GlowQ.Format;
using GlowQ.Format.Glq;

namespace GlowQ.TestSupport;

/// <summary>Shape and content choices of a <see cref="TinyGlqModel"/>; the defaults make the committed test vector.</summary>
public sealed record TinyGlqOptions
{
    /// <summary>Seed of every generated value (codes, scales, zero points, factors, norms, embeddings, scores).</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary><c>glowq</c>, <c>layerwise</c> or <c>rtn</c> (no units, no factors).</summary>
    public string Method { get; init; } = "glowq";

    /// <summary>Requested rank; each unit's rank is this, clamped by its shape (<see cref="GlqModel.CanonicalUnits"/>).</summary>
    public int Rank { get; init; } = 4;

    public bool QkvBias { get; init; }

    public bool TiedEmbeddings { get; init; } = true;

    public int Layers { get; init; } = 2;

    /// <summary>Feed-forward size; the default 36 is not a multiple of the group size 8, so down_proj rows carry 4 padding codes.</summary>
    public int HiddenDim { get; init; } = 36;

    public int GroupSize { get; init; } = 8;

    /// <summary>Dtype of the embedding, head and norms: <c>f16</c> or <c>f32</c> (metadata quant.head).</summary>
    public string HeadDType { get; init; } = "f16";
}

/// <summary>One tensor of a <see cref="TinyGlqModel"/> with its bytes.</summary>
public sealed record TinyGlqTensor(string Name, GlqDType DType, long[] Shape, byte[] Data)
{
    public GlqTensorSpec Spec => new(Name, DType, Shape);
}

/// <summary>
/// A complete, valid .glq model (it passes <see cref="GlqModel.Read"/>), generated deterministically from a seed:
/// a tiny Llama (dim 16, 4/2 heads, vocab 32), 4-bit codes with zero points and f16 scales, GlowQ factors, scores,
/// a default mask, calibration keys, and a 32-token llama2.c tokenizer.bin built here. The same options always give
/// the same bytes (formats/test-vectors/tiny-glowq-v1.glq is the default model). Metadata and tensors are mutable,
/// so tests can break one thing and write the result.
/// </summary>
public sealed class TinyGlqModel
{
    public const int Dim = 16;
    public const int Heads = 4;
    public const int KvHeads = 2;
    public const int VocabSize = 32;
    public const string TokenizerTensor = "tokenizer.file";
    public const string Converter = "GlowQ.TestSupport TinyGlqModel 1";

    private TinyGlqModel(TinyGlqOptions options, ModelConfig config, IReadOnlyList<GlqUnit> units, GlqMetadata metadata, List<TinyGlqTensor> tensors)
    {
        Options = options;
        Config = config;
        Units = units;
        Metadata = metadata;
        Tensors = tensors;
    }

    public TinyGlqOptions Options { get; }

    public ModelConfig Config { get; }

    public IReadOnlyList<GlqUnit> Units { get; }

    public GlqMetadata Metadata { get; private set; }

    /// <summary>The tensors in storage order (layer by layer, as a converter streams them).</summary>
    public List<TinyGlqTensor> Tensors { get; }

    /// <summary>Writes the default (or <paramref name="options"/>) model to <paramref name="path"/> and returns the path.</summary>
    public static string WriteFile(string path, TinyGlqOptions? options = null) => Create(options).Write(path);

    public static TinyGlqModel Create(TinyGlqOptions? options = null)
    {
        TinyGlqOptions o = options ?? new TinyGlqOptions();
        var config = new ModelConfig
        {
            Architecture = "LlamaForCausalLM",
            Dim = Dim,
            HiddenDim = o.HiddenDim,
            Layers = o.Layers,
            Heads = Heads,
            KvHeads = KvHeads,
            HeadDim = Dim / Heads,
            VocabSize = VocabSize,
            MaxSequenceLength = 64,
            NormEps = 1e-5f,
            RopeTheta = 10000,
            RopeLayout = RopeLayout.RotateHalf,
            TiedEmbeddings = o.TiedEmbeddings,
            QkvBias = o.QkvBias,
            BosTokenId = 1,
            EosTokenIds = [2],
        };
        IReadOnlyList<GlqUnit> units = GlqModel.CanonicalUnits(config, o.Method, o.Rank);
        var random = new SplitMix64(o.Seed);
        var tensors = new List<TinyGlqTensor>();
        GlqDType head = o.HeadDType == "f32" ? GlqDType.F32 : GlqDType.F16;

        void Floats(string name, GlqDType dtype, double scale, double offset, params long[] shape) =>
            tensors.Add(new TinyGlqTensor(name, dtype, shape, EncodeFloats(dtype, Count(shape), () => offset + scale * random.NextSigned())));

        Floats(LlamaTensorNames.Embedding, head, 1, 0, VocabSize, Dim);
        for (int l = 0; l < config.Layers; l++)
        {
            Floats(LlamaTensorNames.AttentionNorm(l), head, 0.1, 1, Dim);
            Floats(LlamaTensorNames.FfnNorm(l), head, 0.1, 1, Dim);
            foreach (GlqLinear linear in GlqModel.LayerLinears(config, l))
            {
                AddQuantized(tensors, linear, o.GroupSize, random);
                if (linear.HasBias)
                {
                    Floats(linear.Bias, GlqDType.F32, 0.1, 0, linear.Rows);
                }
            }

            IReadOnlyList<GlqLinear> linears = GlqModel.LayerLinears(config, l);
            foreach (GlqUnit unit in units.Where(u => u.Members[0].StartsWith($"model.layers.{l}.", StringComparison.Ordinal)))
            {
                int cols = linears.First(x => x.Module == unit.Members[0]).Cols;
                Floats(unit.BName, GlqDType.F16, 0.25, 0, unit.Rank, cols);
                foreach (string member in unit.Members)
                {
                    Floats(unit.AName(member), GlqDType.F16, 0.05, 0, linears.First(x => x.Module == member).Rows, unit.Rank);
                }
            }
        }

        Floats(LlamaTensorNames.FinalNorm, head, 0.1, 1, Dim);
        if (!config.TiedEmbeddings)
        {
            Floats(LlamaTensorNames.OutputHead, head, 1, 0, VocabSize, Dim);
        }

        byte[] tokenizer = TokenizerBytes();
        tensors.Add(new TinyGlqTensor(TokenizerTensor, GlqDType.U8, [tokenizer.Length], tokenizer));

        // Scores: gsvd from the generator, norm_error decreasing with depth; the default mask restores the top half by gsvd.
        float[] gsvd = [.. units.Select(_ => (float)Math.Round(1 + random.NextSigned() * 0.5, 4))];
        float[] normError = [.. units.Select((_, i) => (float)Math.Round(0.5 / (1 + i), 4))];
        int restore = units.Count / 2;
        var top = new HashSet<int>(Enumerable.Range(0, units.Count).OrderByDescending(i => gsvd[i]).ThenBy(i => i).Take(restore));
        byte[] mask = [.. Enumerable.Range(0, units.Count).Select(i => top.Contains(i) ? (byte)1 : (byte)0)];

        var m = new GlqMetadata()
            .Set("general.name", GlqValue.String($"tiny-glowq-{o.Method} (seed {o.Seed})"))
            .Set("general.converter", GlqValue.String(Converter))
            .Set("general.source.format", GlqValue.String("llama2.c"))
            .Set("general.license", GlqValue.String("CC0-1.0"));
        GlqModel.WriteConfig(m, config);
        m.Set("quant.bits", GlqValue.U8(4))
            .Set("quant.group_size", GlqValue.U32((uint)o.GroupSize))
            .Set("quant.scheme", GlqValue.String("asymmetric"))
            .Set("quant.scale_dtype", GlqValue.String("f16"))
            .Set("quant.base", GlqValue.String("rtn"))
            .Set("quant.head", GlqValue.String(o.HeadDType))
            .Set("glowq.method", GlqValue.String(o.Method))
            .Set("glowq.rank", GlqValue.U32((uint)o.Rank))
            .Set("glowq.units", GlqValue.Strings(units.Select(u => u.Name)))
            .Set("glowq.metrics", GlqValue.Strings(["gsvd", "norm_error"]))
            .Set("glowq.score.gsvd", GlqValue.Floats(gsvd))
            .Set("glowq.score.norm_error", GlqValue.Floats(normError))
            .Set("glowq.mask.default", GlqValue.Bytes(mask))
            .Set("glowq.mask.metric", GlqValue.String("gsvd"))
            .Set("glowq.mask.fraction", GlqValue.F32(0.5f))
            .Set("glowq.calib.source.sha256", GlqValue.String("generated"))
            .Set("glowq.calib.samples", GlqValue.U32(4))
            .Set("glowq.calib.seq_len", GlqValue.U32(16))
            .Set("glowq.calib.seed", GlqValue.U64(o.Seed))
            .Set("glowq.calib.shrinkage", GlqValue.F32(0.01f))
            .Set("glowq.calib.mode", GlqValue.String("fp"))
            .Set("tokenizer.type", GlqValue.String("llama2c"))
            .Set("tokenizer.file", GlqValue.String(TokenizerTensor))
            .Set("chat.format", GlqValue.String("plain"));
        foreach (GlqUnit unit in units)
        {
            m.Set($"glowq.unit.{unit.Name}.members", GlqValue.Strings(unit.Members))
                .Set($"glowq.unit.{unit.Name}.rank", GlqValue.U32((uint)unit.Rank));
        }

        return new TinyGlqModel(o, config, units, m, tensors);
    }

    /// <summary>Writes the model with <see cref="GlqWriter"/> (tensors in storage order) and returns <paramref name="path"/>.</summary>
    public string Write(string path)
    {
        using var writer = GlqWriter.Create(path, Metadata, [.. Tensors.Select(t => t.Spec)]);
        foreach (TinyGlqTensor t in Tensors)
        {
            writer.WriteTensor(t.Name, t.Data);
        }

        writer.Commit();
        return path;
    }

    public TinyGlqTensor Tensor(string name) =>
        Tensors.Find(t => t.Name == name) ?? throw new ArgumentException($"no tensor '{name}' in the tiny model", nameof(name));

    public TinyGlqModel SetKey(string key, GlqValue value)
    {
        Metadata.Set(key, value);
        return this;
    }

    public TinyGlqModel RemoveKey(string key)
    {
        if (!Metadata.Contains(key))
        {
            throw new ArgumentException($"no metadata key '{key}' in the tiny model", nameof(key));
        }

        var copy = new GlqMetadata();
        foreach ((string k, GlqValue v) in Metadata.Entries.Where(e => e.Key != key))
        {
            copy.Set(k, v);
        }

        Metadata = copy;
        return this;
    }

    public TinyGlqModel RemoveTensor(string name)
    {
        Tensors.Remove(Tensor(name));
        return this;
    }

    /// <summary>Replaces a tensor by one of another dtype and shape, keeping its place; the bytes are zero.</summary>
    public TinyGlqModel ReplaceTensor(string name, GlqDType dtype, params long[] shape)
    {
        int index = Tensors.IndexOf(Tensor(name));
        Tensors[index] = new TinyGlqTensor(name, dtype, shape, new byte[GlqDTypes.ByteSize(dtype, shape)!.Value]);
        return this;
    }

    /// <summary>
    /// A valid llama2.c tokenizer.bin of 32 pieces: &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;, the space, 15 letters and 13
    /// merges (" the", "he", …). Format: int32 max_token_length, then per piece f32 score, int32 length, bytes.
    /// </summary>
    public static byte[] TokenizerBytes()
    {
        string[] letters = ["e", "t", "a", "o", "n", "i", "h", "s", "r", "d", "l", "u", "c", "m", "w"];
        string[] merges = ["he", " t", " a", "th", "in", "er", "an", " th", " the", "on", "re", " w", "nd"];
        var pieces = new List<(string Piece, float Score)> { ("<unk>", 0), ("\n<s>\n", 0), ("\n</s>\n", 0), (" ", -1000) };
        pieces.AddRange(letters.Select((p, i) => (p, -1001f - i)));
        pieces.AddRange(merges.Select((p, i) => (p, -1f - i)));
        int maxLength = pieces.Max(p => Encoding.UTF8.GetByteCount(p.Piece));
        var bytes = new List<byte>();
        var word = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(word, maxLength);
        bytes.AddRange(word);
        foreach ((string piece, float score) in pieces)
        {
            byte[] text = Encoding.UTF8.GetBytes(piece);
            BinaryPrimitives.WriteSingleLittleEndian(word, score);
            bytes.AddRange(word);
            BinaryPrimitives.WriteInt32LittleEndian(word, text.Length);
            bytes.AddRange(word);
            bytes.AddRange(text);
        }

        return [.. bytes];
    }

    // qweight codes are uniform 0..15 in the real columns and the group's zero point in the padding columns;
    // zero points are 6..9, scales 0.01..0.03 (f16).
    private static void AddQuantized(List<TinyGlqTensor> tensors, GlqLinear linear, int groupSize, SplitMix64 random)
    {
        int groups = (linear.Cols + groupSize - 1) / groupSize;
        int padded = groups * groupSize;
        var zeros = new byte[linear.Rows, groups];
        for (int r = 0; r < linear.Rows; r++)
        {
            for (int g = 0; g < groups; g++)
            {
                zeros[r, g] = (byte)(6 + random.Next(4));
            }
        }

        var qweight = new byte[linear.Rows * (padded / 2)];
        for (int r = 0; r < linear.Rows; r++)
        {
            for (int c = 0; c < padded; c++)
            {
                int code = c < linear.Cols ? random.Next(16) : zeros[r, c / groupSize];
                qweight[r * (padded / 2) + c / 2] |= (byte)(code << (4 * (c % 2)));
            }
        }

        int zeroRow = (groups + 1) / 2;
        var zeroBytes = new byte[linear.Rows * zeroRow];
        for (int r = 0; r < linear.Rows; r++)
        {
            for (int g = 0; g < groups; g++)
            {
                zeroBytes[r * zeroRow + g / 2] |= (byte)(zeros[r, g] << (4 * (g % 2)));
            }
        }

        tensors.Add(new TinyGlqTensor(linear.QWeight, GlqDType.U4, [linear.Rows, padded], qweight));
        tensors.Add(new TinyGlqTensor(linear.Scales, GlqDType.F16, [linear.Rows, groups],
            EncodeFloats(GlqDType.F16, linear.Rows * groups, () => 0.02 + 0.01 * random.NextSigned())));
        tensors.Add(new TinyGlqTensor(linear.Zeros, GlqDType.U4, [linear.Rows, groups], zeroBytes));
    }

    private static int Count(long[] shape) => checked((int)shape.Aggregate(1L, (a, b) => a * b));

    private static byte[] EncodeFloats(GlqDType dtype, int count, Func<double> next)
    {
        int size = dtype == GlqDType.F32 ? 4 : 2;
        var bytes = new byte[count * size];
        for (int i = 0; i < count; i++)
        {
            float value = (float)next();
            if (dtype == GlqDType.F32)
            {
                BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), value);
            }
            else
            {
                BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan(i * 2), (Half)value);
            }
        }

        return bytes;
    }

    /// <summary>SplitMix64: a fixed generator, so the bytes never depend on the runtime's Random.</summary>
    private sealed class SplitMix64(ulong seed)
    {
        private ulong _state = seed;

        public ulong NextUInt64()
        {
            ulong z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        public int Next(int bound) => (int)(NextUInt64() % (ulong)bound);

        /// <summary>Uniform in [-1, 1) on a grid of 2^-20, computed exactly.</summary>
        public double NextSigned() => (long)(NextUInt64() >> 43) / (double)(1 << 20) - 1;
    }
}
