using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

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
            Scores(q, keys.AsSpan(keyBase, span * _headDim), scale, scores);
            VectorMath.Softmax(scores);
            WeightedSum(scores, values.AsSpan(keyBase, span * _headDim), _output.AsSpan(t * qDim + h * _headDim, _headDim));
        }
    }

    /// <summary>scores[s] = scale · q·keys[s] for consecutive keys of q's length. Inline loops: per-key library calls
    /// cost more than the arithmetic at small head dimensions.</summary>
    internal static void Scores(ReadOnlySpan<float> q, ReadOnlySpan<float> keys, float scale, Span<float> scores)
    {
        int d = q.Length;
        if (keys.Length < scores.Length * d)
        {
            throw new ArgumentException("keys shorter than scores × head dim");
        }

        ref float qr = ref MemoryMarshal.GetReference(q);
        ref float kr = ref MemoryMarshal.GetReference(keys);
        int width = Vector<float>.Count;
        for (int s = 0; s < scores.Length; s++)
        {
            ref float k = ref Unsafe.Add(ref kr, s * d);
            int i = 0;
            float dot = 0;
            if (Vector.IsHardwareAccelerated && d >= width)
            {
                Vector<float> acc = Vector<float>.Zero;
                for (; i <= d - width; i += width)
                {
                    acc = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref qr, (nuint)i), Vector.LoadUnsafe(ref k, (nuint)i), acc);
                }

                dot = Vector.Sum(acc);
            }

            for (; i < d; i++)
            {
                dot += Unsafe.Add(ref qr, i) * Unsafe.Add(ref k, i);
            }

            scores[s] = dot * scale;
        }
    }

    /// <summary>output = Σ_s weights[s] · values[s] for consecutive value vectors of output's length.</summary>
    internal static void WeightedSum(ReadOnlySpan<float> weights, ReadOnlySpan<float> values, Span<float> output)
    {
        int d = output.Length;
        if (values.Length < weights.Length * d)
        {
            throw new ArgumentException("values shorter than weights × head dim");
        }

        output.Clear();
        ref float o = ref MemoryMarshal.GetReference(output);
        ref float vr = ref MemoryMarshal.GetReference(values);
        int width = Vector<float>.Count;
        for (int s = 0; s < weights.Length; s++)
        {
            ref float v = ref Unsafe.Add(ref vr, s * d);
            float a = weights[s];
            int i = 0;
            if (Vector.IsHardwareAccelerated)
            {
                var av = new Vector<float>(a);
                for (; i <= d - width; i += width)
                {
                    Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref v, (nuint)i), av, Vector.LoadUnsafe(ref o, (nuint)i)).StoreUnsafe(ref o, (nuint)i);
                }
            }

            for (; i < d; i++)
            {
                Unsafe.Add(ref o, i) += a * Unsafe.Add(ref v, i);
            }
        }
    }
}
