using GlowQ.Format;
using GlowQ.Tokenizers;

namespace GlowQ.Engine;

/// <summary>A model ready to run, with the tokenizer that belongs to it.</summary>
public sealed class LoadedModel(LlamaModel model, ITextTokenizer tokenizer, string checkpointFormat) : IDisposable
{
    public LlamaModel Model { get; } = model;

    public ITextTokenizer Tokenizer { get; } = tokenizer;

    public string CheckpointFormat { get; } = checkpointFormat;

    public void Dispose() => Model.Dispose();
}

public static class ModelLoader
{
    /// <summary>
    /// Opens a checkpoint (HF directory or llama2.c file), loads its weights, and finds its tokenizer:
    /// <paramref name="tokenizerPath"/> when given, else the checkpoint directory's tokenizer.json / tokenizer.model,
    /// else (llama2.c) a tokenizer.bin or tok*.bin beside the file.
    /// </summary>
    public static LoadedModel Load(string modelPath, string? tokenizerPath, InferenceOptions options, WeightStorage storage = WeightStorage.Auto)
    {
        using ICheckpoint checkpoint = CheckpointExtensions.Open(modelPath);
        ITextTokenizer tokenizer = LoadTokenizer(checkpoint, tokenizerPath);
        if (tokenizer.VocabularySize > checkpoint.Config.VocabSize)
        {
            throw ModelFormatException.For(
                modelPath,
                $"tokenizer has {tokenizer.VocabularySize} tokens but the model's vocabulary is {checkpoint.Config.VocabSize} (wrong --tokenizer?)");
        }

        var weights = LlamaWeights.Load(checkpoint, storage);
        return new LoadedModel(new LlamaModel(weights, options), tokenizer, checkpoint.FormatName);
    }

    private static ITextTokenizer LoadTokenizer(ICheckpoint checkpoint, string? tokenizerPath)
    {
        if (tokenizerPath is not null)
        {
            return TokenizerLoader.Load(tokenizerPath);
        }

        string source = checkpoint.SourcePath;
        if (Directory.Exists(source))
        {
            bool hasTokenizer = File.Exists(Path.Combine(source, "tokenizer.json"))
                                || File.Exists(Path.Combine(source, "tokenizer.model"))
                                || File.Exists(Path.Combine(source, "tokenizer.bin"));
            return hasTokenizer
                ? TokenizerLoader.Load(source)
                : throw new FileNotFoundException($"{source}: no tokenizer.json, tokenizer.model or tokenizer.bin in the checkpoint directory; pass --tokenizer PATH");
        }

        return TokenizerLoader.FindBesideCheckpoint(source) is { } beside
            ? TokenizerLoader.Load(beside)
            : throw new FileNotFoundException($"{source}: no tokenizer.bin or tok*.bin beside the checkpoint; pass --tokenizer PATH");
    }
}
