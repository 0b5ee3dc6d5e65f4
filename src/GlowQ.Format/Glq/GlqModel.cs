namespace GlowQ.Format.Glq;

/// <summary>How the base 4-bit weights were quantised (formats/glq-v1.md §4.1 quant.*).</summary>
public sealed record GlqQuantization(int Bits, int GroupSize, string Scheme, string ScaleDType, string BaseQuantizer, string HeadDType);

/// <summary>A GlowQ unit: modules that read one input and share one B factor (formats/glq-v1.md §7).</summary>
public sealed record GlqUnit(string Name, IReadOnlyList<string> Members, int Rank)
{
    public string BName => $"glowq.{Name}.B";

    public static string MemberShortName(string module) => module[(module.LastIndexOf('.') + 1)..];

    public string AName(string member) => $"glowq.{Name}.A.{MemberShortName(member)}";

    /// <summary>The unit's correction tensors: B, then one A per member.</summary>
    public IEnumerable<string> FactorTensorNames => [BName, .. Members.Select(AName)];
}

/// <summary>One quantised projection of a decoder layer, with its logical shape.</summary>
public sealed record GlqLinear(string Module, int Rows, int Cols, bool HasBias)
{
    /// <summary>Quantisation groups per row (the last one padded when <paramref name="groupSize"/> does not divide Cols).</summary>
    public int Groups(int groupSize) => (Cols + groupSize - 1) / groupSize;

    public string QWeight => Module + ".qweight";

    public string Scales => Module + ".scales";

    public string Zeros => Module + ".zeros";

    public string Bias => Module + ".bias";
}

/// <summary>
/// The model a .glq file describes, read from its metadata and cross-checked against its tensors
/// (formats/glq-v1.md §9 step 6): every required key with its type, every tensor with its dtype and shape.
/// </summary>
public sealed class GlqModel
{
    public static readonly IReadOnlyList<string> Methods = ["glowq", "layerwise", "rtn"];
    public static readonly IReadOnlyList<string> TokenizerTypes = ["llama2c", "sentencepiece", "hf-json"];
    public static readonly IReadOnlyList<string> ChatFormats = ["plain", "llama2", "llama3", "chatml"];

    private GlqModel(ModelConfig config, GlqQuantization quantization, string method, IReadOnlyList<GlqUnit> units,
        IReadOnlyDictionary<string, float[]> scores, byte[] defaultMask, string tokenizerType, string tokenizerTensor, string chatFormat)
    {
        Config = config;
        Quantization = quantization;
        Method = method;
        Units = units;
        Scores = scores;
        DefaultMask = defaultMask;
        TokenizerType = tokenizerType;
        TokenizerTensor = tokenizerTensor;
        ChatFormat = chatFormat;
    }

    public ModelConfig Config { get; }

    public GlqQuantization Quantization { get; }

    public string Method { get; }

    public IReadOnlyList<GlqUnit> Units { get; }

    /// <summary>Importance scores per metric, one per unit in <see cref="Units"/> order.</summary>
    public IReadOnlyDictionary<string, float[]> Scores { get; }

    /// <summary>1 restores the unit's correction, 0 runs plain int4; one entry per unit.</summary>
    public byte[] DefaultMask { get; }

    /// <summary>Bytes of the A and B tensors of the units <paramref name="mask"/> restores, as stored in <paramref name="file"/>.</summary>
    public long CorrectionBytes(GlqFile file, IReadOnlyList<byte> mask)
    {
        if (mask.Count != Units.Count)
        {
            throw new ArgumentException($"mask has {mask.Count} entries, the file has {Units.Count} units");
        }

        long bytes = 0;
        for (int u = 0; u < Units.Count; u++)
        {
            if (mask[u] == 1)
            {
                bytes += Units[u].FactorTensorNames.Sum(n => (long)file.RequireTensor(n).Length);
            }
        }

        return bytes;
    }

    public string TokenizerType { get; }

    public string TokenizerTensor { get; }

    public string ChatFormat { get; }

    /// <summary>The U8 tensor holding tokenizer_config.json, when the file has one.</summary>
    public string? TokenizerConfigTensor { get; private init; }

    public string? ChatTemplate { get; private init; }

    public string? DefaultSystemPrompt { get; private init; }

