using System.Numerics.Tensors;

namespace GlowQ.Engine;

/// <summary>
/// Causal grouped-query attention for T new tokens at positions start..start+T−1 against the KV cache.
/// Work items are (token, head) pairs dealt round-robin, which balances the causal triangle across threads.
/// </summary>
public sealed class Attention : IPartitionedWork
{
    private readonly WorkerPool _pool;
    private readonly float[][] _scores;
    private readonly int _heads;
    private readonly int _kvHeads;
    private readonly int _headDim;
    private readonly int? _window;
    private KvCache _cache = null!;
    private float[] _q = null!;
    private float[] _output = null!;
    private int _layer;
    private int _start;
    private int _tokens;

    public Attention(WorkerPool pool, int heads, int kvHeads, int headDim, int contextLength, int? slidingWindow)
    {
        _pool = pool;
        _heads = heads;
        _kvHeads = kvHeads;
        _headDim = headDim;
        _window = slidingWindow;
        _scores = new float[pool.ThreadCount][];
        for (int i = 0; i < _scores.Length; i++)
        {
            _scores[i] = new float[contextLength];
        }
    }

    /// <summary>output[t, h·d..] ← softmax(q·Kᵀ/√d)·V for every new token t and query head h.</summary>
    public void Run(KvCache cache, int layer, float[] q, float[] output, int start, int tokens)
    {
        _cache = cache;
        _layer = layer;
        _q = q;
        _output = output;
        _start = start;
        _tokens = tokens;
        long work = (long)tokens * _heads * (start + tokens) * _headDim * 2;
        _pool.Run(this, work);
        _cache = null!;
        _q = null!;
        _output = null!;
    }

    void IPartitionedWork.Execute(int part, int parts)
    {
        int items = _tokens * _heads;
        int groupSize = _heads / _kvHeads;
        float scale = 1f / MathF.Sqrt(_headDim);
        float[] keys = _cache.Keys(_layer);
        float[] values = _cache.Values(_layer);
        int qDim = _heads * _headDim;
        for (int item = part; item < items; item += parts)
        {
            int t = item / _heads;
            int h = item % _heads;
            int kvHead = h / groupSize;
            int position = _start + t;
            int first = _window is int w ? Math.Max(0, position - w + 1) : 0;
            int span = position - first + 1;
            ReadOnlySpan<float> q = _q.AsSpan(t * qDim + h * _headDim, _headDim);
            Span<float> scores = _scores[part].AsSpan(0, span);
            int keyBase = _cache.Offset(kvHead, first);
            for (int s = 0; s < span; s++)
            {
                scores[s] = TensorPrimitives.Dot(q, keys.AsSpan(keyBase + s * _headDim, _headDim)) * scale;
            }

            VectorMath.Softmax(scores);
            Span<float> output = _output.AsSpan(t * qDim + h * _headDim, _headDim);
            output.Clear();
            for (int s = 0; s < span; s++)
            {
                TensorPrimitives.MultiplyAdd(values.AsSpan(keyBase + s * _headDim, _headDim), scores[s], output, output);
            }
        }
    }
}
