using GlowQ.Format;
using GlowQ.Tokenizers;

namespace GlowQ.Engine;

/// <summary>A model ready to run, with the tokenizer and the chat conventions that belong to it.</summary>
public sealed class LoadedModel(ILanguageModel model, ITextTokenizer tokenizer, string checkpointFormat) : IDisposable
{
    public ILanguageModel Model { get; } = model;

    public ITextTokenizer Tokenizer { get; } = tokenizer;

    public string CheckpointFormat { get; } = checkpointFormat;

    /// <summary>How the model expects a conversation rendered (<see cref="ChatTemplates"/>): plain for base models.</summary>
    public string ChatFormat { get; init; } = ChatTemplates.Plain;

    /// <summary>The system prompt the model's chat template inserts when the user gives none.</summary>
    public string? DefaultSystemPrompt { get; init; }

    public void Dispose() => Model.Dispose();
}

public static class ModelLoader
{
    /// <summary>
    /// Opens a checkpoint (HF directory or llama2.c file), loads its weights, and finds its tokenizer:
    /// <paramref name="tokenizerPath"/> when given, else the checkpoint directory's tokenizer.json / tokenizer.model,
    /// else (llama2.c) a tokenizer.bin or tok*.bin beside the file.
    /// </summary>
    public static LoadedModel Load(string modelPath, string? tokenizerPath, InferenceOptions options, WeightStorage storage = WeightStorage.Auto) =>
        Load(modelPath, tokenizerPath, _ => options, storage);

    /// <summary>As <see cref="Load(string, string?, InferenceOptions, WeightStorage)"/>, with options chosen from the checkpoint's configuration once it is read.</summary>
    public static LoadedModel Load(string modelPath, string? tokenizerPath, Func<ModelConfig, InferenceOptions> optionsFor, WeightStorage storage = WeightStorage.Auto)
    {
        ArgumentNullException.ThrowIfNull(optionsFor);
        using ICheckpoint checkpoint = CheckpointExtensions.Open(modelPath);
        InferenceOptions options = optionsFor(checkpoint.Config);
        ITextTokenizer tokenizer = LoadTokenizer(checkpoint, tokenizerPath);
        if (tokenizer.VocabularySize > checkpoint.Config.VocabSize)
        {
            throw ModelFormatException.For(
                modelPath,
                $"tokenizer has {tokenizer.VocabularySize} tokens but the model's vocabulary is {checkpoint.Config.VocabSize} (wrong --tokenizer?)");
        }

        var weights = LlamaWeights.Load(checkpoint, storage);
        return new LoadedModel(new LlamaModel(weights, options), tokenizer, checkpoint.FormatName)
        {
            ChatFormat = ChatFormatBeside(modelPath, tokenizerPath),
        };
    }

    /// <summary>The chat format of the tokenizer_config.json beside the checkpoint (or in the tokenizer's folder); plain when there is none.</summary>
    public static string ChatFormatBeside(string checkpointPath, string? tokenizerPath)
    {
        foreach (string? place in new[] { checkpointPath, tokenizerPath })
        {
            if (place is null)
            {
                continue;
            }

            string directory = Directory.Exists(place) ? place : Path.GetDirectoryName(Path.GetFullPath(place)) ?? ".";
            string config = Path.Combine(directory, "tokenizer_config.json");
            if (File.Exists(config))
            {
                return ChatTemplates.Detect(ChatTemplates.FromTokenizerConfig(File.ReadAllBytes(config), config));
            }
        }

        return ChatTemplates.Plain;
    }

    private static ITextTokenizer LoadTokenizer(ICheckpoint checkpoint, string? tokenizerPath) =>
        ResolveTokenizer(checkpoint.SourcePath, tokenizerPath).Tokenizer;

    /// <summary>
    /// The tokenizer that belongs to a checkpoint, with the file it was read from (each candidate is parsed once):
    /// <paramref name="tokenizerPath"/> when given (a file, or a directory searched like a checkpoint directory); else in
    /// an HF directory tokenizer.json, tokenizer.model or tokenizer.bin (the first that this product reads); else
    /// (llama2.c) tokenizer.bin or tok*.bin beside the file.
    /// </summary>
    public static (string Path, ITextTokenizer Tokenizer) ResolveTokenizer(string checkpointPath, string? tokenizerPath)
    {
        if (tokenizerPath is not null && !Directory.Exists(tokenizerPath))
        {
            return File.Exists(tokenizerPath)
                ? (tokenizerPath, TokenizerLoader.Load(tokenizerPath))
                : throw new FileNotFoundException($"{tokenizerPath}: tokenizer file not found", tokenizerPath);
        }

        string? directory = tokenizerPath ?? (Directory.Exists(checkpointPath) ? checkpointPath : null);
        if (directory is not null)
        {
            foreach (string name in (string[])["tokenizer.json", "tokenizer.model", "tokenizer.bin"])
            {
                string candidate = Path.Combine(directory, name);
                if (File.Exists(candidate) && TryLoadSupported(candidate) is { } tokenizer)
                {
                    return (candidate, tokenizer);
                }
            }

            throw new FileNotFoundException($"{directory}: no tokenizer.json, tokenizer.model or tokenizer.bin this product reads; pass --tokenizer PATH");
        }

        string beside = TokenizerLoader.FindBesideCheckpoint(checkpointPath)
            ?? throw new FileNotFoundException($"{checkpointPath}: no tokenizer.bin or tok*.bin beside the checkpoint; pass --tokenizer PATH");
        return (beside, TokenizerLoader.Load(beside));
    }

    // A tokenizer.json in SentencePiece style (Metaspace) is a variant this product leaves to tokenizer.model.
    private static ITextTokenizer? TryLoadSupported(string path)
    {
        try
        {
            return TokenizerLoader.Load(path);
        }
        catch (TokenizerFormatException e) when (e.IsUnsupportedVariant)
        {
            return null;
        }
    }
}
