namespace GlowQ.Format;

public static class CheckpointExtensions
{
    /// <summary>The named tensor, checked against the expected shape; a one-line error names file, tensor, expected and found.</summary>
    public static TensorView RequireTensor(this ICheckpoint checkpoint, string name, params long[] expectedShape)
    {
        TensorView tensor = checkpoint.FindTensor(name)
            ?? throw ModelFormatException.For(checkpoint.SourcePath, $"tensor '{name}' is missing");
        bool same = tensor.Shape.Count == expectedShape.Length;
        for (int i = 0; same && i < expectedShape.Length; i++)
        {
            same = tensor.Shape[i] == expectedShape[i];
        }

        if (!same)
        {
            throw ModelFormatException.For(
                checkpoint.SourcePath,
                $"tensor '{name}' has shape {tensor.ShapeText}, config.json implies [{string.Join(", ", expectedShape)}]");
        }

        return tensor;
    }

    /// <summary>Opens a checkpoint: a llama2.c .bin file, a directory with config.json + safetensors, or a .safetensors file beside its config.json.</summary>
    public static ICheckpoint Open(string path)
    {
        if (Directory.Exists(path))
        {
            return SafetensorsCheckpoint.OpenDirectory(path);
        }

        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: no such file or directory", path);
        }

        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            return SafetensorsCheckpoint.OpenDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        }

        if (path.EndsWith(".glq", StringComparison.OrdinalIgnoreCase))
        {
            throw ModelFormatException.For(path, ".glq files are quantised models; this command needs a full-precision checkpoint (HF directory or llama2.c .bin)");
        }

        return Llama2cCheckpoint.Open(path);
    }
}
