using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace GlowQ.Engine;

/// <summary>
/// Causal grouped-query attention for T new tokens at positions start..start+T−1 against the KV cache.
/// Work items are (token, head) pairs dealt round-robin, which balances the causal triangle across threads.
/// An fp16 cache is widened to fp32 in registers as keys and values are read, so it streams half the bytes and needs
/// no widened copy; products and sums are fp32 either way.
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
        bool half = _cache.Dtype == KvCacheDtype.F16;
        float[]? keys = half ? null : _cache.Keys(_layer);
        float[]? values = half ? null : _cache.Values(_layer);
        Half[]? halfKeys = half ? _cache.HalfKeys(_layer) : null;
        Half[]? halfValues = half ? _cache.HalfValues(_layer) : null;
        bool finite = !half || !_cache.HoldsNonFinite(_layer);
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
            Span<float> output = _output.AsSpan(t * qDim + h * _headDim, _headDim);
            int keyBase = _cache.Offset(kvHead, first);
            int length = span * _headDim;
            if (half)
            {
                Scores(q, halfKeys.AsSpan(keyBase, length), scale, scores, finite);
                VectorMath.Softmax(scores);
                WeightedSum(scores, halfValues.AsSpan(keyBase, length), output, finite);
            }
            else
            {
                Scores(q, keys.AsSpan(keyBase, length), scale, scores);
                VectorMath.Softmax(scores);
                WeightedSum(scores, values.AsSpan(keyBase, length), output);
            }
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

    /// <summary>
    /// As the fp32 <see cref="Scores(ReadOnlySpan{float}, ReadOnlySpan{float}, float, Span{float})"/>, with fp16 keys.
    /// <paramref name="finite"/> says no key is infinite or NaN, which lets the widening skip their fix-up.
    /// </summary>
    internal static void Scores(ReadOnlySpan<float> q, ReadOnlySpan<Half> keys, float scale, Span<float> scores, bool finite = true)
    {
        if (finite)
        {
            Scores<FiniteHalves>(q, keys, scale, scores);
        }
        else
        {
            Scores<AnyHalves>(q, keys, scale, scores);
        }
    }

    /// <summary>
    /// As the fp32 <see cref="WeightedSum(ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float})"/>, with fp16 values;
    /// <paramref name="finite"/> as for the fp16 <see cref="Scores(ReadOnlySpan{float}, ReadOnlySpan{Half}, float, Span{float}, bool)"/>.
    /// </summary>
    internal static void WeightedSum(ReadOnlySpan<float> weights, ReadOnlySpan<Half> values, Span<float> output, bool finite = true)
    {
        if (finite)
        {
            WeightedSum<FiniteHalves>(weights, values, output);
        }
        else
        {
            WeightedSum<AnyHalves>(weights, values, output);
        }
    }

    private static void Scores<THalves>(ReadOnlySpan<float> q, ReadOnlySpan<Half> keys, float scale, Span<float> scores)
        where THalves : struct, IHalfWidening
    {
        int d = q.Length;
        if (keys.Length < scores.Length * d)
        {
            throw new ArgumentException("keys shorter than scores × head dim");
        }

        // Keys are widened only to k·2^−112 (see IHalfWidening); q carries the 2^112 instead, so the inner loop has no
        // multiply. Scaling by powers of two is exact, and a q too large to take all of 2^112 takes less, the rest
        // being applied to each finished dot product.
        float largest = MathF.Abs(TensorPrimitives.MaxMagnitude(q));
        int deficit = float.IsFinite(largest) && largest > 0 ? Math.Max(0, MathF.ILogB(largest) - 14) : 0;
        float qScale = MathF.ScaleB(1f, HalfBiasExponent - deficit);
        float finish = MathF.ScaleB(scale, deficit);
        Span<float> scaledQ = d <= MaxStackHeadDim ? stackalloc float[d] : new float[d];
        TensorPrimitives.Multiply(q, qScale, scaledQ);

        ref float qr = ref MemoryMarshal.GetReference(scaledQ);
        ref short kr = ref Unsafe.As<Half, short>(ref MemoryMarshal.GetReference(keys));
        int vectorEnd = Vector128.IsHardwareAccelerated ? d - (d % 8) : 0;
        for (int s = 0; s < scores.Length; s++)
        {
            ref short k = ref Unsafe.Add(ref kr, s * d);
            int i = 0;
            float dot = 0;
            if (Vector256.IsHardwareAccelerated && vectorEnd > 0)
            {
                // Two accumulators, so consecutive FMAs do not wait on each other.
                Vector256<float> acc0 = Vector256<float>.Zero, acc1 = Vector256<float>.Zero;
                for (; i + 16 <= vectorEnd; i += 16)
                {
                    acc0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref qr, (nuint)i), ScaledDown8<THalves>(ref k, i), acc0);
                    acc1 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref qr, (nuint)(i + 8)), ScaledDown8<THalves>(ref k, i + 8), acc1);
                }

                if (i < vectorEnd)
                {
                    acc0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref qr, (nuint)i), ScaledDown8<THalves>(ref k, i), acc0);
                    i += 8;
                }

                dot = Vector256.Sum(acc0 + acc1);
            }
            else if (vectorEnd > 0)
            {
                Vector128<float> acc0 = Vector128<float>.Zero, acc1 = Vector128<float>.Zero;
                for (; i < vectorEnd; i += 8)
                {
                    ScaledDown8<THalves>(ref k, i, out Vector128<float> low, out Vector128<float> high);
                    acc0 = Vector128.FusedMultiplyAdd(Vector128.LoadUnsafe(ref qr, (nuint)i), low, acc0);
                    acc1 = Vector128.FusedMultiplyAdd(Vector128.LoadUnsafe(ref qr, (nuint)(i + 4)), high, acc1);
                }

                dot = Vector128.Sum(acc0 + acc1);
            }

            for (; i < d; i++)
            {
                dot += Unsafe.Add(ref qr, i) * ((float)BitConverter.Int16BitsToHalf(Unsafe.Add(ref k, i)) * HalfBiasInverse);
            }

            scores[s] = dot * finish;
        }
    }

    private static void WeightedSum<THalves>(ReadOnlySpan<float> weights, ReadOnlySpan<Half> values, Span<float> output)
        where THalves : struct, IHalfWidening
    {
        int d = output.Length;
        if (values.Length < weights.Length * d)
        {
            throw new ArgumentException("values shorter than weights × head dim");
        }

        output.Clear();
        ref float o = ref MemoryMarshal.GetReference(output);
        ref short vr = ref Unsafe.As<Half, short>(ref MemoryMarshal.GetReference(values));
        int vectorEnd = Vector128.IsHardwareAccelerated ? d - (d % 8) : 0;
        int s = 0;
        if (vectorEnd > 0)
        {
            // Two value rows per pass over the output, so it is loaded and stored half as often; their FMAs still run
            // in row order, as one row at a time would. Values are widened only to v·2^−112 (see IHalfWidening) and the
            // weights, at most 1, carry the 2^112: exact, as scaling by a power of two is.
            for (; s + 1 < weights.Length; s += 2)
            {
                ref short v0 = ref Unsafe.Add(ref vr, s * d);
                ref short v1 = ref Unsafe.Add(ref v0, d);
                float a0 = weights[s] * HalfBias, a1 = weights[s + 1] * HalfBias;
                if (Vector256.IsHardwareAccelerated)
                {
                    Vector256<float> w0 = Vector256.Create(a0), w1 = Vector256.Create(a1);
                    for (int i = 0; i < vectorEnd; i += 8)
                    {
                        Vector256<float> sum = Vector256.FusedMultiplyAdd(ScaledDown8<THalves>(ref v0, i), w0, Vector256.LoadUnsafe(ref o, (nuint)i));
                        Vector256.FusedMultiplyAdd(ScaledDown8<THalves>(ref v1, i), w1, sum).StoreUnsafe(ref o, (nuint)i);
                    }
                }
                else
                {
                    Vector128<float> w0 = Vector128.Create(a0), w1 = Vector128.Create(a1);
                    for (int i = 0; i < vectorEnd; i += 8)
                    {
                        ScaledDown8<THalves>(ref v0, i, out Vector128<float> low0, out Vector128<float> high0);
                        ScaledDown8<THalves>(ref v1, i, out Vector128<float> low1, out Vector128<float> high1);
                        Vector128<float> low = Vector128.FusedMultiplyAdd(low0, w0, Vector128.LoadUnsafe(ref o, (nuint)i));
                        Vector128<float> high = Vector128.FusedMultiplyAdd(high0, w0, Vector128.LoadUnsafe(ref o, (nuint)(i + 4)));
                        Vector128.FusedMultiplyAdd(low1, w1, low).StoreUnsafe(ref o, (nuint)i);
                        Vector128.FusedMultiplyAdd(high1, w1, high).StoreUnsafe(ref o, (nuint)(i + 4));
                    }
                }

                for (int i = vectorEnd; i < d; i++)
                {
                    Unsafe.Add(ref o, i) += weights[s] * (float)BitConverter.Int16BitsToHalf(Unsafe.Add(ref v0, i));
                    Unsafe.Add(ref o, i) += weights[s + 1] * (float)BitConverter.Int16BitsToHalf(Unsafe.Add(ref v1, i));
                }
            }
        }

        for (; s < weights.Length; s++)
        {
            ref short v = ref Unsafe.Add(ref vr, s * d);
            float a = weights[s];
            for (int i = 0; i < d; i++)
            {
                Unsafe.Add(ref o, i) += a * (float)BitConverter.Int16BitsToHalf(Unsafe.Add(ref v, i));
            }
        }
    }

    /// <summary>The eight fp16 values at <paramref name="halves"/>[i..i+8] times 2^−112, in fp32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> ScaledDown8<THalves>(ref short halves, int i)
        where THalves : struct, IHalfWidening =>
        THalves.ScaledDown(Vector256.WidenLower(Vector128.LoadUnsafe(ref halves, (nuint)i).ToVector256Unsafe()));

    /// <summary>As <see cref="ScaledDown8{THalves}(ref short, int)"/>, in two vectors of four.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScaledDown8<THalves>(ref short halves, int i, out Vector128<float> low, out Vector128<float> high)
        where THalves : struct, IHalfWidening
    {
        Vector128<short> bits = Vector128.LoadUnsafe(ref halves, (nuint)i);
        low = THalves.ScaledDown(Vector128.WidenLower(bits));
        high = THalves.ScaledDown(Vector128.WidenUpper(bits));
    }

    private const int HalfBiasExponent = 112; // fp32 exponent bias 127 − fp16 bias 15
    private const float HalfBias = 5.192296858534828e33f; // 2^112
    private const float HalfBiasInverse = 1.925929944387236e-34f; // 2^−112
    private const int MaxStackHeadDim = 1024;

    /// <summary>
    /// fp16 → fp32 without the exponent rebias. A sign-extended half shifted left by 13 has its exponent and mantissa
    /// in fp32 position and its sign in bit 31 (bits 28–30 hold copies of the sign, masked off): read as fp32 that is
    /// exactly the half's value times 2^−112 (half subnormals land on fp32 subnormals). Callers fold the 2^112 into
    /// an operand they already multiply by.
    /// </summary>
    private interface IHalfWidening
    {
        static abstract Vector256<float> ScaledDown(Vector256<int> signExtended);

        static abstract Vector128<float> ScaledDown(Vector128<int> signExtended);
    }

    /// <summary>Halves known to be finite: an all-ones exponent would come out as a large finite value.</summary>
    private readonly struct FiniteHalves : IHalfWidening
    {
        public static Vector256<float> ScaledDown(Vector256<int> signExtended) =>
            ((signExtended << 13) & Vector256.Create(SignAndMagnitude)).AsSingle();

        public static Vector128<float> ScaledDown(Vector128<int> signExtended) =>
            ((signExtended << 13) & Vector128.Create(SignAndMagnitude)).AsSingle();
    }

    /// <summary>Any halves: an all-ones exponent (infinity, NaN) gets the all-ones fp32 exponent, which no scaling changes.</summary>
    private readonly struct AnyHalves : IHalfWidening
    {
        public static Vector256<float> ScaledDown(Vector256<int> signExtended)
        {
            Vector256<int> bits = (signExtended << 13) & Vector256.Create(SignAndMagnitude);
            Vector256<int> special = Vector256.Equals(bits & Vector256.Create(ShiftedExponent), Vector256.Create(ShiftedExponent));
            return (bits | (special & Vector256.Create(SingleExponent))).AsSingle();
        }

        public static Vector128<float> ScaledDown(Vector128<int> signExtended)
        {
            Vector128<int> bits = (signExtended << 13) & Vector128.Create(SignAndMagnitude);
            Vector128<int> special = Vector128.Equals(bits & Vector128.Create(ShiftedExponent), Vector128.Create(ShiftedExponent));
            return (bits | (special & Vector128.Create(SingleExponent))).AsSingle();
        }
    }

    private const int SignAndMagnitude = unchecked((int)0x8FFFE000);
    private const int ShiftedExponent = 0x7C00 << 13;
    private const int SingleExponent = 0x7F800000;
}
