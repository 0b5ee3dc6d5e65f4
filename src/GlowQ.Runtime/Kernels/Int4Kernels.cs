using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using GlowQ.Format.Glq;

namespace GlowQ.Runtime.Kernels;

/// <summary>Which instruction width the int4 kernels use; every path gives the same results to rounding.</summary>
internal enum Int4Path
{
    Scalar,

    /// <summary>AdvSimd on arm64 (Jetson), SSE on x64.</summary>
    Vector128,

    /// <summary>AVX2 on x64.</summary>
    Vector256,
}

/// <summary>
/// Row-level int4 arithmetic shared by the GEMV and prefill products.
/// <para>
/// The vector paths never move nibbles across lanes. A little-endian u32 of packed codes holds eight consecutive
/// columns, code k at bit 4k (formats/glq-v1.md §6), so <c>(word &gt;&gt; 4k) &amp; 0xF</c> over a vector of words
/// yields code k of every word with one shift and one mask, and no shuffles. The price is that the vector of
/// codes for step k holds columns k, k+8, k+16, …; instead of permuting codes per row, the input is permuted once
/// per call into that order (<see cref="PrepareInput"/>), and every row of every member reuses it.
/// </para>
/// <para>
/// Nibble order, per 64-column block b (32 bytes, eight words): <c>xr[64b + 8k + i] = x[64b + 8i + k]</c>. A
/// 32-column half-block (16 bytes, four words) is what a Vector128 reads; the block's two halves occupy lanes
/// 0–3 and 4–7 of each 8-float step. Every half lies inside one group when the group size is a multiple of 32,
/// which the vector paths require (smaller groups run the scalar path).
/// </para>
/// </summary>
internal static class Int4Kernels
{
    public const int HalfBlock = 32;
    public const int Block = 64;

    public static Int4Path Best =>
        Vector256.IsHardwareAccelerated ? Int4Path.Vector256
        : Vector128.IsHardwareAccelerated ? Int4Path.Vector128
        : Int4Path.Scalar;

    /// <summary>Whether <paramref name="path"/> can serve this group size; otherwise the scalar path runs.</summary>
    public static bool UsesNibbleOrder(Int4Path path, int groupSize) => path != Int4Path.Scalar && groupSize % HalfBlock == 0;

    /// <summary>Length of an input or dequantised row in nibble order: padded columns rounded up to whole blocks.</summary>
    public static int NibbleOrderLength(int paddedCols) => (paddedCols + Block - 1) / Block * Block;

    /// <summary>
    /// Permutes x into nibble order (zeros past the real columns, so padding codes contribute nothing) and sums
    /// it per quantisation group, for the zero-point term Σ_g s_g·z_g·Σ_{i∈g} x_i.
    /// </summary>
    public static void PrepareInput(ReadOnlySpan<float> x, int groupSize, Span<float> xr, Span<float> groupSums)
    {
        int cols = x.Length;
        xr.Clear();
        for (int c = 0; c < cols; c++)
        {
            int block = c / Block, within = c % Block;
            xr[block * Block + (within % 8) * 8 + within / 8] = x[c];
        }

        for (int g = 0; g < groupSums.Length; g++)
        {
            int start = g * groupSize;
            groupSums[g] = System.Numerics.Tensors.TensorPrimitives.Sum(x.Slice(start, Math.Min(groupSize, cols - start)));
        }
    }

    /// <summary>Per-half-block scales (and zero points, as floats) of one row, from its per-group tables.</summary>
    public static void ExpandToHalves(ReadOnlySpan<float> groupScales, ReadOnlySpan<byte> packedZeros, int groupSize, Span<float> halfScales, Span<float> halfZeros)
    {
        int halvesPerGroup = groupSize / HalfBlock;
        if (halvesPerGroup == 1)
        {
            groupScales[..halfScales.Length].CopyTo(halfScales);
        }

        // Filled group by group: a division per half-block would cost more than that half's arithmetic.
        for (int g = 0, h = 0; h < halfScales.Length; g++, h += halvesPerGroup)
        {
            if (halvesPerGroup > 1)
            {
                halfScales.Slice(h, halvesPerGroup).Fill(groupScales[g]);
            }

            if (!halfZeros.IsEmpty)
            {
                halfZeros.Slice(h, halvesPerGroup).Fill(Int4Encoding.GetNibble(packedZeros, g));
            }
        }
    }

    /// <summary>Σ_g s_g·z_g·X_g: what the codes' dot product overcounts by not subtracting zero points per element.</summary>
    public static float ZeroPointTerm(ReadOnlySpan<float> groupScales, ReadOnlySpan<byte> packedZeros, ReadOnlySpan<float> groupSums)
    {
        float sum = 0;
        for (int g = 0; g < groupSums.Length; g++)
        {
            sum += groupScales[g] * Int4Encoding.GetNibble(packedZeros, g) * groupSums[g];
        }

        return sum;
    }

