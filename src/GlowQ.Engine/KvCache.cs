namespace GlowQ.Engine;

/// <summary>
/// Keys and values of every layer, laid out [kv head][position][head dim] so that attention reads each head's
/// history as one contiguous block.
/// </summary>
public sealed class KvCache
{
    private readonly float[][] _keys;
    private readonly float[][] _values;

    public KvCache(int layers, int kvHeads, int headDim, int contextLength)
    {
        KvHeads = kvHeads;
        HeadDim = headDim;
        ContextLength = contextLength;
        long perLayer = (long)kvHeads * contextLength * headDim;
        if (perLayer > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(contextLength), $"KV cache of {contextLength} positions is too large for one array per layer");
        }

        _keys = new float[layers][];
        _values = new float[layers][];
        for (int l = 0; l < layers; l++)
        {
            _keys[l] = new float[perLayer];
            _values[l] = new float[perLayer];
        }
    }

    public int KvHeads { get; }

    public int HeadDim { get; }

    public int ContextLength { get; }

    public long ByteSize => 2L * _keys.Length * KvHeads * ContextLength * HeadDim * sizeof(float);

    public float[] Keys(int layer) => _keys[layer];

    public float[] Values(int layer) => _values[layer];

    /// <summary>Offset of (kvHead, position) in a layer's key or value array.</summary>
    public int Offset(int kvHead, int position) => (kvHead * ContextLength + position) * HeadDim;

    /// <summary>Stores one token's keys and values (all kv heads, concatenated) at <paramref name="position"/>.</summary>
    public void Store(int layer, int position, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        for (int h = 0; h < KvHeads; h++)
        {
            keys.Slice(h * HeadDim, HeadDim).CopyTo(_keys[layer].AsSpan(Offset(h, position), HeadDim));
            values.Slice(h * HeadDim, HeadDim).CopyTo(_values[layer].AsSpan(Offset(h, position), HeadDim));
        }
    }
}
