using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using GlowQ.Format;
using GlowQ.Format.Glq;

namespace GlowQ.Cli;

/// <summary>
/// <c>glowq inspect FILE [--json]</c>: everything a .glq file says about itself: header, metadata, model, units,
/// tensors, bytes by kind and bits per weight. The structural part is printed even when the model part is invalid;
/// the model error then follows as the usual one-line error (exit 1).
/// </summary>
internal static class InspectCommand
{
    private const int TextArrayItems = 16;
    private const int JsonArrayItems = 256;
    private const int TextStringChars = 96;

    public static Command Create(TextWriter stdout)
    {
        var file = new Argument<string>("FILE") { Description = "The .glq model file." };
        var json = new Option<bool>("--json")
        {
            Description = "Print one JSON object {\"file\", \"header\", \"metadata\", \"model\", \"units\", \"tensors\", \"totals\", \"bits_per_weight\"} instead of text.",
        };
        var command = new Command(
            "inspect",
            "Show a .glq file: header, metadata, model, quantisation, GlowQ units, tensors, bytes by kind and bits per weight. "
            + "Bits per weight: projections = 8 × bytes of qweight, scales, zeros, A, B and biases ÷ unpadded projection weights; "
            + "file = 8 × file bytes ÷ model parameters (projection weights, biases, embedding, head, norms).");
        command.Arguments.Add(file);
        command.Options.Add(json);
        command.SetAction(parse =>
        {
            using GlqFile glq = GlqFile.Open(parse.GetValue(file)!);
            GlqModel? model = null;
            ModelFormatException? modelError = null;
            try
            {
                model = GlqModel.Read(glq);
            }
            catch (ModelFormatException e)
            {
                modelError = e;
            }

            var summary = new GlqSummary(glq, model);
            if (parse.GetValue(json))
            {
                stdout.WriteLine(WriteJson(summary));
            }
            else
            {
                WriteText(summary, stdout);
            }

            return modelError is null ? GlowQCommandLine.ExitOk : throw modelError;
        });
        return command;
    }

    // ---- Text ----