    /// <summary>
    /// Σ_h s_h·Σ_{i∈h} q_i·xr_i over one row's codes in nibble order (the zero points are left to
    /// <see cref="ZeroPointTerm"/>): Q(W)·x = this − ZeroPointTerm.
    /// </summary>
    public static float CodeDot(Int4Path path, ReadOnlySpan<byte> codes, ReadOnlySpan<float> halfScales, ReadOnlySpan<float> xr)
    {
        int halves = halfScales.Length;
        if (codes.Length < halves * 16 || xr.Length < NibbleOrderLength(halves * HalfBlock))
        {
            throw new ArgumentException("codes, scales and input disagree in length");
        }

        ref byte c = ref MemoryMarshal.GetReference(codes);
        ref float s = ref MemoryMarshal.GetReference(halfScales);
        ref float x = ref MemoryMarshal.GetReference(xr);
        return path == Int4Path.Vector256 ? CodeDot256(ref c, ref s, ref x, halves) : CodeDot128(ref c, ref s, ref x, 0, halves);
    }

    /// <summary>
    /// As <see cref="CodeDot"/> for group sizes that are a multiple of 64, taking one scale per group: the blocks of
    /// a group accumulate unscaled and the group's sum is scaled once.
    /// </summary>
    public static float CodeDotByGroup(ReadOnlySpan<byte> codes, ReadOnlySpan<float> groupScales, int groupSize, ReadOnlySpan<float> xr)
    {
        int groups = groupScales.Length, blocksPerGroup = groupSize / Block;
        if (groupSize % Block != 0 || codes.Length < groups * groupSize / 2 || xr.Length < groups * groupSize)
        {
            throw new ArgumentException("codes, scales and input disagree in length");
        }

        ref byte c = ref MemoryMarshal.GetReference(codes);
        ref float x = ref MemoryMarshal.GetReference(xr);
        Vector256<uint> mask = Vector256.Create(0xFu);
        Vector256<float> acc = Vector256<float>.Zero;
        int b = 0;
        for (int g = 0; g < groups; g++)
        {
            Vector256<float> group = Vector256<float>.Zero;
            for (int end = b + blocksPerGroup; b < end; b++)
            {
                group += BlockDot(Vector256.LoadUnsafe(ref c, (nuint)(b * 32)).AsUInt32(), ref Unsafe.Add(ref x, b * Block), mask);
            }

            acc = Vector256.FusedMultiplyAdd(group, Vector256.Create(groupScales[g]), acc);
        }

        return Vector256.Sum(acc);
    }

    private static float CodeDot256(ref byte codes, ref float halfScales, ref float xr, int halves)
    {
        Vector256<uint> mask = Vector256.Create(0xFu);
        Vector256<float> acc = Vector256<float>.Zero;
        int blocks = halves / 2;
        for (int b = 0; b < blocks; b++)
        {
            Vector256<float> dot = BlockDot(Vector256.LoadUnsafe(ref codes, (nuint)(b * 32)).AsUInt32(), ref Unsafe.Add(ref xr, b * Block), mask);

            // Lanes 0–3 are the first half-block, 4–7 the second; each half carries its own group's scale.
            Vector256<float> scale = Vector256.Create(Vector128.Create(Unsafe.Add(ref halfScales, 2 * b)), Vector128.Create(Unsafe.Add(ref halfScales, 2 * b + 1)));
            acc = Vector256.FusedMultiplyAdd(dot, scale, acc);
        }

        float sum = Vector256.Sum(acc);
        return halves % 2 == 0 ? sum : sum + CodeDot128(ref codes, ref halfScales, ref xr, halves - 1, halves);
    }

