using System.Numerics.Tensors;

namespace GlowQ.Engine;

/// <summary>How the KV cache stores keys and values. Attention always computes in fp32.</summary>
public enum KvCacheDtype
{
    /// <summary>Exact: the engine's numerical reference.</summary>
    F32,

    /// <summary>Half the memory; each cached key and value is rounded to the nearest fp16 once, when stored.</summary>
    F16,
}

/// <summary>The names the command line and the device profiles use for <see cref="KvCacheDtype"/>.</summary>
public static class KvCacheDtypes
{
    public static string Name(this KvCacheDtype dtype) => dtype switch
    {
        KvCacheDtype.F32 => "f32",
        KvCacheDtype.F16 => "f16",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    public static int ElementBytes(this KvCacheDtype dtype) => dtype switch
    {
        KvCacheDtype.F32 => sizeof(float),
        KvCacheDtype.F16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    /// <summary>Parses "f16" or "f32" (case-insensitive).</summary>
    public static bool TryParse(string? name, out KvCacheDtype dtype)
    {
        switch (name?.ToLowerInvariant())
        {
            case "f32":
                dtype = KvCacheDtype.F32;
                return true;
            case "f16":
                dtype = KvCacheDtype.F16;
                return true;
            default:
                dtype = default;
                return false;
        }
    }

    /// <summary>Bytes of keys and values of every layer for <paramref name="contextLength"/> positions.</summary>
    public static long CacheBytes(this KvCacheDtype dtype, int layers, int kvHeads, int headDim, int contextLength) =>
        2L * layers * kvHeads * contextLength * headDim * dtype.ElementBytes();
}

/// <summary>
/// Keys and values of every layer, laid out [kv head][position][head dim] so that attention reads each head's
/// history as one contiguous block, in fp32 or fp16 (<see cref="Dtype"/>): exactly one pair of the arrays is allocated.
/// </summary>
public sealed class KvCache
{
    private readonly float[][]? _keys;
    private readonly float[][]? _values;
    private readonly Half[][]? _halfKeys;
    private readonly Half[][]? _halfValues;
    private readonly bool[] _nonFinite;

    public KvCache(int layers, int kvHeads, int headDim, int contextLength, KvCacheDtype dtype = KvCacheDtype.F32)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(layers);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kvHeads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(headDim);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(contextLength);
        Layers = layers;
        KvHeads = kvHeads;
        HeadDim = headDim;
        ContextLength = contextLength;
        Dtype = dtype;
        long perLayer = (long)kvHeads * contextLength * headDim;
        if (perLayer > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(contextLength), $"KV cache of {contextLength} positions is too large for one array per layer");
        }

        _nonFinite = new bool[layers];
        switch (dtype)
        {
            case KvCacheDtype.F32:
                _keys = Allocate<float>(layers, perLayer);
                _values = Allocate<float>(layers, perLayer);
                break;
            case KvCacheDtype.F16:
                _halfKeys = Allocate<Half>(layers, perLayer);
                _halfValues = Allocate<Half>(layers, perLayer);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown KV cache dtype");
        }
    }

    public int Layers { get; }

    public int KvHeads { get; }

    public int HeadDim { get; }

    public int ContextLength { get; }

    public KvCacheDtype Dtype { get; }

    /// <summary>Bytes the key and value arrays take.</summary>
    public long ByteSize => Dtype.CacheBytes(Layers, KvHeads, HeadDim, ContextLength);

    /// <summary>A layer's fp32 keys; only an <see cref="KvCacheDtype.F32"/> cache has them.</summary>
    public float[] Keys(int layer) => (_keys ?? throw NotStoredAs(KvCacheDtype.F32))[layer];

    /// <summary>A layer's fp32 values; only an <see cref="KvCacheDtype.F32"/> cache has them.</summary>
    public float[] Values(int layer) => (_values ?? throw NotStoredAs(KvCacheDtype.F32))[layer];

