using System.Numerics.Tensors;
using GlowQ.Format;

namespace GlowQ.Engine;

/// <summary>Run-time choices that do not change the model's weights or arithmetic (but for an fp16 KV cache's rounding).</summary>
public sealed record InferenceOptions
{
    /// <summary>Positions the KV cache holds; 0 = the model's maximum, capped at <see cref="DefaultContextCap"/>.</summary>
    public int ContextLength { get; init; }

    /// <summary>Worker threads; 0 = one per core.</summary>
    public int Threads { get; init; }

    /// <summary>Tokens per prefill step: prompts longer than this are processed in chunks.</summary>
    public int PrefillChunk { get; init; } = 64;

    /// <summary>
    /// Positions per chunk of decode attention on the GPU: a span longer than this is split into chunks that run in
    /// parallel and are joined afterwards (one thread per head and chunk instead of one per head).
    /// </summary>
    public int AttentionChunk { get; init; } = 256;

    /// <summary>
    /// GPU only: record each decoded token's kernels as a CUDA graph and launch it as one submission (the graph is
    /// updated in place from token to token). Off by default until it has been measured on a GPU.
    /// </summary>
    public bool DecodeGraphs { get; init; }

    /// <summary>How the KV cache stores keys and values: fp32 (the reference) or fp16, half the memory, rounded once when stored.</summary>
    public KvCacheDtype KvCacheDtype { get; init; } = KvCacheDtype.F32;

    public const int DefaultContextCap = 4096;

    /// <summary>The positions a model of <paramref name="config"/> holds under these options.</summary>
    public int ContextLengthFor(ModelConfig config) =>
        ContextLength > 0 ? ContextLength : Math.Min(config.MaxSequenceLength, DefaultContextCap);
}

/// <summary>
/// A Llama-family decoder running in fp32 on the CPU, with its KV cache. <see cref="Forward"/> processes a block of
/// tokens at consecutive positions: a whole prompt chunk (matrix–matrix work) or one decode token. The layer
/// projections are an <see cref="ILayerProjections"/>, so dense and int4 weights share everything else.
/// </summary>
public sealed class LlamaModel : ILanguageModel
{
    private readonly LlamaWeights? _w;
    private readonly LlamaFrame _frame;
    private readonly ILayerProjections _projections;
    private readonly ModelConfig _c;
    private readonly WorkerPool _pool;
    private readonly MatMul _matMul;
    private readonly Attention _attention;
    private readonly RotaryEmbedding _rope;
    private readonly KvCache _cache;
    private readonly int _chunk;

    // Activations for up to _chunk tokens, row-major [token][feature].
    private readonly float[] _x, _xNorm, _q, _k, _v, _attnOut, _proj, _hidden, _logits;
    private readonly float[] _cos, _sin;

    public LlamaModel(LlamaWeights weights, InferenceOptions? options = null)
        : this(LlamaFrame.Of(weights), (matMul, _, chunk) => new DenseProjections(weights, matMul, chunk), options)
    {
        _w = weights;
    }

    /// <param name="createProjections">Builds the layer projections on the model's matrix product and worker pool, for chunks of at most the given tokens.</param>
    public LlamaModel(LlamaFrame frame, Func<MatMul, WorkerPool, int, ILayerProjections> createProjections, InferenceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(frame);
        ArgumentNullException.ThrowIfNull(createProjections);
        options ??= new InferenceOptions();
        _frame = frame;
        _c = frame.Config;
        ContextLength = options.ContextLengthFor(_c);
        _chunk = Math.Max(1, options.PrefillChunk);
        _pool = new WorkerPool(options.Threads > 0 ? options.Threads : WorkerPool.DefaultThreadCount);
        int widest = Math.Max(Math.Max(_c.Dim, _c.HiddenDim), _c.QDim);
        _matMul = new MatMul(_pool, widest);
        _projections = createProjections(_matMul, _pool, _chunk);
        _attention = new Attention(_pool, _c.Heads, _c.KvHeads, _c.HeadDim, ContextLength, _c.SlidingWindow);
        _rope = new RotaryEmbedding(_c);
        _cache = new KvCache(_c.Layers, _c.KvHeads, _c.HeadDim, ContextLength, options.KvCacheDtype);

        _x = new float[_chunk * _c.Dim];
        _xNorm = new float[_chunk * _c.Dim];
        _q = new float[_chunk * _c.QDim];
        _k = new float[_chunk * _c.KvDim];
        _v = new float[_chunk * _c.KvDim];
        _attnOut = new float[_chunk * _c.QDim];
        _proj = new float[_chunk * _c.Dim];
        _hidden = new float[_chunk * _c.HiddenDim];
        _logits = new float[_chunk * _c.VocabSize];
        _cos = new float[_c.HeadDim / 2];
        _sin = new float[_c.HeadDim / 2];
    }