    /// <summary>Per-lane Σ_k q_k·x_k over one 64-column block: lane i holds the dot product of word i's eight codes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> BlockDot(Vector256<uint> words, ref float xb, Vector256<uint> mask)
    {
        // Four independent chains of two steps each, so FMA latency overlaps across steps.
        Vector256<float> p0 = Codes(words, 0, mask) * Vector256.LoadUnsafe(ref xb, 0);
        Vector256<float> p1 = Codes(words, 4, mask) * Vector256.LoadUnsafe(ref xb, 8);
        Vector256<float> p2 = Codes(words, 8, mask) * Vector256.LoadUnsafe(ref xb, 16);
        Vector256<float> p3 = Codes(words, 12, mask) * Vector256.LoadUnsafe(ref xb, 24);
        p0 = Vector256.FusedMultiplyAdd(Codes(words, 16, mask), Vector256.LoadUnsafe(ref xb, 32), p0);
        p1 = Vector256.FusedMultiplyAdd(Codes(words, 20, mask), Vector256.LoadUnsafe(ref xb, 40), p1);
        p2 = Vector256.FusedMultiplyAdd(Codes(words, 24, mask), Vector256.LoadUnsafe(ref xb, 48), p2);
        p3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle((words >> 28).AsInt32()), Vector256.LoadUnsafe(ref xb, 56), p3);
        return (p0 + p1) + (p2 + p3);
    }

    private static float CodeDot128(ref byte codes, ref float halfScales, ref float xr, int firstHalf, int halves)
    {
        Vector128<uint> mask = Vector128.Create(0xFu);
        Vector128<float> acc = Vector128<float>.Zero;
        for (int h = firstHalf; h < halves; h++)
        {
            Vector128<uint> words = Vector128.LoadUnsafe(ref codes, (nuint)(h * 16)).AsUInt32();
            ref float xh = ref Unsafe.Add(ref xr, (h / 2 * Block) + (h % 2 * 4));
            Vector128<float> p0 = Codes(words, 0, mask) * Vector128.LoadUnsafe(ref xh, 0);
            Vector128<float> p1 = Codes(words, 4, mask) * Vector128.LoadUnsafe(ref xh, 8);
            Vector128<float> p2 = Codes(words, 8, mask) * Vector128.LoadUnsafe(ref xh, 16);
            Vector128<float> p3 = Codes(words, 12, mask) * Vector128.LoadUnsafe(ref xh, 24);
            p0 = Vector128.FusedMultiplyAdd(Codes(words, 16, mask), Vector128.LoadUnsafe(ref xh, 32), p0);
            p1 = Vector128.FusedMultiplyAdd(Codes(words, 20, mask), Vector128.LoadUnsafe(ref xh, 40), p1);
            p2 = Vector128.FusedMultiplyAdd(Codes(words, 24, mask), Vector128.LoadUnsafe(ref xh, 48), p2);
            p3 = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle((words >> 28).AsInt32()), Vector128.LoadUnsafe(ref xh, 56), p3);
            acc = Vector128.FusedMultiplyAdd((p0 + p1) + (p2 + p3), Vector128.Create(Unsafe.Add(ref halfScales, h)), acc);
        }

        return Vector128.Sum(acc);
    }

    /// <summary>
    /// Dequantises one row into nibble order, w = (q − z)·s exactly as <see cref="Int4Encoding"/> (q − z is an exact
    /// small integer and its product with an fp16 scale is exact in fp32); prefill reuses it across tokens.
    /// </summary>
    public static void DequantizeRow(ReadOnlySpan<byte> codes, ReadOnlySpan<float> halfScales, ReadOnlySpan<float> halfZeros, Span<float> w)
    {
        int halves = halfScales.Length;
        int length = NibbleOrderLength(halves * HalfBlock);
        if (codes.Length < halves * 16 || halfZeros.Length < halves || w.Length < length)
        {
            throw new ArgumentException("codes, tables and output disagree in length");
        }

        ref byte c = ref MemoryMarshal.GetReference(codes);
        ref float w0 = ref MemoryMarshal.GetReference(w);

        // Vector128 on every vector path: dequantising is a small part of a prefill, whose dots dominate.
        Vector128<uint> mask = Vector128.Create(0xFu);
        for (int h = 0; h < halves; h++)
        {
            Vector128<uint> words = Vector128.LoadUnsafe(ref c, (nuint)(h * 16)).AsUInt32();
            Vector128<float> zero = Vector128.Create(halfZeros[h]), scale = Vector128.Create(halfScales[h]);
            ref float wh = ref Unsafe.Add(ref w0, (h / 2 * Block) + (h % 2 * 4));
            for (int k = 0; k < 8; k++)
            {
                Vector128<float> q = Vector128.ConvertToSingle(((words >> (4 * k)) & mask).AsInt32());
                ((q - zero) * scale).StoreUnsafe(ref wh, (nuint)(8 * k));
            }
        }

        if (halves % 2 != 0)
        {
            // The block's missing second half must read as zero weights, not as a previous row's values.
            ref float wh = ref Unsafe.Add(ref w0, (halves / 2 * Block) + 4);
            for (int k = 0; k < 8; k++)
            {
                Vector128<float>.Zero.StoreUnsafe(ref wh, (nuint)(8 * k));
            }
        }
    }

    /// <summary>Q(W)[row]·x in column order, one group at a time: the portable reference every vector path must match.</summary>
    public static float ScalarDot(ReadOnlySpan<byte> codes, ReadOnlySpan<float> groupScales, ReadOnlySpan<byte> packedZeros, int groupSize, ReadOnlySpan<float> x)
    {
        float acc = 0;
        for (int g = 0; g * groupSize < x.Length; g++)
        {
            int zero = Int4Encoding.GetNibble(packedZeros, g);
            int end = Math.Min(x.Length, (g + 1) * groupSize);
            float sum = 0;
            for (int i = g * groupSize; i < end; i++)
            {
                sum += (Int4Encoding.GetNibble(codes, i) - zero) * x[i];
            }

            acc += groupScales[g] * sum;
        }

        return acc;
    }

    /// <summary>
    /// Σ a_j·t_j with fp16 a widened exactly in registers: the correction's A_row·t and B_j·x, which are too short
    /// (A rows) or too numerous to repay a separate conversion pass.
    /// </summary>
    public static float HalfDot(Int4Path path, ReadOnlySpan<Half> a, ReadOnlySpan<float> t)
    {
        if (t.Length < a.Length)
        {
            throw new ArgumentException("HalfDot needs as many floats as halves");
        }

        ref ushort ar = ref Unsafe.As<Half, ushort>(ref MemoryMarshal.GetReference(a));
        ref float tr = ref MemoryMarshal.GetReference(t);
        int j = 0;
        float sum = 0;
        if (path == Int4Path.Vector256)
        {
            Vector256<float> acc0 = Vector256<float>.Zero, acc1 = acc0;
            for (; j <= a.Length - 16; j += 16)
            {
                (Vector256<uint> low, Vector256<uint> high) = Vector256.Widen(Vector256.LoadUnsafe(ref ar, (nuint)j));
                acc0 = Vector256.FusedMultiplyAdd(HalfBitsToSingle(low), Vector256.LoadUnsafe(ref tr, (nuint)j), acc0);
                acc1 = Vector256.FusedMultiplyAdd(HalfBitsToSingle(high), Vector256.LoadUnsafe(ref tr, (nuint)(j + 8)), acc1);
            }

            sum = Vector256.Sum(acc0 + acc1);
        }
        else if (path == Int4Path.Vector128)
        {
            Vector128<float> acc0 = Vector128<float>.Zero, acc1 = acc0;
            for (; j <= a.Length - 8; j += 8)
            {
                (Vector128<uint> low, Vector128<uint> high) = Vector128.Widen(Vector128.LoadUnsafe(ref ar, (nuint)j));
                acc0 = Vector128.FusedMultiplyAdd(HalfBitsToSingle(low), Vector128.LoadUnsafe(ref tr, (nuint)j), acc0);
                acc1 = Vector128.FusedMultiplyAdd(HalfBitsToSingle(high), Vector128.LoadUnsafe(ref tr, (nuint)(j + 4)), acc1);
            }

            sum = Vector128.Sum(acc0 + acc1);
        }

        for (; j < a.Length; j++)
        {
            sum += (float)a[j] * t[j];
        }

        return sum;
    }

    /// <summary>
    /// Exact fp16→fp32 of zero-extended half bits (as the engine's MatMul): exponent and mantissa moved into float
    /// position and scaled by 2^112 give every normal and subnormal half; infinities and NaNs keep an all-ones exponent.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> HalfBitsToSingle(Vector256<uint> bits)
    {
        Vector256<uint> magnitude = (bits & Vector256.Create(0x7FFFu)) << 13;
        Vector256<uint> sign = (bits & Vector256.Create(0x8000u)) << 16;
        Vector256<uint> scaled = (magnitude.AsSingle() * Vector256.Create(5.192296858534828e33f)).AsUInt32();
        Vector256<uint> special = Vector256.Equals(bits & Vector256.Create(0x7C00u), Vector256.Create(0x7C00u));
        return (Vector256.ConditionalSelect(special, magnitude | Vector256.Create(0x7F800000u), scaled) | sign).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> HalfBitsToSingle(Vector128<uint> bits)
    {
        Vector128<uint> magnitude = (bits & Vector128.Create(0x7FFFu)) << 13;
        Vector128<uint> sign = (bits & Vector128.Create(0x8000u)) << 16;
        Vector128<uint> scaled = (magnitude.AsSingle() * Vector128.Create(5.192296858534828e33f)).AsUInt32();
        Vector128<uint> special = Vector128.Equals(bits & Vector128.Create(0x7C00u), Vector128.Create(0x7C00u));
        return (Vector128.ConditionalSelect(special, magnitude | Vector128.Create(0x7F800000u), scaled) | sign).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Codes(Vector256<uint> words, int shift, Vector256<uint> mask) =>
        Vector256.ConvertToSingle(((words >> shift) & mask).AsInt32());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Codes(Vector128<uint> words, int shift, Vector128<uint> mask) =>
        Vector128.ConvertToSingle(((words >> shift) & mask).AsInt32());
}