    /// <summary>The seven projections of a layer in canonical order (q, k, v, o, gate, up, down).</summary>
    public static IReadOnlyList<GlqLinear> LayerLinears(ModelConfig c, int layer) =>
    [
        new(Module(layer, "self_attn.q_proj"), c.QDim, c.Dim, c.QkvBias),
        new(Module(layer, "self_attn.k_proj"), c.KvDim, c.Dim, c.QkvBias),
        new(Module(layer, "self_attn.v_proj"), c.KvDim, c.Dim, c.QkvBias),
        new(Module(layer, "self_attn.o_proj"), c.Dim, c.QDim, false),
        new(Module(layer, "mlp.gate_proj"), c.HiddenDim, c.Dim, false),
        new(Module(layer, "mlp.up_proj"), c.HiddenDim, c.Dim, false),
        new(Module(layer, "mlp.down_proj"), c.Dim, c.HiddenDim, false),
    ];

    public static string Module(int layer, string suffix) => $"model.layers.{layer}.{suffix}";

    /// <summary>Every projection of the model by module name.</summary>
    public static Dictionary<string, GlqLinear> LinearsByModule(ModelConfig c)
    {
        var byModule = new Dictionary<string, GlqLinear>(StringComparer.Ordinal);
        for (int l = 0; l < c.Layers; l++)
        {
            foreach (GlqLinear linear in LayerLinears(c, l))
            {
                byModule[linear.Module] = linear;
            }
        }

        return byModule;
    }

    /// <summary>Indices into <paramref name="units"/> of the units whose members are in decoder layer <paramref name="layer"/>.</summary>
    public static IEnumerable<int> UnitsOfLayer(IReadOnlyList<GlqUnit> units, int layer)
    {
        string prefix = Module(layer, "");
        return Enumerable.Range(0, units.Count).Where(u => units[u].Members[0].StartsWith(prefix, StringComparison.Ordinal));
    }

    /// <summary>
    /// The canonical units of a method: glowq groups input-sharing modules, layerwise has one unit per module. Names are
    /// lowercase (<c>l0.qkv</c>) because they are part of metadata keys (<c>glowq.unit.l0.qkv.rank</c>), which are lowercase.
    /// </summary>
    public static IReadOnlyList<GlqUnit> CanonicalUnits(ModelConfig c, string method, int rank)
    {
        var units = new List<GlqUnit>();
        if (method == "rtn")
        {
            return units;
        }

        for (int l = 0; l < c.Layers; l++)
        {
            IReadOnlyList<GlqLinear> m = LayerLinears(c, l);
            if (method == "glowq")
            {
                units.Add(Unit($"l{l}.qkv", m[0], m[1], m[2]));
                units.Add(Unit($"l{l}.o", m[3]));
                units.Add(Unit($"l{l}.mlp", m[4], m[5]));
                units.Add(Unit($"l{l}.down", m[6]));
            }
            else
            {
                string[] shortNames = ["q", "k", "v", "o", "gate", "up", "down"];
                for (int i = 0; i < m.Count; i++)
                {
                    units.Add(Unit($"l{l}.{shortNames[i]}", m[i]));
                }
            }
        }

        return units;

        GlqUnit Unit(string name, params GlqLinear[] members) =>
            new(name, [.. members.Select(x => x.Module)], Math.Min(rank, Math.Min(members[0].Cols, members.Sum(x => x.Rows))));
    }