    public ModelConfig Config => _c;

    /// <summary>The dense weights; only a model built from <see cref="LlamaWeights"/> has them.</summary>
    public LlamaWeights Weights => _w ?? throw new InvalidOperationException("this model's projections are not dense weights");

    public long WeightBytes => _frame.ByteSize + _projections.ByteSize;

    public int ContextLength { get; }

    public int Threads => _pool.ThreadCount;

    public long KvCacheBytes => _cache.ByteSize;

    public KvCacheDtype KvCacheDtype => _cache.Dtype;

    /// <summary>The hidden states of <paramref name="tokens"/> before the first layer (row-major [tokens × dim]).</summary>
    public void Embed(ReadOnlySpan<int> tokens, Span<float> hidden)
    {
        for (int t = 0; t < tokens.Length; t++)
        {
            if ((uint)tokens[t] >= (uint)_c.VocabSize)
            {
                throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {tokens[t]} is outside the vocabulary (0..{_c.VocabSize - 1})");
            }

            _frame.Embedding.CopyRow(tokens[t], hidden.Slice(t * _c.Dim, _c.Dim));
        }
    }

    /// <summary>
    /// Runs <paramref name="tokens"/> at positions <paramref name="startPosition"/>… (the cache must already hold
    /// every earlier position) and writes logits: for the last token only into a vocab-sized
    /// <paramref name="logits"/>, or, when <paramref name="allPositions"/>, one vocab-sized row per token.
    /// </summary>
    public void Forward(ReadOnlySpan<int> tokens, int startPosition, Span<float> logits, bool allPositions = false, IActivationObserver? observer = null)
    {
        ForwardArguments.Check(tokens, startPosition, ContextLength, _c.VocabSize, logits.Length, allPositions);
        int vocab = _c.VocabSize;
        for (int done = 0; done < tokens.Length; done += _chunk)
        {
            int n = Math.Min(_chunk, tokens.Length - done);
            bool lastChunk = done + n == tokens.Length;
            ForwardChunk(tokens.Slice(done, n), startPosition + done, allPositions ? n : (lastChunk ? 1 : 0), observer);
            if (allPositions)
            {
                _logits.AsSpan(0, n * vocab).CopyTo(logits.Slice(done * vocab));
            }
            else if (lastChunk)
            {
                _logits.AsSpan(0, vocab).CopyTo(logits);
            }
        }
    }

    /// <summary>One chunk of at most _chunk tokens; logits for its last <paramref name="logitRows"/> tokens land in _logits.</summary>
    private void ForwardChunk(ReadOnlySpan<int> tokens, int start, int logitRows, IActivationObserver? observer)
    {
        int n = tokens.Length, dim = _c.Dim;

        Embed(tokens, _x);
        for (int l = 0; l < _c.Layers; l++)
        {
            DecoderLayer(l, n, start, observer);
        }

        if (logitRows == 0)
        {
            return;
        }

        // Final norm and output head, only for the rows whose logits are wanted.
        Head((n - logitRows) * dim, logitRows);
    }

    /// <summary>Final norm and output head of the <paramref name="rows"/> rows of _x from <paramref name="offset"/>, into _logits.</summary>
    private void Head(int offset, int rows)
    {
        int dim = _c.Dim;
        for (int t = 0; t < rows; t++)
        {
            VectorMath.RmsNorm(_x.AsSpan(offset + t * dim, dim), _frame.FinalNorm, _c.NormEps, _xNorm.AsSpan(t * dim, dim));
        }

        _matMul.Run(_frame.OutputHead, _xNorm, _logits, rows);
    }

