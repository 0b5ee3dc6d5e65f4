using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace GlowQ.Engine;

/// <summary>
/// Y[t, o] = Σ_i X[t, i]·W[o, i] (+ bias[o]) for T input rows: the decode GEMV when T = 1 and the prefill
/// matrix product otherwise. Output rows are split across the pool in blocks of four; each block of W is read once
/// (converted once when fp16) and applied to every input row while it is hot in cache.
/// </summary>
public sealed class MatMul : IPartitionedWork
{
    private const int RowBlock = 4;
    private const int FusedHalfMaxTokens = 2;

    private readonly WorkerPool _pool;
    private readonly float[][] _rowScratch;
    private WeightMatrix _w = null!;
    private float[] _x = null!;
    private float[] _y = null!;
    private int _tokens;

    /// <param name="maxCols">The widest matrix this instance will multiply (sizes the fp16 conversion scratch).</param>
    public MatMul(WorkerPool pool, int maxCols)
    {
        _pool = pool;
        _rowScratch = new float[pool.ThreadCount][];
        for (int i = 0; i < _rowScratch.Length; i++)
        {
            _rowScratch[i] = new float[RowBlock * maxCols];
        }
    }

    /// <summary>y[0..tokens·Rows) ← x[0..tokens·Cols) · Wᵀ (+ bias). x and y are row-major, one row per token.</summary>
    public void Run(WeightMatrix w, float[] x, float[] y, int tokens)
    {
        if ((long)tokens * w.Cols > x.Length || (long)tokens * w.Rows > y.Length)
        {
            throw new ArgumentException($"buffers too small for {tokens} tokens of a {w.Rows}×{w.Cols} product");
        }

        if (w.F16 is not null && RowBlock * w.Cols > _rowScratch[0].Length)
        {
            throw new ArgumentException($"matrix has {w.Cols} columns, scratch sized for {_rowScratch[0].Length / RowBlock}");
        }

        _w = w;
        _x = x;
        _y = y;
        _tokens = tokens;
        _pool.Run(this, (long)w.Rows * w.Cols * tokens);
        _w = null!;
        _x = null!;
        _y = null!;
    }

    void IPartitionedWork.Execute(int part, int parts)
    {
        WeightMatrix w = _w;
        int blocks = (w.Rows + RowBlock - 1) / RowBlock;
        (int first, int last) = WorkerPool.Range(blocks, part, parts);
        int cols = w.Cols;
        Span<float> converted = _rowScratch[part];
        for (int block = first; block < last; block++)
        {
            int row0 = block * RowBlock;
            int rowsHere = Math.Min(RowBlock, w.Rows - row0);
            if (w.F16 is not null && rowsHere == RowBlock && _tokens <= FusedHalfMaxTokens)
            {
                // Decode: fp16 weights convert in registers inside the dot product, no fp32 copy of the rows is written.
                // With more tokens, converting the block once (below) and reusing it is cheaper.
                ReadOnlySpan<Half> halfRows = w.F16.AsSpan(row0 * cols, RowBlock * cols);
                for (int t = 0; t < _tokens; t++)
                {
                    HalfDot4(halfRows, cols, _x.AsSpan(t * cols, cols), out float h0, out float h1, out float h2, out float h3);
                    Store(w, _y.AsSpan(t * w.Rows + row0, RowBlock), row0, h0, h1, h2, h3);
                }

                continue;
            }

            ReadOnlySpan<float> rows;
            if (w.F32 is not null && rowsHere == RowBlock)
            {
                rows = w.F32.AsSpan(row0 * cols, RowBlock * cols);
            }
            else
            {
                // fp16 rows, or a ragged last block: materialise fp32 rows, zero-filling missing ones.
                Span<float> target = converted[..(RowBlock * cols)];
                target.Clear();
                for (int r = 0; r < rowsHere; r++)
                {
                    w.CopyRow(row0 + r, target.Slice(r * cols, cols));
                }

                rows = target;
            }

            for (int t = 0; t < _tokens; t++)
            {
                ReadOnlySpan<float> x = _x.AsSpan(t * cols, cols);
                Dot4(rows, cols, x, out float s0, out float s1, out float s2, out float s3);
                Store(w, _y.AsSpan(t * w.Rows + row0, rowsHere), row0, s0, s1, s2, s3);
            }
        }
    }

    /// <summary>Writes up to four sums (as many as <paramref name="y"/> holds), adding the bias when there is one.</summary>
    private static void Store(WeightMatrix w, Span<float> y, int row0, float s0, float s1, float s2, float s3)
    {
        y[0] = s0;
        if (y.Length > 1)
        {
            y[1] = s1;
        }

        if (y.Length > 2)
        {
            y[2] = s2;
        }

        if (y.Length > 3)
        {
            y[3] = s3;
        }

        if (w.Bias is not null)
        {
            TensorPrimitives.Add(y, w.Bias.AsSpan(row0, y.Length), y);
        }
    }

