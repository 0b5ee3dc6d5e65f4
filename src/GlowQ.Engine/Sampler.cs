using System.Numerics.Tensors;

namespace GlowQ.Engine;

/// <summary>Sampling settings; temperature 0 means greedy (argmax, lowest id on ties).</summary>
public sealed record SamplingOptions
{
    public float Temperature { get; init; } = 0.8f;

    /// <summary>Keep the K most likely tokens; 0 disables.</summary>
    public int TopK { get; init; } = 40;

    /// <summary>Keep the smallest set whose probability reaches P; 1 disables.</summary>
    public float TopP { get; init; } = 0.95f;

    /// <summary>Drop tokens less likely than MinP × the top token's probability; 0 disables.</summary>
    public float MinP { get; init; } = 0.05f;

    /// <summary>Divide positive (multiply negative) logits of recently seen tokens by this; 1 disables.</summary>
    public float RepeatPenalty { get; init; } = 1.0f;

    /// <summary>How many of the most recent tokens the repeat penalty looks at.</summary>
    public int RepeatLastN { get; init; } = 64;

    public ulong Seed { get; init; }

    /// <summary>One-line error for out-of-range settings, or null.</summary>
    public string? Problem() =>
        !(Temperature >= 0) ? $"--temperature must be ≥ 0, got {Temperature}"
        : TopK < 0 ? $"--top-k must be ≥ 0, got {TopK}"
        : !(TopP > 0 && TopP <= 1) ? $"--top-p must be in (0, 1], got {TopP}"
        : !(MinP >= 0 && MinP < 1) ? $"--min-p must be in [0, 1), got {MinP}"
        : !(RepeatPenalty > 0) ? $"--repeat-penalty must be > 0, got {RepeatPenalty}"
        : RepeatLastN < 0 ? $"--repeat-last-n must be ≥ 0, got {RepeatLastN}"
        : null;
}

/// <summary>
/// Turns logits into a token: repeat penalty, then temperature, top-k, top-p and min-p filtering, then a draw
/// from the renormalised distribution. Buffers are sized once; sampling allocates nothing.
/// </summary>
public sealed class Sampler
{
    private readonly SamplingOptions _options;
    private readonly float[] _probabilities;
    private readonly int[] _candidates;
    private readonly bool[] _penalised;
    private readonly int[] _recent;
    private readonly Comparison<int> _byDescendingProbability;
    private ulong _state;

    public Sampler(int vocabSize, SamplingOptions options)
    {
        _options = options;
        _probabilities = new float[vocabSize];
        _candidates = new int[vocabSize];
        _penalised = new bool[vocabSize];
        _recent = new int[Math.Min(options.RepeatLastN, vocabSize)];
        _state = options.Seed == 0 ? 0x9E3779B97F4A7C15UL : options.Seed;

        // Descending by probability, ascending id on ties, so results never depend on sort stability.
        _byDescendingProbability = (a, b) =>
        {
            int byProbability = _probabilities[b].CompareTo(_probabilities[a]);
            return byProbability != 0 ? byProbability : a.CompareTo(b);
        };
    }

    /// <summary>Whether every choice is the largest logit: temperature 0 and no repetition penalty to apply first.</summary>
    public bool IsPlainGreedy => _options.Temperature == 0 && _options.RepeatPenalty == 1f;

    public SamplingOptions Options => _options;

    /// <summary>
    /// Whether a device sampler whose kernels keep at most <paramref name="maxTopK"/> candidates can take this sampler's
    /// place: a temperature above 0 and a top-k in (0, maxTopK]. Greedy decoding and unbounded top-k stay elsewhere
    /// (the device argmax, or the host).
    /// </summary>
    public bool CanSampleOnDevice(int maxTopK) => _options.Temperature > 0 && _options.TopK > 0 && _options.TopK <= maxTopK;

    /// <summary>
    /// The distinct ids the repetition penalty applies to after <paramref name="history"/>, in order of first
    /// appearance among the last RepeatLastN tokens, ids outside the vocabulary left out; empty when the penalty is off.
    /// The span is the sampler's own buffer, valid until the next call.
    /// </summary>
    public ReadOnlySpan<int> PenalisedTokens(ReadOnlySpan<int> history)
    {
        if (_options.RepeatPenalty == 1f || _options.RepeatLastN == 0)
        {
            return [];
        }

        ReadOnlySpan<int> recent = history.Length > _options.RepeatLastN ? history[^_options.RepeatLastN..] : history;
        int count = 0;
        foreach (int token in recent)
        {
            if ((uint)token < (uint)_penalised.Length && !_penalised[token])
            {
                _penalised[token] = true;
                _recent[count++] = token;
            }
        }

        ReadOnlySpan<int> distinct = _recent.AsSpan(0, count);
        foreach (int token in distinct)
        {
            _penalised[token] = false;
        }

        return distinct;
    }