    /// <summary>Reads and cross-checks the model of <paramref name="file"/>; throws ModelFormatException naming the first problem.</summary>
    public static GlqModel Read(GlqFile file)
    {
        GlqMetadata m = file.Metadata;
        string source = file.Name;
        ModelFormatException Fail(string problem) => new($"{source}: {problem}");

        ModelConfig config = ReadConfig(m, source);
        var quantization = new GlqQuantization(
            m.GetInt32("quant.bits"), m.GetInt32("quant.group_size"), m.GetString("quant.scheme"), m.GetString("quant.scale_dtype"),
            m.GetString("quant.base"), m.FindString("quant.head") ?? "f16");
        if (quantization.Bits != 4 || quantization.Scheme != "asymmetric" || quantization.ScaleDType != "f16")
        {
            throw Fail($"quantisation {quantization.Bits}-bit {quantization.Scheme} with {quantization.ScaleDType} scales is not supported (expected 4-bit asymmetric, f16 scales)");
        }

        if (quantization.GroupSize is < 8 or > 1 << 16 || quantization.GroupSize % 8 != 0)
        {
            throw Fail($"metadata key 'quant.group_size' is {quantization.GroupSize}, expected a multiple of 8 from 8 to 65536");
        }

        string method = m.GetString("glowq.method");
        if (!Methods.Contains(method))
        {
            throw Fail($"metadata key 'glowq.method' is '{method}', expected one of {string.Join(", ", Methods)}");
        }

        string[] unitNames = m.GetArray<string>("glowq.units", GlqValueType.String);
        var units = new List<GlqUnit>(unitNames.Length);
        Dictionary<string, GlqLinear> modules = LinearsByModule(config);
        var claimed = new HashSet<string>(StringComparer.Ordinal);
        foreach (string name in unitNames)
        {
            string[] members = m.GetArray<string>($"glowq.unit.{name}.members", GlqValueType.String);
            int rank = m.GetInt32($"glowq.unit.{name}.rank");
            if (members.Length == 0)
            {
                throw Fail($"unit '{name}' has no members");
            }

            int cols = -1, rows = 0;
            foreach (string member in members)
            {
                if (!modules.TryGetValue(member, out GlqLinear? linear))
                {
                    throw Fail($"unit '{name}' member '{member}' is not a projection of this model");
                }

                if (!claimed.Add(member))
                {
                    throw Fail($"module '{member}' belongs to more than one unit");
                }

                if (cols >= 0 && linear.Cols != cols)
                {
                    throw Fail($"unit '{name}' members read inputs of different sizes ({cols} and {linear.Cols})");
                }

                cols = linear.Cols;
                rows += linear.Rows;
            }

            if (rank < 1 || rank > Math.Min(cols, rows))
            {
                throw Fail($"unit '{name}' rank {rank} is outside 1..{Math.Min(cols, rows)}");
            }

            units.Add(new GlqUnit(name, members, rank));
        }

        if (method == "rtn" && units.Count > 0)
        {
            throw Fail($"metadata key 'glowq.method' is 'rtn' (no correction), but glowq.units lists {units.Count} units");
        }

        byte[] mask = m.GetArray<byte>("glowq.mask.default", GlqValueType.U8);
        if (mask.Length != units.Count || mask.Any(b => b > 1))
        {
            throw Fail($"metadata key 'glowq.mask.default' has {mask.Length} entries, expected {units.Count} values of 0 or 1");
        }

        var scores = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (string metric in m.FindArray<string>("glowq.metrics", GlqValueType.String) ?? [])
        {
            float[] values = m.GetArray<float>($"glowq.score.{metric}", GlqValueType.F32);
            if (values.Length != units.Count)
            {
                throw Fail($"metadata key 'glowq.score.{metric}' has {values.Length} scores, expected one per unit ({units.Count})");
            }

            scores[metric] = values;
        }

        string tokenizerType = m.GetString("tokenizer.type");
        if (!TokenizerTypes.Contains(tokenizerType))
        {
            throw Fail($"metadata key 'tokenizer.type' is '{tokenizerType}', expected one of {string.Join(", ", TokenizerTypes)}");
        }

        string chatFormat = m.GetString("chat.format");
        if (!ChatFormats.Contains(chatFormat))
        {
            throw Fail($"metadata key 'chat.format' is '{chatFormat}', expected one of {string.Join(", ", ChatFormats)}");
        }

        string tokenizerTensor = m.GetString("tokenizer.file");
        var model = new GlqModel(config, quantization, method, units, scores, mask, tokenizerType, tokenizerTensor, chatFormat)
        {
            TokenizerConfigTensor = m.FindString("tokenizer.config_file"),
            ChatTemplate = m.FindString("chat.template"),
            DefaultSystemPrompt = m.FindString("chat.default_system"),
        };
        model.CheckTensors(file);
        _ = m.GetString("general.converter");
        return model;
    }