    /// <summary>As <see cref="Dot4"/>, with fp16 rows widened to fp32 in registers.</summary>
    internal static void HalfDot4(ReadOnlySpan<Half> rows, int cols, ReadOnlySpan<float> x, out float s0, out float s1, out float s2, out float s3)
    {
        if (rows.Length < 4 * cols || x.Length < cols)
        {
            throw new ArgumentException("HalfDot4 needs four rows of cols elements and a vector of cols elements");
        }

        ref ushort w0 = ref Unsafe.As<Half, ushort>(ref MemoryMarshal.GetReference(rows));
        ref ushort w1 = ref Unsafe.Add(ref w0, cols);
        ref ushort w2 = ref Unsafe.Add(ref w1, cols);
        ref ushort w3 = ref Unsafe.Add(ref w2, cols);
        ref float xr = ref MemoryMarshal.GetReference(x);
        int i = 0;
        int width = Vector<ushort>.Count; // halves per load; each load widens into two float vectors
        s0 = s1 = s2 = s3 = 0;
        if (Vector.IsHardwareAccelerated && cols >= width)
        {
            Vector<float> a0 = Vector<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
            int half = Vector<float>.Count;
            for (; i <= cols - width; i += width)
            {
                Vector<float> xLow = Vector.LoadUnsafe(ref xr, (nuint)i);
                Vector<float> xHigh = Vector.LoadUnsafe(ref xr, (nuint)(i + half));
                Accumulate(ref a0, Vector.LoadUnsafe(ref w0, (nuint)i), xLow, xHigh);
                Accumulate(ref a1, Vector.LoadUnsafe(ref w1, (nuint)i), xLow, xHigh);
                Accumulate(ref a2, Vector.LoadUnsafe(ref w2, (nuint)i), xLow, xHigh);
                Accumulate(ref a3, Vector.LoadUnsafe(ref w3, (nuint)i), xLow, xHigh);
            }

            s0 = Vector.Sum(a0);
            s1 = Vector.Sum(a1);
            s2 = Vector.Sum(a2);
            s3 = Vector.Sum(a3);
        }

        for (; i < cols; i++)
        {
            float xv = Unsafe.Add(ref xr, i);
            s0 += (float)BitConverter.UInt16BitsToHalf(Unsafe.Add(ref w0, i)) * xv;
            s1 += (float)BitConverter.UInt16BitsToHalf(Unsafe.Add(ref w1, i)) * xv;
            s2 += (float)BitConverter.UInt16BitsToHalf(Unsafe.Add(ref w2, i)) * xv;
            s3 += (float)BitConverter.UInt16BitsToHalf(Unsafe.Add(ref w3, i)) * xv;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Accumulate(ref Vector<float> sum, Vector<ushort> halves, Vector<float> xLow, Vector<float> xHigh)
    {
        Vector.Widen(halves, out Vector<uint> low, out Vector<uint> high);
        sum = Vector.FusedMultiplyAdd(HalfBitsToSingle(low), xLow, sum);
        sum = Vector.FusedMultiplyAdd(HalfBitsToSingle(high), xHigh, sum);
    }

    /// <summary>
    /// Exact fp16→fp32 of zero-extended half bits: the exponent/mantissa bits moved into float position and scaled by
    /// 2^112 give every normal and subnormal half (and zero) exactly; infinities and NaNs get the all-ones exponent.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector<float> HalfBitsToSingle(Vector<uint> bits)
    {
        Vector<uint> magnitude = Vector.ShiftLeft(bits & new Vector<uint>(0x7FFF), 13);
        Vector<uint> sign = Vector.ShiftLeft(bits & new Vector<uint>(0x8000), 16);
        Vector<float> scaled = Vector.AsVectorSingle(magnitude) * new Vector<float>(5.192296858534828e33f); // 2^112
        Vector<uint> special = Vector.Equals(bits & new Vector<uint>(0x7C00), new Vector<uint>(0x7C00));
        Vector<uint> result = Vector.ConditionalSelect(special, magnitude | new Vector<uint>(0x7F800000), Vector.AsVectorUInt32(scaled));
        return Vector.AsVectorSingle(result | sign);
    }

    /// <summary>Four dot products of consecutive rows (row stride <paramref name="cols"/>) with one vector.</summary>
    internal static void Dot4(ReadOnlySpan<float> rows, int cols, ReadOnlySpan<float> x, out float s0, out float s1, out float s2, out float s3)
    {
        if (rows.Length < 4 * cols || x.Length < cols)
        {
            throw new ArgumentException("Dot4 needs four rows of cols elements and a vector of cols elements");
        }

        ref float w0 = ref MemoryMarshal.GetReference(rows);
        ref float w1 = ref Unsafe.Add(ref w0, cols);
        ref float w2 = ref Unsafe.Add(ref w1, cols);
        ref float w3 = ref Unsafe.Add(ref w2, cols);
        ref float xr = ref MemoryMarshal.GetReference(x);
        int i = 0;
        if (Vector.IsHardwareAccelerated && cols >= Vector<float>.Count)
        {
            Vector<float> a0 = Vector<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
            int width = Vector<float>.Count;
            for (; i <= cols - width; i += width)
            {
                Vector<float> xv = Vector.LoadUnsafe(ref xr, (nuint)i);
                a0 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref w0, (nuint)i), xv, a0);
                a1 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref w1, (nuint)i), xv, a1);
                a2 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref w2, (nuint)i), xv, a2);
                a3 = Vector.FusedMultiplyAdd(Vector.LoadUnsafe(ref w3, (nuint)i), xv, a3);
            }

            s0 = Vector.Sum(a0);
            s1 = Vector.Sum(a1);
            s2 = Vector.Sum(a2);
            s3 = Vector.Sum(a3);
        }
        else
        {
            s0 = s1 = s2 = s3 = 0;
        }

        for (; i < cols; i++)
        {
            float xv = Unsafe.Add(ref xr, i);
            s0 += Unsafe.Add(ref w0, i) * xv;
            s1 += Unsafe.Add(ref w1, i) * xv;
            s2 += Unsafe.Add(ref w2, i) * xv;
            s3 += Unsafe.Add(ref w3, i) * xv;
        }
    }
}
