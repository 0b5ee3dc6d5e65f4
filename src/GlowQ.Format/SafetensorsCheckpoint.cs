using System.Text.Json;

namespace GlowQ.Format;

/// <summary>
/// An HF checkpoint directory: config.json plus model.safetensors, or shards listed by
/// model.safetensors.index.json. Tensor shapes are checked against config.json when the engine asks for them.
/// </summary>
public sealed class SafetensorsCheckpoint : ICheckpoint
{
    private readonly List<SafetensorsFile> _files;
    private readonly Dictionary<string, TensorView> _tensors;

    private SafetensorsCheckpoint(string directory, ModelConfig config, List<SafetensorsFile> files, Dictionary<string, TensorView> tensors)
    {
        SourcePath = directory;
        Config = config;
        _files = files;
        _tensors = tensors;
    }

    public string SourcePath { get; }

    public string FormatName => "safetensors";

    public ModelConfig Config { get; }

    public IEnumerable<string> TensorNames => _tensors.Keys;

    public TensorView? FindTensor(string name) => _tensors.GetValueOrDefault(name);

    public static SafetensorsCheckpoint OpenDirectory(string directory)
    {
        string configPath = Path.Combine(directory, "config.json");
        if (!File.Exists(configPath))
        {
            throw new FileNotFoundException($"{directory}: no config.json in the checkpoint directory", configPath);
        }

        ModelConfig config = HfConfigReader.Read(configPath);
        string single = Path.Combine(directory, "model.safetensors");
        string index = Path.Combine(directory, "model.safetensors.index.json");
        IReadOnlyList<string> shardNames;
        if (File.Exists(single))
        {
            shardNames = ["model.safetensors"];
        }
        else if (File.Exists(index))
        {
            shardNames = ReadShardNames(index);
        }
        else
        {
            throw new FileNotFoundException($"{directory}: neither model.safetensors nor model.safetensors.index.json found", single);
        }

        var files = new List<SafetensorsFile>();
        var tensors = new Dictionary<string, TensorView>(StringComparer.Ordinal);
        try
        {
            foreach (string shard in shardNames)
            {
                SafetensorsFile file = SafetensorsFile.Open(Path.Combine(directory, shard));
                files.Add(file);
                foreach ((string name, TensorView tensor) in file.Tensors)
                {
                    if (!tensors.TryAdd(name, tensor))
                    {
                        throw ModelFormatException.For(file.Path, $"tensor '{name}' also appears in {Path.GetFileName(tensors[name].SourcePath)}");
                    }
                }
            }
        }
        catch
        {
            files.ForEach(f => f.Dispose());
            throw;
        }

        return new SafetensorsCheckpoint(directory, config, files, tensors);
    }

    private static List<string> ReadShardNames(string indexPath)
    {
        try
        {
            using JsonDocument doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            if (!doc.RootElement.TryGetProperty("weight_map", out JsonElement map) || map.ValueKind != JsonValueKind.Object)
            {
                throw ModelFormatException.For(indexPath, "no \"weight_map\" object");
            }

            var names = new SortedSet<string>(StringComparer.Ordinal);
            foreach (JsonProperty p in map.EnumerateObject())
            {
                string shard = p.Value.GetString() ?? "";
                if (shard.Length == 0 || shard.Contains('/') || shard.Contains('\\') || shard.Contains(".."))
                {
                    throw ModelFormatException.For(indexPath, $"weight_map entry '{p.Name}' names shard '{shard}', expected a file name in the same directory");
                }

                names.Add(shard);
            }

            return [.. names];
        }
        catch (JsonException e)
        {
            throw ModelFormatException.For(indexPath, $"not valid JSON ({e.Message.Split('\n')[0]})");
        }
    }

    public void Dispose() => _files.ForEach(f => f.Dispose());
}
