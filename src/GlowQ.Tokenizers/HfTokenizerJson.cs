using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace GlowQ.Tokenizers;

/// <summary>
/// A byte-level BPE tokenizer read from a Hugging Face <c>tokenizer.json</c> (Llama-3, Qwen2, SmolLM, GPT-2 …).
/// </summary>
/// <remarks>
/// <para>The BPE merges themselves are done by Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/> (ByteLevel = true,
/// the file's vocab and merges). The rest of HF's encoding pipeline is done here, because the library has no
/// tokenizer.json loader and cannot express it: added tokens are cut out first with HF's rules (leftmost-longest,
/// single_word/lstrip/rstrip, normalized or not); the normalizer runs on the remaining text; the pre-tokenizer runs as
/// HF runs it (a Sequence of Split/ByteLevel/Digits steps, where ByteLevel's add_prefix_space applies to every piece);
/// and <c>ignore_merges</c> (Llama-3) — a pre-token that is itself in the vocabulary is one token, without merges — is
/// checked before calling the library, which has no such option.</para>
/// <para>BOS: the special tokens a TemplateProcessing (or Roberta/Bert) post-processor puts before the sequence
/// (Llama-3's &lt;|begin_of_text|&gt;; Qwen2 has none), else tokenizer_config.json's bos_token when its add_bos_token is
/// true. Tokens the template puts after the sequence are not added. EOS ids: tokenizer_config.json's eos_token, then
/// whichever of &lt;|end_of_text|&gt;, &lt;|eot_id|&gt;, &lt;|eom_id|&gt;, &lt;|im_end|&gt;, &lt;|endoftext|&gt;, &lt;/s&gt; exist.</para>
/// <para>Known limits: .NET regular expressions see UTF-16 code units, so \p{L} does not match letters outside the BMP
/// (HF's regex engines see code points); Unicode normalizers are no-ops under InvariantGlobalization (see
/// <see cref="UnicodeNormalizerStep"/>). Only byte-level BPE is supported: a SentencePiece-style tokenizer.json
/// (Metaspace, byte_fallback) gives a <see cref="TokenizerFormatException"/> with <see cref="TokenizerFormatException.IsUnsupportedVariant"/>.</para>
/// </remarks>
public sealed class HfTokenizerJson : ITextTokenizer
{
    private static readonly string[] EosCandidates = ["<|end_of_text|>", "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|endoftext|>", "</s>"];

    private readonly BpeTokenizer _bpe;
    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int> _addedByContent;
    private readonly bool _ignoreMerges;
    private readonly AddedTokenMatcher _rawAddedTokens;
    private readonly AddedTokenMatcher _normalizedAddedTokens;
    private readonly AddedTokenMatcher _rawOrdinaryAddedTokens;        // the two above without the special tokens
    private readonly AddedTokenMatcher _normalizedOrdinaryAddedTokens;
    private readonly NormalizerStep[] _normalizers;
    private readonly PreTokenizerStep[] _preTokenizers;
    private readonly int[] _bosPrefix;
    private readonly int[] _eosIds;
    private readonly byte[]?[] _tokenBytes; // null: no token has this id; empty: special token