    /// <summary>A layer's fp16 keys; only an <see cref="KvCacheDtype.F16"/> cache has them.</summary>
    public Half[] HalfKeys(int layer) => (_halfKeys ?? throw NotStoredAs(KvCacheDtype.F16))[layer];

    /// <summary>A layer's fp16 values; only an <see cref="KvCacheDtype.F16"/> cache has them.</summary>
    public Half[] HalfValues(int layer) => (_halfValues ?? throw NotStoredAs(KvCacheDtype.F16))[layer];

    /// <summary>
    /// Whether an infinity or NaN may have been stored in <paramref name="layer"/> of an fp16 cache (a value beyond the
    /// largest finite half, or NaN). Attention's fast fp16 widening assumes finite values; a layer that may hold others
    /// is read exactly, element by element, so a diverging model still shows infinities and NaNs as the fp32 cache would.
    /// </summary>
    public bool HoldsNonFinite(int layer) => _nonFinite[layer];

    /// <summary>Offset of (kvHead, position) in a layer's key or value array.</summary>
    public int Offset(int kvHead, int position) => (kvHead * ContextLength + position) * HeadDim;

    /// <summary>Stores one token's keys and values (all kv heads, concatenated) at <paramref name="position"/>.</summary>
    public void Store(int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        CheckToken(position, keys.Length, values.Length);
        for (int h = 0; h < KvHeads; h++)
        {
            ReadOnlySpan<float> k = keys.Slice(h * HeadDim, HeadDim), v = values.Slice(h * HeadDim, HeadDim);
            int at = Offset(h, position);
            if (_keys is not null)
            {
                k.CopyTo(_keys[layer].AsSpan(at, HeadDim));
                v.CopyTo(_values![layer].AsSpan(at, HeadDim));
            }
            else
            {
                TensorPrimitives.ConvertToHalf(k, _halfKeys![layer].AsSpan(at, HeadDim));
                TensorPrimitives.ConvertToHalf(v, _halfValues![layer].AsSpan(at, HeadDim));
                _nonFinite[layer] |= !WithinHalfRange(k) || !WithinHalfRange(v);
            }
        }
    }

    /// <summary>Reads back, as fp32, one token's keys and values (all kv heads, concatenated) at <paramref name="position"/>.</summary>
    public void Read(int layer, int position, Span<float> keys, Span<float> values)
    {
        CheckToken(position, keys.Length, values.Length);
        for (int h = 0; h < KvHeads; h++)
        {
            Span<float> k = keys.Slice(h * HeadDim, HeadDim), v = values.Slice(h * HeadDim, HeadDim);
            int at = Offset(h, position);
            if (_keys is not null)
            {
                _keys[layer].AsSpan(at, HeadDim).CopyTo(k);
                _values![layer].AsSpan(at, HeadDim).CopyTo(v);
            }
            else
            {
                TensorPrimitives.ConvertToSingle(_halfKeys![layer].AsSpan(at, HeadDim), k);
                TensorPrimitives.ConvertToSingle(_halfValues![layer].AsSpan(at, HeadDim), v);
            }
        }
    }

    // NaN fails the comparison, so it counts as out of range too.
    private static bool WithinHalfRange(ReadOnlySpan<float> x) => MathF.Abs(TensorPrimitives.MaxMagnitude(x)) <= (float)Half.MaxValue;

    private void CheckToken(int position, int keys, int values)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(position, ContextLength);
        if (keys < KvHeads * HeadDim || values < KvHeads * HeadDim)
        {
            throw new ArgumentException($"one token's keys and values need {KvHeads * HeadDim} elements each");
        }
    }

    private InvalidOperationException NotStoredAs(KvCacheDtype wanted) =>
        new($"this KV cache stores {Dtype.Name()}, not {wanted.Name()}");

    private static T[][] Allocate<T>(int layers, long perLayer)
    {
        var arrays = new T[layers][];
        for (int l = 0; l < layers; l++)
        {
            arrays[l] = new T[perLayer];
        }

        return arrays;
    }
}