    private static void WriteText(GlqSummary s, TextWriter o)
    {
        GlqFile f = s.File;
        GlqHeader h = f.Header;
        o.WriteLine($"file: {f.Name} ({f.FileLength} bytes)");
        o.WriteLine();
        o.WriteLine("header:");
        var header = new TextTable();
        header.Row("version", $"{h.MajorVersion}.{h.MinorVersion}");
        header.Row("flags", $"0x{h.Flags:x8}");
        header.Row("header_size", $"{h.HeaderSize}");
        header.Row("tensor_alignment", $"{h.TensorAlignment}");
        header.Row("metadata", $"offset {h.MetadataOffset}, length {h.MetadataLength}, {h.MetadataCount} entries");
        header.Row("directory", $"offset {h.DirectoryOffset}, length {h.DirectoryLength}, {h.TensorCount} tensors");
        header.Row("data", $"offset {h.DataOffset}, length {h.DataLength}");
        header.Row("file_length", $"{h.FileLength}");
        header.Row("header_checksum", $"{h.Checksum:x16}");
        header.WriteTo(o, "  ");

        o.WriteLine();
        o.WriteLine($"metadata ({f.Metadata.Count} entries):");
        var metadata = new TextTable();
        foreach ((string key, GlqValue value) in f.Metadata.Entries)
        {
            metadata.Row(key, value.TypeName(), ValueText(value));
        }

        metadata.WriteTo(o, "  ");

        if (s.Model is { } m)
        {
            ModelConfig c = m.Config;
            GlqQuantization q = m.Quantization;
            o.WriteLine();
            o.WriteLine(
                $"model: {c.Architecture}, dim {c.Dim}, hidden {c.HiddenDim}, {c.Layers} layers, {c.Heads}/{c.KvHeads} heads of {c.HeadDim}, "
                + $"vocab {c.VocabSize}, max_seq_len {c.MaxSequenceLength}, rope {RopeLayoutName(c.RopeLayout)} theta {Number(c.RopeTheta)}"
                + (c.RopeScaling is null ? "" : " (llama3 scaling)")
                + $", {(c.TiedEmbeddings ? "tied" : "untied")} embeddings{(c.QkvBias ? ", qkv bias" : "")}"
                + (c.SlidingWindow is int w ? $", sliding window {w}" : ""));
            o.WriteLine($"quantisation: {q.Bits}-bit {q.Scheme}, group {q.GroupSize}, {q.ScaleDType} scales, base {q.BaseQuantizer}, head {q.HeadDType}");
            string requested = f.Metadata.Find("glowq.rank") is { } rank ? $", requested rank {ValueText(rank)}" : "";
            o.WriteLine($"method: {m.Method}, {m.Units.Count} units{requested}, {m.DefaultMask.Count(b => b == 1)} restored by the default mask");
            o.WriteLine($"tokenizer: {m.TokenizerType} (tensor '{m.TokenizerTensor}'); chat format: {m.ChatFormat}");
            if (m.Units.Count > 0)
            {
                o.WriteLine();
                o.WriteLine($"units ({m.Units.Count}):");
                var units = new TextTable();
                units.Row(["unit", "rank", "mask", .. m.Scores.Keys, "members"]);
                for (int i = 0; i < m.Units.Count; i++)
                {
                    GlqUnit u = m.Units[i];
                    units.Row([u.Name, Number(u.Rank), Number(m.DefaultMask[i]), .. m.Scores.Values.Select(v => Number(v[i])),
                        string.Join(", ", u.Members.Select(GlqUnit.MemberShortName))]);
                }

                units.WriteTo(o, "  ", rightAligned: [1, 2, .. Enumerable.Range(3, m.Scores.Count)]);
            }
        }

        o.WriteLine();
        o.WriteLine($"tensors ({f.Tensors.Count}, directory order):");
        var tensors = new TextTable();
        tensors.Row("name", "dtype", "shape", "bytes", "offset", "kind");
        foreach (GlqTensorInfo t in f.Tensors)
        {
            tensors.Row(t.Name, t.DType.Name(), t.ShapeText, Number(t.Length), Number(t.Offset), GlqSummary.KindKey(GlqSummary.KindOf(t)));
        }

        tensors.WriteTo(o, "  ", rightAligned: [3, 4]);

        o.WriteLine();
        o.WriteLine("bytes by kind:");
        var totals = new TextTable();
        totals.Row("kind", "tensors", "bytes", "share");
        foreach (TensorKind kind in Enum.GetValues<TensorKind>())
        {
            (int count, long bytes) = s.Totals[kind];
            totals.Row(GlqSummary.KindLabel(kind), Number(count), Number(bytes), Percent(bytes, s.TensorBytes));
        }

        totals.Row("all tensors", Number(f.Tensors.Count), Number(s.TensorBytes), Percent(s.TensorBytes, s.TensorBytes));
        totals.Row("header, metadata, directory, padding", "", Number(f.FileLength - s.TensorBytes), "");
        totals.Row("file", "", Number(f.FileLength), "");
        totals.WriteTo(o, "  ", rightAligned: [1, 2, 3]);

        if (s.Model is not null)
        {
            o.WriteLine();
            o.WriteLine("bits per weight:");
            var bpw = new TextTable();
            bpw.Row("projections", s.ProjectionBitsPerWeight.ToString("F4", CultureInfo.InvariantCulture),
                $"8 × {s.ProjectionBytes} bytes (qweight, scales, zeros, A, B, biases; all units) ÷ {s.ProjectionWeights} projection weights");
            bpw.Row("file", s.FileBitsPerWeight.ToString("F4", CultureInfo.InvariantCulture),
                $"8 × {f.FileLength} file bytes ÷ {s.Parameters} parameters (projections, biases, embedding, head, norms)");
            bpw.WriteTo(o, "  ", rightAligned: [1]);
        }
    }