    private HfTokenizerJson(Parts parts)
    {
        SourceName = parts.SourceName;
        _bpe = parts.Bpe;
        _vocab = parts.Vocab;
        _addedByContent = parts.AddedTokens.GroupBy(t => t.Content, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First().Id, StringComparer.Ordinal);
        _ignoreMerges = parts.IgnoreMerges;
        // HF cuts out the non-normalized added tokens first, normalizes the rest, then cuts out the normalized ones
        // (two passes even without a normalizer, which matters when tokens of the two kinds overlap).
        _rawAddedTokens = new AddedTokenMatcher(parts.AddedTokens.Where(t => !t.Normalized));
        _normalizedAddedTokens = new AddedTokenMatcher(parts.AddedTokens.Where(t => t.Normalized));
        _rawOrdinaryAddedTokens = new AddedTokenMatcher(parts.AddedTokens.Where(t => !t.Normalized && !t.Special));
        _normalizedOrdinaryAddedTokens = new AddedTokenMatcher(parts.AddedTokens.Where(t => t.Normalized && !t.Special));
        _normalizers = parts.Normalizers;
        _preTokenizers = parts.PreTokenizers;
        _bosPrefix = parts.BosPrefix;
        _eosIds = parts.EosIds;
        SpecialTokens = parts.AddedTokens.Where(t => t.Special).GroupBy(t => t.Content, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First().Id, StringComparer.Ordinal);

        int size = 0;
        foreach (int id in _vocab.Values)
        {
            size = Math.Max(size, id + 1);
        }

        foreach (AddedToken t in parts.AddedTokens)
        {
            size = Math.Max(size, t.Id + 1);
        }

        _tokenBytes = new byte[]?[size];
        foreach ((string piece, int id) in _vocab)
        {
            _tokenBytes[id] ??= ByteLevelEncoding.Decode(piece);
        }

        foreach (AddedToken t in parts.AddedTokens)
        {
            // Added tokens override the vocabulary entry of the same id (GPT-2's <|endoftext|> is in both).
            _tokenBytes[t.Id] = t.Special ? [] : ByteLevelEncoding.Decode(t.Content);
        }
    }

    /// <inheritdoc />
    public int VocabularySize => _tokenBytes.Length;

    /// <inheritdoc />
    public int? BosId => _bosPrefix.Length > 0 ? _bosPrefix[0] : null;

    /// <inheritdoc />
    public IReadOnlyList<int> EosIds => _eosIds;

    /// <inheritdoc />
    public string Description => $"HF byte-level BPE {SourceName} ({VocabularySize} tokens)";

    /// <summary>File name the tokenizer was read from (used in messages).</summary>
    public string SourceName { get; }

    /// <summary>Added tokens marked special (content → id); they contribute no bytes when decoding.</summary>
    public IReadOnlyDictionary<string, int> SpecialTokens { get; }

