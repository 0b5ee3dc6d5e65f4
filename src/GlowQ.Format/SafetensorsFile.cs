using System.Text.Json;

namespace GlowQ.Format;

/// <summary>
/// One memory-mapped .safetensors file: an 8-byte little-endian header length, a JSON header
/// ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}), then the data section.
/// Every offset, length and shape is checked against the file size before any tensor is handed out.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    // A real header is a few MB at most; anything larger is a corrupt length field, not a model.
    private const long MaxHeaderBytes = 256L << 20;

    private readonly MappedFile _file;
    private readonly Dictionary<string, TensorView> _tensors;

    private SafetensorsFile(MappedFile file, Dictionary<string, TensorView> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        _file = file;
        _tensors = tensors;
        Metadata = metadata;
    }

    public string Path => _file.Path;

    public IReadOnlyDictionary<string, TensorView> Tensors => _tensors;

    public IReadOnlyDictionary<string, string> Metadata { get; }

    public static SafetensorsFile Open(string path) => MappedFile.OpenAndParse(path, Parse);

    private static SafetensorsFile Parse(MappedFile file)
    {
        string path = file.Path;
        if (file.Length < 8)
        {
            throw ModelFormatException.For(path, $"file is {file.Length} bytes, too short for the 8-byte safetensors header length");
        }

        ulong headerLength = file.ReadUInt64(0);
        if (headerLength > (ulong)(file.Length - 8) || headerLength > MaxHeaderBytes)
        {
            throw ModelFormatException.For(path, $"header length field says {headerLength} bytes, but only {file.Length - 8} bytes follow it (truncated or not a safetensors file)");
        }

        long dataStart = 8 + (long)headerLength;
        long dataLength = file.Length - dataStart;
        var tensors = new Dictionary<string, TensorView>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(file.GetSpan(8, (int)headerLength).ToArray());
        }
        catch (JsonException e)
        {
            throw ModelFormatException.For(path, $"header is not valid JSON ({e.Message.Split('\n')[0]})");
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw ModelFormatException.For(path, "header JSON is not an object");
            }

            foreach (JsonProperty entry in document.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__")
                {
                    if (entry.Value.ValueKind == JsonValueKind.Object)
                    {
                        foreach (JsonProperty m in entry.Value.EnumerateObject())
                        {
                            metadata[m.Name] = m.Value.ToString();
                        }
                    }

                    continue;
                }

                tensors[entry.Name] = ParseTensor(file, entry, dataStart, dataLength);
            }
        }

        return new SafetensorsFile(file, tensors, metadata);
    }

    private static TensorView ParseTensor(MappedFile file, JsonProperty entry, long dataStart, long dataLength)
    {
        string path = file.Path;
        string name = entry.Name;
        JsonElement value = entry.Value;
        if (value.ValueKind != JsonValueKind.Object
            || !value.TryGetProperty("dtype", out JsonElement dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String
            || !value.TryGetProperty("shape", out JsonElement shapeElement) || shapeElement.ValueKind != JsonValueKind.Array
            || !value.TryGetProperty("data_offsets", out JsonElement offsetsElement) || offsetsElement.ValueKind != JsonValueKind.Array
            || offsetsElement.GetArrayLength() != 2)
        {
            throw ModelFormatException.For(path, $"tensor '{name}': header entry needs dtype, shape and data_offsets [begin, end]");
        }

        string dtypeName = dtypeElement.GetString()!;
        TensorDType dtype = TensorDTypes.FromSafetensorsName(dtypeName)
            ?? throw ModelFormatException.For(path, $"tensor '{name}' has dtype {dtypeName}; supported: F32, F16, BF16");

        var shape = new long[shapeElement.GetArrayLength()];
        int i = 0;
        long elements = 1;
        foreach (JsonElement d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0 || dim > int.MaxValue)
            {
                throw ModelFormatException.For(path, $"tensor '{name}': shape entry {d} is not a non-negative integer");
            }

            shape[i++] = dim;
            elements = dim == 0 ? 0 : (elements > long.MaxValue / dim ? throw ModelFormatException.For(path, $"tensor '{name}': shape overflows") : elements * dim);
        }

        long begin = ReadOffset(offsetsElement[0]);
        long end = ReadOffset(offsetsElement[1]);
        if (begin < 0 || end < begin || end > dataLength)
        {
            throw ModelFormatException.For(path, $"tensor '{name}': data_offsets [{offsetsElement[0]}, {offsetsElement[1]}] lie outside the data section ({dataLength} bytes; file truncated?)");
        }

        long expected = elements * dtype.SizeInBytes();
        if (end - begin != expected)
        {
            throw ModelFormatException.For(path, $"tensor '{name}': {dtypeName} shape [{string.Join(", ", shape)}] needs {expected} bytes, data_offsets span {end - begin}");
        }

        return new TensorView(file, name, dtype, shape, dataStart + begin);

        long ReadOffset(JsonElement e) =>
            e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out long v) ? v
            : throw ModelFormatException.For(path, $"tensor '{name}': data offset {e} is not an integer");
    }

    public void Dispose() => _file.Dispose();
}