    /// <summary>
    /// The next uniform number in [0, 1) of the seeded stream: <see cref="Sample"/> takes exactly one per sampled token,
    /// so a device sampler that takes one per token instead gives the same sequence for the same seed.
    /// </summary>
    public float NextUniform()
    {
        // xorshift64*: tiny, fast and reproducible across platforms and runtime versions.
        _state ^= _state >> 12;
        _state ^= _state << 25;
        _state ^= _state >> 27;
        return ((_state * 0x2545F4914F6CDD1DUL) >> 40) / 16777216f;
    }

    /// <summary>Picks the next token from <paramref name="logits"/> (modified in place) given the tokens so far.</summary>
    public int Sample(Span<float> logits, ReadOnlySpan<int> history)
    {
        ApplyRepeatPenalty(logits, history);
        if (_options.Temperature == 0)
        {
            return TensorPrimitives.IndexOfMax(logits);
        }

        Span<float> p = _probabilities.AsSpan(0, logits.Length);
        TensorPrimitives.Multiply(logits, 1f / _options.Temperature, p);
        VectorMath.Softmax(p);

        int count = SelectCandidates(p);
        Span<int> candidates = _candidates.AsSpan(0, count);
        float topProbability = p[candidates[0]];
        float cumulative = 0;
        int keep = 0;
        while (keep < count)
        {
            float probability = p[candidates[keep]];
            if (keep > 0 && probability < _options.MinP * topProbability)
            {
                break;
            }

            cumulative += probability;
            keep++;
            if (cumulative >= _options.TopP)
            {
                break;
            }
        }

        float draw = NextUniform() * cumulative;
        float running = 0;
        for (int i = 0; i < keep; i++)
        {
            running += p[candidates[i]];
            if (draw < running)
            {
                return candidates[i];
            }
        }

        return candidates[keep - 1];
    }

    /// <summary>Fills _candidates with the most likely ids in descending probability; returns how many.</summary>
    private int SelectCandidates(ReadOnlySpan<float> p)
    {
        int vocab = p.Length;
        int n;
        if (_options.TopK > 0 && _options.TopK < vocab)
        {
            n = SelectTopK(p, _options.TopK);
        }
        else
        {
            // Tokens below this share can never be inside the top-p set before the first one is; skipping them keeps
            // the sort short on large vocabularies (the same pre-filter llama2.c uses for top-p).
            float floor = _options.TopP < 1 ? (1 - _options.TopP) / Math.Max(1, vocab - 1) : 0;
            n = 0;
            for (int i = 0; i < vocab; i++)
            {
                if (p[i] >= floor)
                {
                    _candidates[n++] = i;
                }
            }

            if (n == 0)
            {
                _candidates[0] = TensorPrimitives.IndexOfMax(p);
                return 1;
            }
        }

        _candidates.AsSpan(0, n).Sort(_byDescendingProbability);
        return n;
    }

    /// <summary>The k most likely ids (unordered) into _candidates[0..k), by a size-k min-heap: O(V log k).</summary>
    private int SelectTopK(ReadOnlySpan<float> p, int k)
    {
        Span<int> heap = _candidates.AsSpan(0, k);
        for (int i = 0; i < k; i++)
        {
            heap[i] = i;
            SiftUp(heap, i);
        }

        for (int i = k; i < p.Length; i++)
        {
            if (_byDescendingProbability(i, heap[0]) < 0)
            {
                heap[0] = i;
                SiftDown(heap, 0);
            }
        }

        return k;
    }

    // Heap order: the root is the least likely kept id (the "largest" under the descending comparison).
    private void SiftUp(Span<int> heap, int i)
    {
        while (i > 0)
        {
            int parent = (i - 1) / 2;
            if (_byDescendingProbability(heap[i], heap[parent]) <= 0)
            {
                return;
            }

            (heap[i], heap[parent]) = (heap[parent], heap[i]);
            i = parent;
        }
    }

    private void SiftDown(Span<int> heap, int i)
    {
        while (true)
        {
            int left = 2 * i + 1, right = left + 1, largest = i;
            if (left < heap.Length && _byDescendingProbability(heap[left], heap[largest]) > 0)
            {
                largest = left;
            }

            if (right < heap.Length && _byDescendingProbability(heap[right], heap[largest]) > 0)
            {
                largest = right;
            }

            if (largest == i)
            {
                return;
            }

            (heap[i], heap[largest]) = (heap[largest], heap[i]);
            i = largest;
        }
    }

    private void ApplyRepeatPenalty(Span<float> logits, ReadOnlySpan<int> history)
    {
        foreach (int token in PenalisedTokens(history))
        {
            if ((uint)token >= (uint)logits.Length)
            {
                continue;
            }

            logits[token] = logits[token] > 0 ? logits[token] / _options.RepeatPenalty : logits[token] * _options.RepeatPenalty;
        }
    }
}