    /// <summary>Loads a tokenizer.json, and tokenizer_config.json from the same folder when present (bos/eos tokens).</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="TokenizerFormatException">The file is malformed or not a byte-level BPE tokenizer.</exception>
    public static HfTokenizerJson Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Tokenizer file not found: {path}", path);
        }

        string? configPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".", "tokenizer_config.json");
        byte[]? config = File.Exists(configPath) ? File.ReadAllBytes(configPath) : null;
        return Parse(File.ReadAllBytes(path), Path.GetFileName(path), config);
    }

    /// <summary>Parses the bytes of a tokenizer.json (and optionally of its tokenizer_config.json).</summary>
    /// <exception cref="TokenizerFormatException">The data is malformed or not a byte-level BPE tokenizer.</exception>
    public static HfTokenizerJson Parse(byte[] tokenizerJson, string sourceName = "tokenizer.json", byte[]? tokenizerConfigJson = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizerJson);
        ArgumentNullException.ThrowIfNull(sourceName);
        using JsonDocument document = ParseJson(tokenizerJson, sourceName);
        JsonDocument? config = tokenizerConfigJson is null ? null : ParseJson(tokenizerConfigJson, "tokenizer_config.json");
        try
        {
            return new HfTokenizerJson(new Reader(sourceName).Read(document.RootElement, config?.RootElement));
        }
        finally
        {
            config?.Dispose();
        }
    }

    /// <summary>Looks up a token by its text: an added token's content, or a vocabulary piece in byte-level form.</summary>
    public bool TryGetTokenId(string token, out int id) => _addedByContent.TryGetValue(token, out id) || _vocab.TryGetValue(token, out id);

    /// <inheritdoc />
    public int[] Encode(string text, bool addBos) => Encode(text, addBos, splitSpecialTokens: false);

    /// <summary>
    /// Encodes <paramref name="text"/>; with <paramref name="splitSpecialTokens"/> (HF's <c>split_special_tokens</c>) the
    /// text of a special token such as &lt;|eot_id|&gt; is encoded as ordinary text instead of becoming that token, so
    /// that text from a user cannot forge a chat template's control tokens. Non-special added tokens are matched either way.
    /// </summary>
    public int[] Encode(string text, bool addBos, bool splitSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        AddedTokenMatcher rawAddedTokens = splitSpecialTokens ? _rawOrdinaryAddedTokens : _rawAddedTokens;
        AddedTokenMatcher normalizedAddedTokens = splitSpecialTokens ? _normalizedOrdinaryAddedTokens : _normalizedAddedTokens;
        var ids = new List<int>(text.Length / 3 + 4);
        if (addBos)
        {
            ids.AddRange(_bosPrefix);
        }

        if (text.Length == 0)
        {
            return [.. ids];
        }

        List<(string Text, int Id)> segments = [(TextUtilities.ReplaceLoneSurrogates(text), -1)];
        if (!rawAddedTokens.IsEmpty)
        {
            segments = rawAddedTokens.Split(segments);
        }

        if (_normalizers.Length > 0)
        {
            for (int i = 0; i < segments.Count; i++)
            {
                if (segments[i].Id < 0)
                {
                    string normalized = segments[i].Text;
                    foreach (NormalizerStep step in _normalizers)
                    {
                        normalized = step.Normalize(normalized);
                    }

                    segments[i] = (normalized, -1);
                }
            }
        }

        if (!normalizedAddedTokens.IsEmpty)
        {
            segments = normalizedAddedTokens.Split(segments);
        }

        var pieces = new List<string>();
        var next = new List<string>();
        foreach ((string segmentText, int id) in segments)
        {
            if (id >= 0)
            {
                ids.Add(id);
                continue;
            }

            if (segmentText.Length == 0)
            {
                continue;
            }

            pieces.Clear();
            pieces.Add(segmentText);
            foreach (PreTokenizerStep step in _preTokenizers)
            {
                next.Clear();
                foreach (string piece in pieces)
                {
                    step.Split(piece, next);
                }

                (pieces, next) = (next, pieces);
            }

            foreach (string piece in pieces)
            {
                EncodePreToken(piece, ids);
            }
        }

        return [.. ids];
    }

    /// <inheritdoc />
    public void AppendTokenBytes(int token, int previousToken, List<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if ((uint)token >= (uint)_tokenBytes.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(token), token, $"Token id must be in [0, {_tokenBytes.Length}).");
        }

        if (_tokenBytes[token] is byte[] bytes)
        {
            destination.AddRange(bytes);
        }
    }

    /// <inheritdoc />
    public string Decode(ReadOnlySpan<int> tokens) => TextTokenizerDecoding.DecodeViaBytes(this, tokens);

    private void EncodePreToken(string piece, List<int> ids)
    {
        if (_ignoreMerges && _vocab.TryGetValue(ByteLevelEncoding.Encode(piece), out int whole))
        {
            ids.Add(whole);
            return;
        }

        // The library maps the piece's UTF-8 bytes to byte-level characters itself (ByteLevel = true) and applies the merges.
        ids.AddRange(_bpe.EncodeToIds(piece, considerPreTokenization: false, considerNormalization: false));
    }

    private static JsonDocument ParseJson(byte[] json, string sourceName)
    {
        try
        {
            return JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip, MaxDepth = 256 });
        }
        catch (JsonException ex)
        {
            throw new TokenizerFormatException(sourceName, $"invalid JSON: {ex.Message}", ex);
        }
    }

    private sealed class Parts
    {
        public required string SourceName { get; init; }

        public required BpeTokenizer Bpe { get; init; }

        public required Dictionary<string, int> Vocab { get; init; }

        public required List<AddedToken> AddedTokens { get; init; }

        public required bool IgnoreMerges { get; init; }

        public required NormalizerStep[] Normalizers { get; init; }

        public required PreTokenizerStep[] PreTokenizers { get; init; }

        public required int[] BosPrefix { get; init; }

        public required int[] EosIds { get; init; }
    }

    /// <summary>Reads and validates tokenizer.json; every problem becomes a one-line <see cref="TokenizerFormatException"/>.</summary>
    private sealed class Reader(string sourceName)
    {
        private const int MaxVocabularyId = 16 * 1024 * 1024;

        public Parts Read(JsonElement root, JsonElement? config)
        {
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Error("the top level is not a JSON object");
            }

            JsonElement model = Required(root, "model", JsonValueKind.Object, "model");
            string type = OptionalString(model, "type", "model.type") ?? "BPE";
            if (type != "BPE")
            {
                throw Error($"model.type is {type}; only BPE is supported", unsupported: true);
            }

            if (model.TryGetProperty("byte_fallback", out JsonElement byteFallback) && byteFallback.ValueKind == JsonValueKind.True)
            {
                throw Error("model.byte_fallback is true (a SentencePiece-style BPE); only byte-level BPE is supported", unsupported: true);
            }

            foreach (string affix in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            {
                if (!string.IsNullOrEmpty(OptionalString(model, affix, "model." + affix)))
                {
                    throw Error($"model.{affix} is set; byte-level BPE with sub-word affixes is not supported", unsupported: true);
                }
            }

            bool ignoreMerges = model.TryGetProperty("ignore_merges", out JsonElement ignore) && ignore.ValueKind == JsonValueKind.True;
            Dictionary<string, int> vocab = ReadVocab(Required(model, "vocab", JsonValueKind.Object, "model.vocab"));
            List<string> merges = ReadMerges(model, vocab);
            List<AddedToken> added = ReadAddedTokens(root);

            NormalizerStep[] normalizers = root.TryGetProperty("normalizer", out JsonElement normalizer) ? [.. ReadNormalizer(normalizer, "normalizer")] : [];
            var preTokenizers = new List<PreTokenizerStep>();
            bool byteLevel = false;
            if (root.TryGetProperty("pre_tokenizer", out JsonElement preTokenizer))
            {
                ReadPreTokenizer(preTokenizer, "pre_tokenizer", preTokenizers, ref byteLevel);
            }

            if (!byteLevel && !DecoderIsByteLevel(root))
            {
                throw Error("neither the pre_tokenizer nor the decoder is ByteLevel; only byte-level BPE is supported", unsupported: true);
            }

            string? unknown = OptionalString(model, "unk_token", "model.unk_token");
            var options = new BpeOptions(vocab)
            {
                Merges = merges,
                ByteLevel = true,
                UnknownToken = unknown is not null && vocab.ContainsKey(unknown) ? unknown : null,
                // The library's own pre-tokenizer is not used (Encode pre-tokenizes as HF does and passes single
                // pre-tokens); give it the model's regex anyway so that it is the right one.
                PreTokenizer = preTokenizers.Select(p => p is RegexSplitStep r ? r.Regex : (p as ByteLevelStep)?.Regex).FirstOrDefault(r => r is not null) is Regex regex
                    ? new RegexPreTokenizer(regex, null)
                    : null,
            };

            BpeTokenizer bpe;
            try
            {
                bpe = BpeTokenizer.Create(options);
            }
            catch (Exception ex) when (ex is InvalidOperationException or ArgumentException)
            {
                throw Error($"Microsoft.ML.Tokenizers rejected the BPE model: {ex.Message}", inner: ex);
            }

            Func<string, int?> resolve = content =>
                added.FirstOrDefault(t => t.Content == content) is AddedToken t ? t.Id :
                vocab.TryGetValue(content, out int id) ? id : null;

            int[] bos = root.TryGetProperty("post_processor", out JsonElement post) ? ReadBosPrefix(post, "post_processor", resolve) : [];
            if (bos.Length == 0 && config is JsonElement c && c.ValueKind == JsonValueKind.Object
                && c.TryGetProperty("add_bos_token", out JsonElement addBos) && addBos.ValueKind == JsonValueKind.True
                && ConfigToken(c, "bos_token") is string bosToken && resolve(bosToken) is int bosId)
            {
                bos = [bosId];
            }

            var eos = new List<int>();
            if (config is JsonElement cfg && cfg.ValueKind == JsonValueKind.Object && ConfigToken(cfg, "eos_token") is string eosToken && resolve(eosToken) is int eosId)
            {
                eos.Add(eosId);
            }

            foreach (string candidate in EosCandidates)
            {
                if (resolve(candidate) is int id && !eos.Contains(id))
                {
                    eos.Add(id);
                }
            }

            return new Parts
            {
                SourceName = sourceName,
                Bpe = bpe,
                Vocab = vocab,
                AddedTokens = added,
                IgnoreMerges = ignoreMerges,
                Normalizers = normalizers,
                PreTokenizers = [.. preTokenizers],
                BosPrefix = bos,
                EosIds = [.. eos],
            };
        }

        private Dictionary<string, int> ReadVocab(JsonElement vocabElement)
        {
            var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (JsonProperty entry in vocabElement.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0 || id > MaxVocabularyId)
                {
                    throw Error($"model.vocab entry \"{Shorten(entry.Name)}\" has id {Shorten(entry.Value.GetRawText())}, expected an integer in [0, {MaxVocabularyId}]");
                }

                if (!vocab.TryAdd(entry.Name, id))
                {
                    throw Error($"model.vocab has \"{Shorten(entry.Name)}\" twice");
                }
            }

            if (vocab.Count == 0)
            {
                throw Error("model.vocab is empty");
            }

            return vocab;
        }

        private List<string> ReadMerges(JsonElement model, Dictionary<string, int> vocab)
        {
            var pairs = new List<(string Left, string Right)>();
            if (model.TryGetProperty("merges", out JsonElement merges) && merges.ValueKind != JsonValueKind.Null)
            {
                if (merges.ValueKind != JsonValueKind.Array)
                {
                    throw Error($"model.merges is {merges.ValueKind}, expected an array");
                }

                int index = 0;
                foreach (JsonElement merge in merges.EnumerateArray())
                {
                    string left;
                    string right;
                    if (merge.ValueKind == JsonValueKind.String)
                    {
                        // Older format: "left right" (byte-level pieces never contain a plain space).
                        string text = merge.GetString()!;
                        string[] parts = text.Split(' ');
                        if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
                        {
                            throw Error($"model.merges[{index}] is \"{Shorten(text)}\", expected two pieces separated by one space");
                        }

                        (left, right) = (parts[0], parts[1]);
                    }
                    else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2
                             && merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String)
                    {
                        left = merge[0].GetString()!;
                        right = merge[1].GetString()!;
                        if (left.Contains(' ', StringComparison.Ordinal) || right.Contains(' ', StringComparison.Ordinal) || left.Length == 0 || right.Length == 0)
                        {
                            // Microsoft.ML.Tokenizers takes merges as "left right" strings, so a piece with a space cannot be passed.
                            throw Error($"model.merges[{index}] has an empty piece or a piece with a plain space, which byte-level BPE never has", unsupported: true);
                        }
                    }
                    else
                    {
                        throw Error($"model.merges[{index}] is {Shorten(merge.GetRawText())}, expected \"a b\" or [\"a\", \"b\"]");
                    }

                    if (!vocab.ContainsKey(left) || !vocab.ContainsKey(right))
                    {
                        throw Error($"model.merges[{index}] (\"{Shorten(left)}\", \"{Shorten(right)}\") uses a piece that is not in model.vocab");
                    }

                    if (!vocab.ContainsKey(left + right))
                    {
                        throw Error($"model.merges[{index}] (\"{Shorten(left)}\", \"{Shorten(right)}\") makes \"{Shorten(left + right)}\", which is not in model.vocab");
                    }

                    pairs.Add((left, right));
                    index++;
                }
            }

            // HF keeps the last rank of a repeated pair (its merge map is built by inserting in order); the library
            // rejects repeats, so drop the earlier copies (relative order, hence priority, is unchanged).
            var lastIndex = new Dictionary<(string, string), int>(pairs.Count);
            for (int i = 0; i < pairs.Count; i++)
            {
                lastIndex[pairs[i]] = i;
            }

            var result = new List<string>(lastIndex.Count);
            for (int i = 0; i < pairs.Count; i++)
            {
                if (lastIndex[pairs[i]] == i)
                {
                    result.Add(pairs[i].Left + " " + pairs[i].Right);
                }
            }

            return result;
        }

        private List<AddedToken> ReadAddedTokens(JsonElement root)
        {
            var tokens = new List<AddedToken>();
            if (!root.TryGetProperty("added_tokens", out JsonElement array) || array.ValueKind == JsonValueKind.Null)
            {
                return tokens;
            }

            if (array.ValueKind != JsonValueKind.Array)
            {
                throw Error($"added_tokens is {array.ValueKind}, expected an array");
            }

            int index = 0;
            foreach (JsonElement entry in array.EnumerateArray())
            {
                string where = $"added_tokens[{index++}]";
                if (entry.ValueKind != JsonValueKind.Object)
                {
                    throw Error($"{where} is {entry.ValueKind}, expected an object");
                }

                JsonElement idElement = Required(entry, "id", JsonValueKind.Number, where + ".id");
                if (!idElement.TryGetInt32(out int id) || id < 0 || id > MaxVocabularyId)
                {
                    throw Error($"{where}.id is {Shorten(idElement.GetRawText())}, expected an integer in [0, {MaxVocabularyId}]");
                }

                string content = Required(entry, "content", JsonValueKind.String, where + ".content").GetString()!;
                bool special = Flag(entry, "special", false);
                tokens.Add(new AddedToken(
                    id,
                    content,
                    special,
                    Flag(entry, "single_word", false),
                    Flag(entry, "lstrip", false),
                    Flag(entry, "rstrip", false),
                    Flag(entry, "normalized", !special)));
            }

            return tokens;
        }

        private List<NormalizerStep> ReadNormalizer(JsonElement element, string where)
        {
            var steps = new List<NormalizerStep>();
            if (element.ValueKind == JsonValueKind.Null)
            {
                return steps;
            }

            string type = TypeOf(element, where);
            switch (type)
            {
                case "Sequence":
                    int i = 0;
                    foreach (JsonElement inner in Required(element, "normalizers", JsonValueKind.Array, where + ".normalizers").EnumerateArray())
                    {
                        steps.AddRange(ReadNormalizer(inner, $"{where}.normalizers[{i++}]"));
                    }

                    break;
                case "NFC": steps.Add(new UnicodeNormalizerStep(NormalizationForm.FormC)); break;
                case "NFD": steps.Add(new UnicodeNormalizerStep(NormalizationForm.FormD)); break;
                case "NFKC": steps.Add(new UnicodeNormalizerStep(NormalizationForm.FormKC)); break;
                case "NFKD": steps.Add(new UnicodeNormalizerStep(NormalizationForm.FormKD)); break;
                case "Lowercase": steps.Add(new LowercaseStep()); break;
                case "Strip": steps.Add(new StripStep(Flag(element, "strip_left", true), Flag(element, "strip_right", true))); break;
                case "Prepend": steps.Add(new PrependStep(Required(element, "prepend", JsonValueKind.String, where + ".prepend").GetString()!)); break;
                case "Replace":
                    (Regex? regex, string? literal) = ReadPattern(element, where);
                    steps.Add(new ReplaceStep(regex, literal, Required(element, "content", JsonValueKind.String, where + ".content").GetString()!));
                    break;
                default:
                    throw Error($"{where} type {type} is not supported", unsupported: true);
            }

            return steps;
        }

        private void ReadPreTokenizer(JsonElement element, string where, List<PreTokenizerStep> steps, ref bool byteLevel)
        {
            if (element.ValueKind == JsonValueKind.Null)
            {
                return;
            }

            string type = TypeOf(element, where);
            if (byteLevel && type is "Split" or "Digits")
            {
                // After ByteLevel, HF's later steps see mapped characters ('Ġ' for ' '); that order is not supported.
                throw Error($"{where} ({type}) comes after ByteLevel, which is not supported", unsupported: true);
            }

            switch (type)
            {
                case "Sequence":
                    int i = 0;
                    foreach (JsonElement inner in Required(element, "pretokenizers", JsonValueKind.Array, where + ".pretokenizers").EnumerateArray())
                    {
                        ReadPreTokenizer(inner, $"{where}.pretokenizers[{i++}]", steps, ref byteLevel);
                    }

                    break;
                case "ByteLevel":
                    byteLevel = true;
                    steps.Add(new ByteLevelStep(
                        Flag(element, "add_prefix_space", true),
                        Flag(element, "use_regex", true) ? CreateRegex(ByteLevelStep.Gpt2Pattern, where) : null));
                    break;
                case "Split":
                    (Regex? regex, string? literal) = ReadPattern(element, where);
                    string behaviorName = Required(element, "behavior", JsonValueKind.String, where + ".behavior").GetString()!;
                    if (!Enum.TryParse(behaviorName, ignoreCase: false, out SplitBehavior behavior) || !Enum.IsDefined(behavior))
                    {
                        throw Error($"{where}.behavior {behaviorName} is not supported");
                    }

                    bool invert = Flag(element, "invert", false);
                    steps.Add(regex is not null ? new RegexSplitStep(regex, behavior, invert) : new StringSplitStep(literal!, behavior, invert));
                    break;
                case "Digits":
                    steps.Add(new DigitsStep(Flag(element, "individual_digits", false)));
                    break;
                default:
                    throw Error($"{where} type {type} is not supported", unsupported: true);
            }
        }

        private (Regex? Regex, string? Literal) ReadPattern(JsonElement element, string where)
        {
            JsonElement pattern = Required(element, "pattern", JsonValueKind.Object, where + ".pattern");
            if (pattern.TryGetProperty("Regex", out JsonElement regex) && regex.ValueKind == JsonValueKind.String)
            {
                return (CreateRegex(regex.GetString()!, where), null);
            }

            if (pattern.TryGetProperty("String", out JsonElement literal) && literal.ValueKind == JsonValueKind.String)
            {
                return (null, literal.GetString()!);
            }

            throw Error($"{where}.pattern has neither a Regex nor a String");
        }

        private Regex CreateRegex(string pattern, string where)
        {
            try
            {
                // Compiled is ignored (interpreted) under Native AOT, and speeds up pre-tokenization under the JIT.
                return new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled);
            }
            catch (ArgumentException ex)
            {
                throw Error($"{where} regex cannot be used by .NET: {ex.Message}", unsupported: true, inner: ex);
            }
        }

        private int[] ReadBosPrefix(JsonElement element, string where, Func<string, int?> resolve)
        {
            if (element.ValueKind == JsonValueKind.Null)
            {
                return [];
            }

            string type = TypeOf(element, where);
            switch (type)
            {
                case "Sequence":
                    int i = 0;
                    foreach (JsonElement inner in Required(element, "processors", JsonValueKind.Array, where + ".processors").EnumerateArray())
                    {
                        int[] prefix = ReadBosPrefix(inner, $"{where}.processors[{i++}]", resolve);
                        if (prefix.Length > 0)
                        {
                            return prefix;
                        }
                    }

                    return [];
                case "TemplateProcessing":
                    var ids = new List<int>();
                    JsonElement specials = element.TryGetProperty("special_tokens", out JsonElement s) && s.ValueKind == JsonValueKind.Object ? s : default;
                    foreach (JsonElement item in Required(element, "single", JsonValueKind.Array, where + ".single").EnumerateArray())
                    {
                        if (item.ValueKind != JsonValueKind.Object)
                        {
                            throw Error($"{where}.single has an item of kind {item.ValueKind}");
                        }

                        if (item.TryGetProperty("Sequence", out _))
                        {
                            break; // tokens after the sequence (e.g. an EOS) are not part of the BOS prefix
                        }

                        if (!item.TryGetProperty("SpecialToken", out JsonElement special) || !special.TryGetProperty("id", out JsonElement name) || name.ValueKind != JsonValueKind.String)
                        {
                            throw Error($"{where}.single has an item that is neither SpecialToken nor Sequence");
                        }

                        string tokenName = name.GetString()!;
                        if (specials.ValueKind == JsonValueKind.Object && specials.TryGetProperty(tokenName, out JsonElement entry)
                            && entry.TryGetProperty("ids", out JsonElement entryIds) && entryIds.ValueKind == JsonValueKind.Array)
                        {
                            foreach (JsonElement idElement in entryIds.EnumerateArray())
                            {
                                if (idElement.ValueKind != JsonValueKind.Number || !idElement.TryGetInt32(out int id) || id < 0 || id > MaxVocabularyId)
                                {
                                    throw Error($"{where}.special_tokens[\"{Shorten(tokenName)}\"].ids has an invalid id");
                                }

                                ids.Add(id);
                            }
                        }
                        else if (resolve(tokenName) is int id)
                        {
                            ids.Add(id);
                        }
                        else
                        {
                            throw Error($"{where} uses special token \"{Shorten(tokenName)}\", which is not defined");
                        }
                    }

                    return [.. ids];
                case "RobertaProcessing":
                case "BertProcessing":
                    JsonElement cls = Required(element, "cls", JsonValueKind.Array, where + ".cls");
                    if (cls.GetArrayLength() == 2 && cls[1].ValueKind == JsonValueKind.Number && cls[1].TryGetInt32(out int clsId) && clsId >= 0 && clsId <= MaxVocabularyId)
                    {
                        return [clsId];
                    }

                    throw Error($"{where}.cls is not [token, id]");
                default:
                    return []; // ByteLevel and other processors add no tokens in front
            }
        }

        private static bool DecoderIsByteLevel(JsonElement root)
        {
            if (!root.TryGetProperty("decoder", out JsonElement decoder) || decoder.ValueKind != JsonValueKind.Object)
            {
                return false;
            }

            if (decoder.TryGetProperty("type", out JsonElement type) && type.ValueKind == JsonValueKind.String && type.GetString() == "ByteLevel")
            {
                return true;
            }

            return decoder.TryGetProperty("decoders", out JsonElement list) && list.ValueKind == JsonValueKind.Array
                && list.EnumerateArray().Any(d => d.ValueKind == JsonValueKind.Object && d.TryGetProperty("type", out JsonElement t) && t.ValueKind == JsonValueKind.String && t.GetString() == "ByteLevel");
        }

        private static string? ConfigToken(JsonElement config, string name)
        {
            if (!config.TryGetProperty(name, out JsonElement value))
            {
                return null;
            }

            return value.ValueKind switch
            {
                JsonValueKind.String => value.GetString(),
                JsonValueKind.Object when value.TryGetProperty("content", out JsonElement content) && content.ValueKind == JsonValueKind.String => content.GetString(),
                _ => null,
            };
        }

        private string TypeOf(JsonElement element, string where)
        {
            if (element.ValueKind != JsonValueKind.Object)
            {
                throw Error($"{where} is {element.ValueKind}, expected an object");
            }

            return Required(element, "type", JsonValueKind.String, where + ".type").GetString()!;
        }

        private JsonElement Required(JsonElement element, string name, JsonValueKind kind, string where)
        {
            if (!element.TryGetProperty(name, out JsonElement value))
            {
                throw Error($"{where} is missing");
            }

            if (value.ValueKind != kind)
            {
                throw Error($"{where} is {value.ValueKind}, expected {kind}");
            }

            return value;
        }

        private string? OptionalString(JsonElement element, string name, string where)
        {
            if (!element.TryGetProperty(name, out JsonElement value) || value.ValueKind == JsonValueKind.Null)
            {
                return null;
            }

            return value.ValueKind == JsonValueKind.String ? value.GetString() : throw Error($"{where} is {value.ValueKind}, expected a string");
        }

        private bool Flag(JsonElement element, string name, bool defaultValue)
        {
            if (!element.TryGetProperty(name, out JsonElement value) || value.ValueKind == JsonValueKind.Null)
            {
                return defaultValue;
            }

            return value.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw Error($"{name} is {value.ValueKind}, expected true or false"),
            };
        }

        private static string Shorten(string text)
        {
            string oneLine = text.Replace("\r", "\\r", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
            return oneLine.Length <= 40 ? oneLine : string.Concat(oneLine.AsSpan(0, 40), "…");
        }

        private TokenizerFormatException Error(string problem, bool unsupported = false, Exception? inner = null) =>
            new(sourceName, problem, inner, unsupported);
    }
}