    private static string ValueText(GlqValue v)
    {
        if (v.Raw is Array a)
        {
            IEnumerable<string> items = Enumerable.Range(0, Math.Min(a.Length, TextArrayItems)).Select(i => ElementText(a.GetValue(i), v.ElementType));
            return "[" + string.Join(", ", items) + (a.Length > TextArrayItems ? $", … ({a.Length} items)" : "") + "]";
        }

        return v.Type == GlqValueType.String ? Shorten(Escape((string)v.Raw)) : ElementText(v.Raw, v.Type);
    }

    private static string ElementText(object? o, GlqValueType? type) => o switch
    {
        string s => "\"" + Shorten(Escape(s)) + "\"",
        bool b => b ? "true" : "false",
        double d when type == GlqValueType.F32 => Number((float)d),
        double d => Number(d),
        float f => Number(f),
        IFormattable n => n.ToString(null, CultureInfo.InvariantCulture),
        _ => Convert.ToString(o, CultureInfo.InvariantCulture) ?? "",
    };

    private static string Shorten(string s) => s.Length <= TextStringChars ? s : string.Concat(s.AsSpan(0, TextStringChars), $"… ({s.Length} chars)");

    /// <summary>Control characters as escapes, so every metadata entry stays on one line.</summary>
    private static string Escape(string s)
    {
        if (!s.Any(char.IsControl))
        {
            return s;
        }

        var b = new StringBuilder(s.Length + 8);
        foreach (char c in s)
        {
            b.Append(c switch
            {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                _ when char.IsControl(c) => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        }

        return b.ToString();
    }

    private static string Number(long v) => v.ToString(CultureInfo.InvariantCulture);

    private static string Number(ulong v) => v.ToString(CultureInfo.InvariantCulture);

    private static string Number(float v) => v.ToString("R", CultureInfo.InvariantCulture);

    private static string Number(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    private static string Percent(long part, long whole) =>
        whole == 0 ? "" : (100.0 * part / whole).ToString("F1", CultureInfo.InvariantCulture) + "%";

    private static string RopeLayoutName(RopeLayout layout) => layout == RopeLayout.InterleavedPairs ? "interleaved" : "rotate_half";

    // ---- JSON ----

    private static string WriteJson(GlqSummary s)
    {
        GlqFile f = s.File;
        GlqHeader h = f.Header;
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = false }))
        {
            w.WriteStartObject();
            w.WriteString("file", f.Name);
            w.WriteNumber("file_bytes", f.FileLength);

            w.WriteStartObject("header");
            w.WriteString("version", $"{h.MajorVersion}.{h.MinorVersion}");
            w.WriteNumber("major_version", h.MajorVersion);
            w.WriteNumber("minor_version", h.MinorVersion);
            w.WriteNumber("flags", h.Flags);
            w.WriteNumber("header_size", h.HeaderSize);
            w.WriteNumber("tensor_alignment", h.TensorAlignment);
            w.WriteNumber("metadata_offset", h.MetadataOffset);
            w.WriteNumber("metadata_length", h.MetadataLength);
            w.WriteNumber("directory_offset", h.DirectoryOffset);
            w.WriteNumber("directory_length", h.DirectoryLength);
            w.WriteNumber("data_offset", h.DataOffset);
            w.WriteNumber("data_length", h.DataLength);
            w.WriteNumber("file_length", h.FileLength);
            w.WriteNumber("tensor_count", h.TensorCount);
            w.WriteNumber("metadata_count", h.MetadataCount);
            w.WriteString("header_checksum", $"{h.Checksum:x16}");
            w.WriteEndObject();

            w.WriteStartObject("metadata");
            foreach ((string key, GlqValue value) in f.Metadata.Entries)
            {
                w.WriteStartObject(key);
                w.WriteString("type", value.TypeName());
                w.WritePropertyName("value");
                WriteJsonValue(w, value);
                if (value.Raw is Array a)
                {
                    w.WriteNumber("count", a.Length);
                    w.WriteBoolean("elided", a.Length > JsonArrayItems);
                }

                w.WriteEndObject();
            }

            w.WriteEndObject();

            if (s.Model is { } m)
            {
                ModelConfig c = m.Config;
                w.WriteStartObject("model");
                w.WriteString("architecture", c.Architecture);
                w.WriteNumber("dim", c.Dim);
                w.WriteNumber("hidden_dim", c.HiddenDim);
                w.WriteNumber("layers", c.Layers);
                w.WriteNumber("heads", c.Heads);
                w.WriteNumber("kv_heads", c.KvHeads);
                w.WriteNumber("head_dim", c.HeadDim);
                w.WriteNumber("vocab_size", c.VocabSize);
                w.WriteNumber("max_seq_len", c.MaxSequenceLength);
                w.WritePropertyName("norm_eps");
                JsonNumber(w, c.NormEps);
                w.WritePropertyName("rope_theta");
                JsonNumber(w, c.RopeTheta);
                w.WriteString("rope_layout", RopeLayoutName(c.RopeLayout));
                w.WriteString("rope_scaling", c.RopeScaling is null ? "none" : "llama3");
                w.WriteBoolean("tied_embeddings", c.TiedEmbeddings);
                w.WriteBoolean("qkv_bias", c.QkvBias);
                w.WriteEndObject();

                GlqQuantization q = m.Quantization;
                w.WriteStartObject("quantization");
                w.WriteNumber("bits", q.Bits);
                w.WriteNumber("group_size", q.GroupSize);
                w.WriteString("scheme", q.Scheme);
                w.WriteString("scale_dtype", q.ScaleDType);
                w.WriteString("base", q.BaseQuantizer);
                w.WriteString("head_dtype", q.HeadDType);
                w.WriteEndObject();

                w.WriteString("method", m.Method);
                w.WriteStartObject("tokenizer");
                w.WriteString("type", m.TokenizerType);
                w.WriteString("tensor", m.TokenizerTensor);
                w.WriteEndObject();
                w.WriteString("chat_format", m.ChatFormat);

                w.WriteStartArray("units");
                for (int i = 0; i < m.Units.Count; i++)
                {
                    GlqUnit u = m.Units[i];
                    w.WriteStartObject();
                    w.WriteString("name", u.Name);
                    w.WriteStartArray("members");
                    foreach (string member in u.Members)
                    {
                        w.WriteStringValue(member);
                    }

                    w.WriteEndArray();
                    w.WriteNumber("rank", u.Rank);
                    w.WriteNumber("mask", m.DefaultMask[i]);
                    w.WriteStartObject("scores");
                    foreach ((string metric, float[] values) in m.Scores)
                    {
                        w.WritePropertyName(metric);
                        JsonNumber(w, values[i]);
                    }

                    w.WriteEndObject();
                    w.WriteEndObject();
                }

                w.WriteEndArray();
            }

            w.WriteStartArray("tensors");
            foreach (GlqTensorInfo t in f.Tensors)
            {
                w.WriteStartObject();
                w.WriteString("name", t.Name);
                w.WriteString("dtype", t.DType.Name());
                w.WriteStartArray("shape");
                foreach (long d in t.Shape)
                {
                    w.WriteNumberValue(d);
                }

                w.WriteEndArray();
                w.WriteNumber("offset", t.Offset);
                w.WriteNumber("bytes", t.Length);
                w.WriteString("checksum", $"{t.Checksum:x16}");
                w.WriteString("kind", GlqSummary.KindKey(GlqSummary.KindOf(t)));
                w.WriteEndObject();
            }

            w.WriteEndArray();

            w.WriteStartObject("totals");
            foreach (TensorKind kind in Enum.GetValues<TensorKind>())
            {
                (int count, long bytes) = s.Totals[kind];
                w.WriteStartObject(GlqSummary.KindKey(kind));
                w.WriteNumber("tensors", count);
                w.WriteNumber("bytes", bytes);
                w.WriteEndObject();
            }

            w.WriteNumber("tensor_bytes", s.TensorBytes);
            w.WriteNumber("other_file_bytes", f.FileLength - s.TensorBytes);
            w.WriteNumber("file_bytes", f.FileLength);
            w.WriteEndObject();

            if (s.Model is not null)
            {
                w.WriteStartObject("bits_per_weight");
                w.WriteNumber("projections", s.ProjectionBitsPerWeight);
                w.WriteNumber("projection_bytes", s.ProjectionBytes);
                w.WriteNumber("projection_weights", s.ProjectionWeights);
                w.WriteNumber("file", s.FileBitsPerWeight);
                w.WriteNumber("parameters", s.Parameters);
                w.WriteEndObject();
            }

            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void WriteJsonValue(Utf8JsonWriter w, GlqValue v)
    {
        if (v.Raw is not Array a)
        {
            WriteJsonScalar(w, v.Raw, v.Type);
            return;
        }

        w.WriteStartArray();
        for (int i = 0; i < Math.Min(a.Length, JsonArrayItems); i++)
        {
            WriteJsonScalar(w, a.GetValue(i)!, v.ElementType!.Value);
        }

        w.WriteEndArray();
    }

    private static void WriteJsonScalar(Utf8JsonWriter w, object raw, GlqValueType type)
    {
        switch (raw)
        {
            case string s: w.WriteStringValue(s); break;
            case bool b: w.WriteBooleanValue(b); break;
            case float f: JsonNumber(w, f); break;
            case double d when type == GlqValueType.F32: JsonNumber(w, (float)d); break;
            case double d: JsonNumber(w, d); break;
            case ulong u: w.WriteNumberValue(u); break;
            case long l: w.WriteNumberValue(l); break;
            case uint u: w.WriteNumberValue(u); break;
            case int i: w.WriteNumberValue(i); break;
            case ushort u: w.WriteNumberValue(u); break;
            case short i: w.WriteNumberValue(i); break;
            case byte u: w.WriteNumberValue(u); break;
            case sbyte i: w.WriteNumberValue(i); break;
            default: w.WriteStringValue(Convert.ToString(raw, CultureInfo.InvariantCulture)); break;
        }
    }

    // JSON has no NaN or infinities: those are written as strings ("NaN", "Infinity", "-Infinity").
    private static void JsonNumber(Utf8JsonWriter w, float v)
    {
        if (float.IsFinite(v))
        {
            w.WriteNumberValue(v);
        }
        else
        {
            w.WriteStringValue(v.ToString(CultureInfo.InvariantCulture));
        }
    }

    private static void JsonNumber(Utf8JsonWriter w, double v)
    {
        if (double.IsFinite(v))
        {
            w.WriteNumberValue(v);
        }
        else
        {
            w.WriteStringValue(v.ToString(CultureInfo.InvariantCulture));
        }
    }

    /// <summary>Rows of cells printed with aligned columns.</summary>
    private sealed class TextTable
    {
        private readonly List<string[]> _rows = [];

        public void Row(params string[] cells) => _rows.Add(cells);

        public void WriteTo(TextWriter o, string indent, params int[] rightAligned)
        {
            int columns = _rows.Count == 0 ? 0 : _rows.Max(r => r.Length);
            int[] widths = [.. Enumerable.Range(0, columns).Select(c => _rows.Max(r => c < r.Length ? r[c].Length : 0))];
            foreach (string[] row in _rows)
            {
                var line = new StringBuilder(indent);
                for (int c = 0; c < row.Length; c++)
                {
                    bool last = c == row.Length - 1;
                    string cell = rightAligned.Contains(c) ? row[c].PadLeft(widths[c]) : last ? row[c] : row[c].PadRight(widths[c]);
                    line.Append(cell);
                    if (!last)
                    {
                        line.Append("  ");
                    }
                }

                o.WriteLine(line.ToString().TrimEnd());
            }
        }
    }
}

/// <summary>What a tensor is, for the byte totals of <c>glowq inspect</c>.</summary>
internal enum TensorKind
{
    /// <summary>4-bit codes of the projections (<c>*.qweight</c>).</summary>
    QWeight,

    /// <summary>Per-group scales and zero points (<c>*.scales</c>, <c>*.zeros</c>).</summary>
    ScalesZeros,

    /// <summary>GlowQ left factors (<c>glowq.U.A.member</c>).</summary>
    A,

    /// <summary>GlowQ shared right factors (<c>glowq.U.B</c>).</summary>
    B,

    /// <summary>Embedding, output head, norms, biases, tokenizer and anything else.</summary>
    Other,
}

/// <summary>The figures <c>glowq inspect</c> derives from a file and (when valid) its model.</summary>
internal sealed class GlqSummary
{
    public GlqSummary(GlqFile file, GlqModel? model)
    {
        File = file;
        Model = model;
        Totals = Enum.GetValues<TensorKind>().ToDictionary(k => k, _ => (Count: 0, Bytes: 0L));
        foreach (GlqTensorInfo t in file.Tensors)
        {
            TensorKind kind = KindOf(t);
            (int count, long bytes) = Totals[kind];
            Totals[kind] = (count + 1, bytes + (long)t.Length);
            TensorBytes += (long)t.Length;
        }

        if (model is null)
        {
            return;
        }

        ModelConfig c = model.Config;
        for (int l = 0; l < c.Layers; l++)
        {
            foreach (GlqLinear linear in GlqModel.LayerLinears(c, l))
            {
                ProjectionWeights += (long)linear.Rows * linear.Cols;
                if (linear.HasBias)
                {
                    Parameters += linear.Rows;
                    ProjectionBytes += (long)file.RequireTensor(linear.Bias).Length;
                }
            }
        }

        ProjectionBytes += Totals[TensorKind.QWeight].Bytes + Totals[TensorKind.ScalesZeros].Bytes + Totals[TensorKind.A].Bytes + Totals[TensorKind.B].Bytes;
        long embedding = (long)c.VocabSize * c.Dim;
        Parameters += ProjectionWeights + embedding + (c.TiedEmbeddings ? 0 : embedding) + (long)c.Dim * (2 * c.Layers + 1);
    }

    public GlqFile File { get; }

    public GlqModel? Model { get; }

    public Dictionary<TensorKind, (int Count, long Bytes)> Totals { get; }

    public long TensorBytes { get; }

    /// <summary>Bytes of every qweight, scales, zeros, A, B and bias tensor (all units, whatever the mask).</summary>
    public long ProjectionBytes { get; }

    /// <summary>Σ d_out × d_in over the projections, without padding.</summary>
    public long ProjectionWeights { get; }

    /// <summary>The model's parameters: projection weights and biases, embedding, untied head, norms (not A/B, not the tokenizer).</summary>
    public long Parameters { get; }

    public double ProjectionBitsPerWeight => ProjectionWeights == 0 ? 0 : 8.0 * ProjectionBytes / ProjectionWeights;

    public double FileBitsPerWeight => Parameters == 0 ? 0 : 8.0 * File.FileLength / Parameters;

    public static TensorKind KindOf(GlqTensorInfo t)
    {
        string n = t.Name;
        if (n.EndsWith(".qweight", StringComparison.Ordinal))
        {
            return TensorKind.QWeight;
        }

        if (n.EndsWith(".scales", StringComparison.Ordinal) || n.EndsWith(".zeros", StringComparison.Ordinal))
        {
            return TensorKind.ScalesZeros;
        }

        if (n.StartsWith("glowq.", StringComparison.Ordinal))
        {
            if (n.EndsWith(".B", StringComparison.Ordinal))
            {
                return TensorKind.B;
            }

            if (n.Contains(".A.", StringComparison.Ordinal))
            {
                return TensorKind.A;
            }
        }

        return TensorKind.Other;
    }

    public static string KindKey(TensorKind kind) => kind switch
    {
        TensorKind.QWeight => "qweight",
        TensorKind.ScalesZeros => "scales_zeros",
        TensorKind.A => "a",
        TensorKind.B => "b",
        _ => "other",
    };

    public static string KindLabel(TensorKind kind) => kind switch
    {
        TensorKind.QWeight => "base int4 (qweight)",
        TensorKind.ScalesZeros => "scales/zeros",
        TensorKind.A => "A factors",
        TensorKind.B => "B factors",
        _ => "other (embedding, head, norms, biases, tokenizer)",
    };
}
