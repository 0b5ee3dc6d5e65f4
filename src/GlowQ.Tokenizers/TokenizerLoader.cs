namespace GlowQ.Tokenizers;

/// <summary>Finds and loads the tokenizer of a model from a file or a model folder.</summary>
public static class TokenizerLoader
{
    /// <summary>
    /// Loads a tokenizer. <paramref name="path"/> may be a file — tokenizer.json (HF, by extension or a leading '{'),
    /// tokenizer.model (SentencePiece, by extension or its protobuf), anything else a llama2.c tokenizer.bin — or a folder,
    /// where tokenizer.json is preferred, then tokenizer.model, then tokenizer.bin (then a single tok*.bin). A folder's
    /// tokenizer.json that is not byte-level BPE (e.g. a SentencePiece-style one) gives way to its tokenizer.model.
    /// </summary>
    /// <param name="path">A tokenizer file or a folder holding one.</param>
    /// <param name="expectedVocabSize">For llama2.c files: the vocabulary size the model expects (checked), or null.</param>
    /// <exception cref="FileNotFoundException">Neither a file nor a folder with a tokenizer exists at <paramref name="path"/>.</exception>
    /// <exception cref="TokenizerFormatException">The tokenizer file is malformed or unsupported.</exception>
    public static ITextTokenizer Load(string path, int? expectedVocabSize = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path))
        {
            return LoadFromDirectory(path, expectedVocabSize);
        }

        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Tokenizer file or folder not found: {path}", path);
        }

        return LoadFile(path, expectedVocabSize);
    }

    /// <summary>
    /// For a llama2.c checkpoint: the tokenizer beside it — tokenizer.bin, else the only tok*.bin in the same folder —
    /// or null when there is none (or several tok*.bin).
    /// </summary>
    public static string? FindBesideCheckpoint(string checkpointPath)
    {
        ArgumentNullException.ThrowIfNull(checkpointPath);
        string? directory = Path.GetDirectoryName(Path.GetFullPath(checkpointPath));
        if (directory is null || !Directory.Exists(directory))
        {
            return null;
        }

        string standard = Path.Combine(directory, "tokenizer.bin");
        if (File.Exists(standard))
        {
            return standard;
        }

        string checkpoint = Path.GetFullPath(checkpointPath);
        string[] candidates = Directory.GetFiles(directory, "tok*.bin")
            .Where(f => !string.Equals(Path.GetFullPath(f), checkpoint, StringComparison.Ordinal))
            .ToArray();
        return candidates.Length == 1 ? candidates[0] : null;
    }

    private static ITextTokenizer LoadFromDirectory(string directory, int? expectedVocabSize)
    {
        string json = Path.Combine(directory, "tokenizer.json");
        string model = Path.Combine(directory, "tokenizer.model");
        string bin = Path.Combine(directory, "tokenizer.bin");
        if (File.Exists(json))
        {
            try
            {
                return HfTokenizerJson.Load(json);
            }
            catch (TokenizerFormatException ex) when (ex.IsUnsupportedVariant && File.Exists(model))
            {
                // e.g. Llama-2/TinyLlama HF folders: a SentencePiece-style tokenizer.json next to the tokenizer.model.
                return SentencePieceTokenizer.Load(model);
            }
        }

        if (File.Exists(model))
        {
            return SentencePieceTokenizer.Load(model);
        }

        if (File.Exists(bin))
        {
            return Llama2cTokenizer.Load(bin, expectedVocabSize);
        }

        string[] tok = Directory.GetFiles(directory, "tok*.bin");
        if (tok.Length == 1)
        {
            return Llama2cTokenizer.Load(tok[0], expectedVocabSize);
        }

        throw new FileNotFoundException($"No tokenizer.json, tokenizer.model or tokenizer.bin in {directory}", Path.Combine(directory, "tokenizer.json"));
    }

    private static ITextTokenizer LoadFile(string path, int? expectedVocabSize)
    {
        string extension = Path.GetExtension(path).ToUpperInvariant();
        byte[] data = File.ReadAllBytes(path);
        string name = Path.GetFileName(path);
        if (extension == ".JSON" || StartsWithJsonObject(data))
        {
            string? configPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".", "tokenizer_config.json");
            byte[]? config = File.Exists(configPath) ? File.ReadAllBytes(configPath) : null;
            return HfTokenizerJson.Parse(data, name, config);
        }

        if (extension == ".MODEL" || (extension != ".BIN" && SentencePieceModel.LooksLikeModelProto(data) && IsModelProto(data, name)))
        {
            return SentencePieceTokenizer.Parse(data, name);
        }

        return Llama2cTokenizer.Parse(data, name, expectedVocabSize);
    }

    private static bool IsModelProto(byte[] data, string name)
    {
        try
        {
            SentencePieceModel.Parse(data, name);
            return true;
        }
        catch (TokenizerFormatException)
        {
            return false;
        }
    }

    private static bool StartsWithJsonObject(ReadOnlySpan<byte> data)
    {
        if (data.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]))
        {
            data = data[3..];
        }

        foreach (byte b in data)
        {
            if (b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')
            {
                continue;
            }

            return b == (byte)'{';
        }

        return false;
    }
}