    private void CheckTensors(GlqFile file)
    {
        ModelConfig c = Config;
        GlqDType head = Quantization.HeadDType == "f32" ? GlqDType.F32 : GlqDType.F16;
        int g = Quantization.GroupSize;
        Expect(file, LlamaTensorNames.Embedding, head, c.VocabSize, c.Dim);
        Expect(file, LlamaTensorNames.FinalNorm, head, c.Dim);
        if (!c.TiedEmbeddings)
        {
            Expect(file, LlamaTensorNames.OutputHead, head, c.VocabSize, c.Dim);
        }

        Dictionary<string, GlqLinear> byModule = LinearsByModule(c);
        for (int l = 0; l < c.Layers; l++)
        {
            Expect(file, LlamaTensorNames.AttentionNorm(l), head, c.Dim);
            Expect(file, LlamaTensorNames.FfnNorm(l), head, c.Dim);
            foreach (GlqLinear linear in LayerLinears(c, l))
            {
                int groups = linear.Groups(g);
                Expect(file, linear.QWeight, GlqDType.U4, linear.Rows, groups * g);
                Expect(file, linear.Scales, GlqDType.F16, linear.Rows, groups);
                Expect(file, linear.Zeros, GlqDType.U4, linear.Rows, groups);
                if (linear.HasBias)
                {
                    Expect(file, linear.Bias, GlqDType.F32, linear.Rows);
                }
            }
        }

        foreach (GlqUnit unit in Units)
        {
            Expect(file, unit.BName, GlqDType.F16, unit.Rank, byModule[unit.Members[0]].Cols);
            foreach (string member in unit.Members)
            {
                Expect(file, unit.AName(member), GlqDType.F16, byModule[member].Rows, unit.Rank);
            }
        }

        ExpectBytes(file, TokenizerTensor, "tokenizer.file");
        if (TokenizerConfigTensor is not null)
        {
            ExpectBytes(file, TokenizerConfigTensor, "tokenizer.config_file");
        }
    }

    private static void ExpectBytes(GlqFile file, string name, string key)
    {
        GlqTensorInfo t = file.RequireTensor(name);
        if (t.DType != GlqDType.U8 || t.Shape.Length != 1)
        {
            throw new ModelFormatException($"{file.Name}: tensor '{name}' ({key}) is {t.DType.Name()} {t.ShapeText}, expected U8 [bytes]");
        }
    }

    private static void Expect(GlqFile file, string name, GlqDType dtype, params long[] shape)
    {
        GlqTensorInfo t = file.RequireTensor(name);
        if (t.DType != dtype || !t.Shape.AsSpan().SequenceEqual(shape))
        {
            throw new ModelFormatException($"{file.Name}: tensor '{name}' is {t.DType.Name()} {t.ShapeText}, expected {dtype.Name()} [{string.Join(", ", shape)}]");
        }
    }

    private static ModelConfig ReadConfig(GlqMetadata m, string source)
    {
        string architecture = m.GetString("general.architecture");
        if (!HfConfigReader.SupportedArchitectures.Contains(architecture))
        {
            throw new ModelFormatException($"{source}: metadata key 'general.architecture' is '{architecture}', expected one of {string.Join(", ", HfConfigReader.SupportedArchitectures)}");
        }

        string layout = m.GetString("model.rope.layout");
        string scaling = m.FindString("model.rope.scaling") ?? "none";
        if (layout is not ("rotate_half" or "interleaved") || scaling is not ("none" or "llama3"))
        {
            throw new ModelFormatException($"{source}: model.rope.layout '{layout}' / model.rope.scaling '{scaling}' not supported (rotate_half|interleaved, none|llama3)");
        }

        int window = (int)(m.FindUInt32("model.sliding_window") ?? 0);
        int bos = m.FindInt32("model.bos_id") ?? -1;
        var config = new ModelConfig
        {
            Architecture = architecture,
            Dim = m.GetInt32("model.dim"),
            HiddenDim = m.GetInt32("model.hidden_dim"),
            Layers = m.GetInt32("model.layers"),
            Heads = m.GetInt32("model.heads"),
            KvHeads = m.GetInt32("model.kv_heads"),
            HeadDim = m.GetInt32("model.head_dim"),
            VocabSize = m.GetInt32("model.vocab_size"),
            MaxSequenceLength = m.GetInt32("model.max_seq_len"),
            NormEps = (float)m.GetDouble("model.norm_eps"),
            RopeTheta = m.GetDouble("model.rope.theta"),
            RopeLayout = layout == "interleaved" ? RopeLayout.InterleavedPairs : RopeLayout.RotateHalf,
            RopeScaling = scaling == "llama3"
                ? new Llama3RopeScaling(m.GetDouble("model.rope.factor"), m.GetDouble("model.rope.low_freq_factor"),
                    m.GetDouble("model.rope.high_freq_factor"), m.GetInt32("model.rope.original_max_seq_len"))
                : null,
            TiedEmbeddings = m.GetBool("model.tied_embeddings"),
            QkvBias = m.GetBool("model.qkv_bias"),
            SlidingWindow = window > 0 ? window : null,
            BosTokenId = bos >= 0 ? bos : null,
            EosTokenIds = m.FindArray<int>("model.eos_ids", GlqValueType.I32) ?? [],
        };
        config.Validate(source, GlqFieldName);
        if (config.Layers > 4096 || (long)config.Dim * config.VocabSize > 1L << 40)
        {
            throw new ModelFormatException($"{source}: model dimensions are absurd (layers {config.Layers}, dim {config.Dim}, vocab {config.VocabSize})");
        }

        return config;
    }