    /// <summary>Logits of hidden states after the last layer (row-major [tokens × dim] in, [tokens × vocab] out).</summary>
    public void OutputLogits(ReadOnlySpan<float> hidden, int tokens, Span<float> logits)
    {
        int dim = _c.Dim, vocab = _c.VocabSize;
        for (int done = 0; done < tokens; done += _chunk)
        {
            int n = Math.Min(_chunk, tokens - done);
            hidden.Slice(done * dim, n * dim).CopyTo(_x);
            Head(0, n);
            _logits.AsSpan(0, n * vocab).CopyTo(logits.Slice(done * vocab));
        }
    }

    /// <summary>
    /// Runs only decoder layer <paramref name="layer"/> over one sequence of hidden states (row-major [tokens × dim],
    /// positions 0..tokens−1, updated in place), reporting each unit's input to <paramref name="observer"/>. Calibration
    /// uses it to advance stored activations one layer at a time, so memory holds one layer's statistics at most.
    /// </summary>
    public void RunLayer(int layer, Span<float> hidden, int tokens, IActivationObserver? observer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, _c.Layers);
        if (tokens > ContextLength || hidden.Length < tokens * _c.Dim)
        {
            throw new ArgumentOutOfRangeException(nameof(tokens), $"{tokens} tokens exceed the context length {ContextLength} or the hidden buffer");
        }

        int dim = _c.Dim;
        for (int done = 0; done < tokens; done += _chunk)
        {
            int n = Math.Min(_chunk, tokens - done);
            hidden.Slice(done * dim, n * dim).CopyTo(_x);
            DecoderLayer(layer, n, done, observer);
            _x.AsSpan(0, n * dim).CopyTo(hidden.Slice(done * dim, n * dim));
        }
    }

    /// <summary>One decoder layer over the n rows of _x at positions start.. (the KV cache holds earlier positions).</summary>
    private void DecoderLayer(int l, int n, int start, IActivationObserver? observer)
    {
        int dim = _c.Dim, qDim = _c.QDim, kvDim = _c.KvDim, hidden = _c.HiddenDim;

        // Attention block: pre-norm, q/k/v projections, rotary positions, cache, attention, output projection.
        NormRows(_frame.AttentionNorms[l], n);
        observer?.Observe(l, ActivationSite.AttentionInput, _xNorm.AsSpan(0, n * dim), n);
        _projections.QueryKeyValue(l, _xNorm, n, _q, _k, _v);
        for (int t = 0; t < n; t++)
        {
            _rope.Angles(start + t, _cos, _sin);
            _rope.Rotate(_q.AsSpan(t * qDim, qDim), _cos, _sin);
            _rope.Rotate(_k.AsSpan(t * kvDim, kvDim), _cos, _sin);
            _cache.Store(l, start + t, _k.AsSpan(t * kvDim, kvDim), _v.AsSpan(t * kvDim, kvDim));
        }

        _attention.Run(_cache, l, _q, _attnOut, start, n);
        observer?.Observe(l, ActivationSite.AttentionOutput, _attnOut.AsSpan(0, n * qDim), n);
        _projections.AttentionOutput(l, _attnOut, n, _proj);
        TensorPrimitives.Add(_x.AsSpan(0, n * dim), _proj.AsSpan(0, n * dim), _x.AsSpan(0, n * dim));

        // Feed-forward block: pre-norm, SwiGLU(gate, up), down projection, residual.
        NormRows(_frame.FfnNorms[l], n);
        observer?.Observe(l, ActivationSite.FfnInput, _xNorm.AsSpan(0, n * dim), n);
        _projections.GateUpSwiGlu(l, _xNorm, n, _hidden);
        observer?.Observe(l, ActivationSite.DownInput, _hidden.AsSpan(0, n * hidden), n);
        _projections.Down(l, _hidden, n, _proj);
        TensorPrimitives.Add(_x.AsSpan(0, n * dim), _proj.AsSpan(0, n * dim), _x.AsSpan(0, n * dim));
    }

    private void NormRows(float[] weight, int n)
    {
        int dim = _c.Dim;
        for (int t = 0; t < n; t++)
        {
            VectorMath.RmsNorm(_x.AsSpan(t * dim, dim), weight, _c.NormEps, _xNorm.AsSpan(t * dim, dim));
        }
    }

    void ILanguageModel.Forward(ReadOnlySpan<int> tokens, int startPosition, Span<float> logits, bool allPositions) =>
        Forward(tokens, startPosition, logits, allPositions);

    public void Dispose() => _pool.Dispose();
}
