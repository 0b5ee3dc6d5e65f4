using System.Diagnostics;
using System.Text;
using GlowQ.Tokenizers;

namespace GlowQ.Engine;

/// <summary>What one generation did and how long it took.</summary>
/// <param name="PromptTokens">Tokens before the generated ones (the whole conversation so far, in a chat).</param>
/// <param name="PrefilledTokens">Of those, the tokens this call ran through the model (the rest were in the KV cache).</param>
public sealed record GenerationResult(
    int PromptTokens,
    int GeneratedTokens,
    TimeSpan TimeToFirstToken,
    TimeSpan DecodeTime,
    string StopReason,
    int PrefilledTokens)
{
    /// <summary>Tokens per second after the first (the decode rate), or 0 when fewer than two tokens came out.</summary>
    public double DecodeTokensPerSecond => GeneratedTokens > 1 && DecodeTime > TimeSpan.Zero
        ? (GeneratedTokens - 1) / DecodeTime.TotalSeconds
        : 0;
}

/// <summary>
/// Prefills a prompt as one block, then samples and feeds back one token at a time, streaming text as it is made.
/// Multi-byte characters split across tokens are held back until complete. Stops at an end-of-sequence token
/// (or BOS, which starts a new document in models such as stories260K), the token limit, or a full context.
/// </summary>
public sealed class TextGenerator
{
    private readonly ILanguageModel _model;
    private readonly ITextTokenizer _tokenizer;
    private readonly HashSet<int> _stopTokens;
    private readonly float[] _logits;

    /// <param name="extraStopTokens">Tokens that also end a reply (a chat format's end-of-turn markers).</param>
    public TextGenerator(ILanguageModel model, ITextTokenizer tokenizer, IEnumerable<int>? extraStopTokens = null)
    {
        _model = model;
        _tokenizer = tokenizer;
        _stopTokens = [.. tokenizer.EosIds, .. model.Config.EosTokenIds, .. extraStopTokens ?? []];
        if (tokenizer.BosId is int bos)
        {
            _stopTokens.Add(bos);
        }

        _logits = new float[model.Config.VocabSize];
    }

    public GenerationResult Generate(
        IReadOnlyList<int> prompt,
        int maxNewTokens,
        SamplingOptions sampling,
        TextWriter output,
        CancellationToken cancellation = default)
    {
        if (prompt.Count == 0)
        {
            throw new ArgumentException("the prompt has no tokens", nameof(prompt));
        }

        if (prompt.Count >= _model.ContextLength)
        {
            throw new ArgumentException($"the prompt is {prompt.Count} tokens; the context holds {_model.ContextLength}, leaving no room to generate", nameof(prompt));
        }

        int capacity = Math.Min(prompt.Count + Math.Max(maxNewTokens, 0), _model.ContextLength);
        int[] history = new int[capacity];
        for (int i = 0; i < prompt.Count; i++)
        {
            history[i] = prompt[i];
        }

        int cached = 0, length = prompt.Count;
        return Continue(history, ref cached, ref length, maxNewTokens, new Sampler(_model.Config.VocabSize, sampling), output, cancellation);
    }

    /// <summary>
    /// Continues a token sequence of which the model's KV cache already holds the first <paramref name="cached"/>
    /// tokens: prefills history[cached..length) as one block, then samples into history from <paramref name="length"/>
    /// on (up to the array's end), streaming the text. On return <paramref name="length"/> includes the generated
    /// tokens and <paramref name="cached"/> says how many of them the cache holds (the last sampled token is not run
    /// until the sequence continues). A chat keeps one history across turns this way.
    /// </summary>
    public GenerationResult Continue(
        int[] history, ref int cached, ref int length, int maxNewTokens, Sampler sampler, TextWriter output, CancellationToken cancellation = default)
    {
        if (cached < 0 || cached >= length || length > history.Length || length >= _model.ContextLength)
        {
            throw new ArgumentException($"cannot continue {length} tokens ({cached} cached) in a history of {history.Length} and a context of {_model.ContextLength}");
        }

        int promptTokens = length, prefilled = length - cached;
        int limit = Math.Min(history.Length, _model.ContextLength);
        var bytes = new List<byte>(64);
        var chars = new char[256];
        Decoder utf8 = new UTF8Encoding(false, false).GetDecoder();
        var clock = Stopwatch.StartNew();
        TimeSpan firstToken = TimeSpan.Zero;
        string reason = "max-tokens";
        int generated = 0;

        // A model that can pick the token itself moves one id per step, not the logits: by argmax for plain greedy
        // decoding, by its own sampler for settings that sampler can take.
        IDeviceArgmax? deviceArgmax = sampler.IsPlainGreedy ? _model as IDeviceArgmax : null;
        IDeviceSampler? deviceSampler = deviceArgmax is null && _model is IDeviceSampler device && sampler.CanSampleOnDevice(device.MaxTopK)
            ? device
            : null;
        int chosen = Run(deviceArgmax, deviceSampler, sampler, history.AsSpan(0, length), cached);
        cached = length;
        while (generated < maxNewTokens)
        {
            if (cancellation.IsCancellationRequested)
            {
                reason = "cancelled";
                break;
            }

            int next = chosen >= 0 ? chosen : sampler.Sample(_logits, history.AsSpan(0, length));
            if (generated == 0)
            {
                firstToken = clock.Elapsed;
            }

            if (_stopTokens.Contains(next))
            {
                reason = "end-of-sequence";
                break;
            }

            generated++;
            bytes.Clear();
            _tokenizer.AppendTokenBytes(next, history[length - 1], bytes);
            Emit(utf8, bytes, chars, output, flush: false);
            history[length++] = next;
            if (generated == maxNewTokens)
            {
                break;
            }

            if (length >= limit)
            {
                reason = "context-full";
                break;
            }

            chosen = Run(deviceArgmax, deviceSampler, sampler, history.AsSpan(0, length), length - 1);
            cached = length;
        }

        Emit(utf8, [], chars, output, flush: true);
        output.Flush();
        TimeSpan total = clock.Elapsed;
        return new GenerationResult(promptTokens, generated, firstToken, total - firstToken, reason, prefilled);
    }

    /// <summary>
    /// Runs history[startPosition..] on the model: the device's choice when <paramref name="deviceArgmax"/> or
    /// <paramref name="deviceSampler"/> is set (the sampler's draw taken as <see cref="Sampler.Sample"/> would take
    /// it), else logits into _logits (and −1).
    /// </summary>
    private int Run(IDeviceArgmax? deviceArgmax, IDeviceSampler? deviceSampler, Sampler sampler, ReadOnlySpan<int> history, int startPosition)
    {
        ReadOnlySpan<int> tokens = history[startPosition..];
        if (deviceArgmax is not null)
        {
            return deviceArgmax.ForwardArgmax(tokens, startPosition);
        }

        if (deviceSampler is not null)
        {
            return deviceSampler.ForwardSample(tokens, startPosition, sampler.Options, sampler.PenalisedTokens(history), sampler.NextUniform());
        }

        _model.Forward(tokens, startPosition, _logits);
        return -1;
    }

    private static void Emit(Decoder utf8, List<byte> bytes, char[] chars, TextWriter output, bool flush)
    {
        ReadOnlySpan<byte> span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes);
        do
        {
            utf8.Convert(span, chars, flush, out int used, out int produced, out _);
            output.Write(chars, 0, produced);
            span = span[used..];
        }
        while (!span.IsEmpty);

        output.Flush();
    }
}