    // ModelConfig.Validate names HF config.json fields; in a .glq file the same values live under these keys.
    private static string GlqFieldName(string hfField) => hfField switch
    {
        "hidden_size" => "model.dim",
        "intermediate_size" => "model.hidden_dim",
        "num_hidden_layers" => "model.layers",
        "num_attention_heads" => "model.heads",
        "num_key_value_heads" => "model.kv_heads",
        "head_dim" => "model.head_dim",
        "vocab_size" => "model.vocab_size",
        "max_position_embeddings" => "model.max_seq_len",
        "rms_norm_eps" => "model.norm_eps",
        "rope_theta" => "model.rope.theta",
        _ => hfField,
    };

    /// <summary>The model.* keys describing <paramref name="c"/> (the converter adds quant.*, glowq.*, tokenizer.*, chat.*).</summary>
    public static void WriteConfig(GlqMetadata m, ModelConfig c)
    {
        m.Set("general.architecture", GlqValue.String(c.Architecture))
            .Set("model.dim", GlqValue.U32((uint)c.Dim))
            .Set("model.hidden_dim", GlqValue.U32((uint)c.HiddenDim))
            .Set("model.layers", GlqValue.U32((uint)c.Layers))
            .Set("model.heads", GlqValue.U32((uint)c.Heads))
            .Set("model.kv_heads", GlqValue.U32((uint)c.KvHeads))
            .Set("model.head_dim", GlqValue.U32((uint)c.HeadDim))
            .Set("model.vocab_size", GlqValue.U32((uint)c.VocabSize))
            .Set("model.max_seq_len", GlqValue.U32((uint)c.MaxSequenceLength))
            .Set("model.norm_eps", GlqValue.F32(c.NormEps))
            .Set("model.rope.theta", GlqValue.F64(c.RopeTheta))
            .Set("model.rope.layout", GlqValue.String(c.RopeLayout == RopeLayout.InterleavedPairs ? "interleaved" : "rotate_half"))
            .Set("model.rope.scaling", GlqValue.String(c.RopeScaling is null ? "none" : "llama3"))
            .Set("model.tied_embeddings", GlqValue.Bool(c.TiedEmbeddings))
            .Set("model.qkv_bias", GlqValue.Bool(c.QkvBias))
            .Set("model.bos_id", GlqValue.I32(c.BosTokenId ?? -1))
            .Set("model.eos_ids", GlqValue.Int32s(c.EosTokenIds));
        if (c.RopeScaling is { } s)
        {
            m.Set("model.rope.factor", GlqValue.F64(s.Factor))
                .Set("model.rope.low_freq_factor", GlqValue.F64(s.LowFreqFactor))
                .Set("model.rope.high_freq_factor", GlqValue.F64(s.HighFreqFactor))
                .Set("model.rope.original_max_seq_len", GlqValue.U32((uint)s.OriginalMaxPositions));
        }

        if (c.SlidingWindow is int w)
        {
            m.Set("model.sliding_window", GlqValue.U32((uint)w));
        }
    }
}
