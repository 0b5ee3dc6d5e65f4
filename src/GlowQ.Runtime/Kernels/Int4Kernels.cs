using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
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
/// columns, code k at bit 4k (formats/glq-v1.md §6), so <c>word &amp; (0xF &lt;&lt; 4k)</c> over a vector of words
/// yields code k of every word times 2^4k with one AND, and no shuffles. The price is that the vector of codes for
/// step k holds columns k, k+8, k+16, …; instead of permuting codes per row, the input is permuted once per call
/// into that order, and every row of every member reuses it.
/// </para>
/// <para>
/// Nibble order, per 64-column block b (32 bytes, eight words): <c>xr[64b + 8k + i] = x[64b + 8i + k]</c>. A
/// 32-column half-block (16 bytes, four words) is what a Vector128 reads; the block's two halves occupy lanes
/// 0–3 and 4–7 of each 8-float step. Every half lies inside one group when the group size is a multiple of 32,
/// which the vector paths require (smaller groups run the scalar path).
/// </para>
/// <para>
/// Decode input (<see cref="PrepareDecodeInput"/>) is also prescaled: step k holds x·2^−4k (k &lt; 7), so the
/// masked, unshifted code times it is q·x exactly (both factors are exact powers-of-two rescalings) and a step
/// costs an AND, a conversion and an FMA. Prefill input (<see cref="PreparePrefillInput"/>) interleaves
/// <see cref="TokenBlock"/> tokens per step, so one dequantised weight vector feeds eight token columns.
/// </para>
/// </summary>
internal static class Int4Kernels
{
    public const int HalfBlock = 32;
    public const int Block = 64;

    /// <summary>Token columns one pass of the prefill kernel applies each dequantised weight vector to.</summary>
    public const int TokenBlock = 8;

    public static Int4Path Best =>
        Vector256.IsHardwareAccelerated ? Int4Path.Vector256
        : Vector128.IsHardwareAccelerated ? Int4Path.Vector128
        : Int4Path.Scalar;

    /// <summary>Whether <paramref name="path"/> can serve this group size; otherwise the scalar path runs.</summary>
    public static bool UsesNibbleOrder(Int4Path path, int groupSize) => path != Int4Path.Scalar && groupSize % HalfBlock == 0;

    /// <summary>Length of an input or dequantised row in nibble order: padded columns rounded up to whole blocks.</summary>
    public static int NibbleOrderLength(int paddedCols) => (paddedCols + Block - 1) / Block * Block;

    /// <summary>
    /// Permutes x into prescaled nibble order (zeros past the real columns, so padding codes contribute nothing) and
    /// sums it per quantisation group, for the zero-point term Σ_g s_g·z_g·Σ_{i∈g} x_i.
    /// </summary>
    public static void PrepareDecodeInput(ReadOnlySpan<float> x, int groupSize, Span<float> xr, Span<float> groupSums)
    {
        int cols = x.Length;
        int length = NibbleOrderLength(cols);
        if (xr.Length < length)
        {
            throw new ArgumentException("nibble-order buffer too short");
        }

        int whole = cols / Block * Block;
        xr.Slice(whole, length - whole).Clear();
        ReadOnlySpan<float> stepScales = StepScales;

        // Whole blocks without per-column division (this runs for every decode call, at any width).
        for (int b = 0; b < whole; b += Block)
        {
            for (int i = 0; i < 8; i++)
            {
                ReadOnlySpan<float> word = x.Slice(b + (8 * i), 8);
                for (int k = 0; k < 8; k++)
                {
                    xr[b + (k * 8) + i] = word[k] * stepScales[k];
                }
            }
        }

        for (int c = whole; c < cols; c++)
        {
            int within = c - whole, k = within % 8;
            xr[whole + (k * 8) + (within / 8)] = x[c] * stepScales[k];
        }

        for (int g = 0; g < groupSums.Length; g++)
        {
            int start = g * groupSize;
            groupSums[g] = System.Numerics.Tensors.TensorPrimitives.Sum(x.Slice(start, Math.Min(groupSize, cols - start)));
        }
    }

    /// <summary>
    /// Writes up to <see cref="TokenBlock"/> tokens (row-major, <paramref name="cols"/> each) in the prefill layout:
    /// <c>xp[((64b + 8k)·8 + t)·... ]</c>, i.e. for block b and step k, eight floats per token t holding that token's
    /// nibble-order step. Token slots past <paramref name="tokens"/> and columns past cols are zero.
    /// </summary>
    public static void PreparePrefillInput(ReadOnlySpan<float> x, int tokens, int cols, Span<float> xp)
    {
        int length = NibbleOrderLength(cols) * TokenBlock;
        if (tokens > TokenBlock || x.Length < tokens * cols || xp.Length < length)
        {
            throw new ArgumentException("prefill input and buffer disagree in length");
        }

        xp[..length].Clear();
        for (int t = 0; t < tokens; t++)
        {
            ReadOnlySpan<float> xt = x.Slice(t * cols, cols);
            for (int c = 0; c < cols; c++)
            {
                int within = c % Block, k = within % 8;
                xp[((((c - within) / 8) + k) * TokenBlock * 8) + (t * 8) + (within / 8)] = xt[c];
            }
        }
    }

    /// <summary>2^−4k for steps k &lt; 7; step 7 is read by a shift, not a mask, so its codes are unscaled.</summary>
    private static ReadOnlySpan<float> StepScales => [1f, 1f / 16, 1f / 256, 1f / 4096, 1f / 65536, 1f / 1048576, 1f / 16777216, 1f];

    /// <summary>Per-half-block values of one row from its per-group table (scales, or scale·zero products).</summary>
    public static void ExpandToHalves(ReadOnlySpan<float> perGroup, int groupSize, Span<float> perHalf)
    {
        int halvesPerGroup = groupSize / HalfBlock;
        for (int g = 0, h = 0; h < perHalf.Length; g++, h += halvesPerGroup)
        {
            perHalf.Slice(h, Math.Min(halvesPerGroup, perHalf.Length - h)).Fill(perGroup[g]);
        }
    }

    /// <summary>
    /// Σ_g s_g·Σ_{i∈g} q_i·x_i over one row's codes (zero points left out: Q(W)·x = this − Σ_g s_g·z_g·X_g), reading
    /// the prescaled nibble-order input of <see cref="PrepareDecodeInput"/>. Group size a multiple of 32.
    /// </summary>
    public static float CodeDot(Int4Path path, ReadOnlySpan<byte> codes, ReadOnlySpan<float> groupScales, int groupSize, ReadOnlySpan<float> xr)
    {
        int halves = groupScales.Length * (groupSize / HalfBlock);
        if (groupSize % HalfBlock != 0 || codes.Length < halves * 16 || xr.Length < NibbleOrderLength(halves * HalfBlock))
        {
            throw new ArgumentException("codes, scales and input disagree in length");
        }

        ref byte c = ref MemoryMarshal.GetReference(codes);
        ref float s = ref MemoryMarshal.GetReference(groupScales);
        ref float x = ref MemoryMarshal.GetReference(xr);
        if (path != Int4Path.Vector256)
        {
            return CodeDot128(ref c, ref s, ref x, halves, groupSize / HalfBlock);
        }

        return groupSize % Block == 0
            ? CodeDotByGroup256(ref c, ref s, ref x, groupScales.Length, groupSize / Block)
            : CodeDotByHalf256(ref c, ref s, ref x, halves, groupSize / HalfBlock);
    }

    private static float CodeDotByGroup256(ref byte c, ref float scales, ref float x, int groups, int blocksPerGroup)
    {
        Vector256<float> acc = Vector256<float>.Zero;
        int b = 0;
        for (int g = 0; g < groups; g++)
        {
            Vector256<float> group = Vector256<float>.Zero;
            for (int end = b + blocksPerGroup; b < end; b++)
            {
                group += BlockDot(Vector256.LoadUnsafe(ref c, (nuint)(b * 32)).AsUInt32(), ref Unsafe.Add(ref x, b * Block));
            }

            acc = Vector256.FusedMultiplyAdd(group, Vector256.Create(Unsafe.Add(ref scales, g)), acc);
        }

        return Vector256.Sum(acc);
    }

    /// <summary>Groups of an odd number of half-blocks (32, 96, …): each block's two halves may carry different scales.</summary>
    private static float CodeDotByHalf256(ref byte c, ref float scales, ref float x, int halves, int halvesPerGroup)
    {
        Vector256<float> acc = Vector256<float>.Zero;
        int blocks = halves / 2, g = 0, left = halvesPerGroup;
        for (int b = 0; b < blocks; b++)
        {
            float first = Unsafe.Add(ref scales, g);
            if (--left == 0)
            {
                g++;
                left = halvesPerGroup;
            }

            float second = Unsafe.Add(ref scales, g);
            if (--left == 0)
            {
                g++;
                left = halvesPerGroup;
            }

            Vector256<float> dot = BlockDot(Vector256.LoadUnsafe(ref c, (nuint)(b * 32)).AsUInt32(), ref Unsafe.Add(ref x, b * Block));
            acc = Vector256.FusedMultiplyAdd(dot, Vector256.Create(Vector128.Create(first), Vector128.Create(second)), acc);
        }

        float sum = Vector256.Sum(acc);
        if (halves % 2 != 0)
        {
            // The last block has only its first half: a 32-byte load would read past the row.
            Vector128<float> tail = HalfDot128(Vector128.LoadUnsafe(ref c, (nuint)(blocks * 32)).AsUInt32(), ref Unsafe.Add(ref x, blocks * Block));
            sum += Vector128.Sum(tail) * Unsafe.Add(ref scales, g);
        }

        return sum;
    }

    /// <summary>
    /// <see cref="CodeDot"/> of four consecutive rows (row r's codes at r·<paramref name="rowBytes"/>, its scales at
    /// r·<paramref name="groups"/>), lane r holding row r. At stories260K's widths (64–172 columns: one to three
    /// blocks) a row's arithmetic is a few instructions, and one horizontal sum per row cost as much as the dot
    /// itself; four rows share one transpose-add reduction instead (<see cref="Sum4(Vector128{float}, Vector128{float}, Vector128{float}, Vector128{float})"/>).
    /// </summary>
    public static Vector128<float> CodeDot4(Int4Path path, ReadOnlySpan<byte> codes, int rowBytes, ReadOnlySpan<float> scales, int groups, int groupSize, ReadOnlySpan<float> xr)
    {
        int halvesPerGroup = groupSize / HalfBlock, halves = groups * halvesPerGroup;
        if (groupSize % HalfBlock != 0 || rowBytes < halves * 16 || codes.Length < (3 * rowBytes) + (halves * 16)
            || scales.Length < 4 * groups || xr.Length < NibbleOrderLength(halves * HalfBlock))
        {
            throw new ArgumentException("codes, scales and input disagree in length");
        }

        ref byte c = ref MemoryMarshal.GetReference(codes);
        ref float s = ref MemoryMarshal.GetReference(scales);
        ref float x = ref MemoryMarshal.GetReference(xr);
        return path == Int4Path.Vector256
            ? CodeDot4x256(ref c, rowBytes, ref s, groups, ref x, halves, halvesPerGroup)
            : CodeDot4x128(ref c, rowBytes, ref s, groups, ref x, halves, halvesPerGroup);
    }

    private static Vector128<float> CodeDot4x256(ref byte c, int rowBytes, ref float s, int groups, ref float x, int halves, int halvesPerGroup)
    {
        Vector256<float> a0 = Vector256<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
        ref byte c1 = ref Unsafe.Add(ref c, rowBytes), c2 = ref Unsafe.Add(ref c1, rowBytes), c3 = ref Unsafe.Add(ref c2, rowBytes);
        ref float s1 = ref Unsafe.Add(ref s, groups), s2 = ref Unsafe.Add(ref s1, groups), s3 = ref Unsafe.Add(ref s2, groups);
        int blocks = halves / 2, g = 0, left = halvesPerGroup;
        for (int b = 0; b < blocks; b++)
        {
            int first = g;
            if (--left == 0)
            {
                g++;
                left = halvesPerGroup;
            }

            int second = g;
            if (--left == 0)
            {
                g++;
                left = halvesPerGroup;
            }

            ref float xb = ref Unsafe.Add(ref x, b * Block);
            nuint offset = (nuint)(b * 32);
            a0 = Vector256.FusedMultiplyAdd(BlockDot(Vector256.LoadUnsafe(ref c, offset).AsUInt32(), ref xb), HalfScales(ref s, first, second), a0);
            a1 = Vector256.FusedMultiplyAdd(BlockDot(Vector256.LoadUnsafe(ref c1, offset).AsUInt32(), ref xb), HalfScales(ref s1, first, second), a1);
            a2 = Vector256.FusedMultiplyAdd(BlockDot(Vector256.LoadUnsafe(ref c2, offset).AsUInt32(), ref xb), HalfScales(ref s2, first, second), a2);
            a3 = Vector256.FusedMultiplyAdd(BlockDot(Vector256.LoadUnsafe(ref c3, offset).AsUInt32(), ref xb), HalfScales(ref s3, first, second), a3);
        }

        Vector128<float> t0 = a0.GetLower() + a0.GetUpper(), t1 = a1.GetLower() + a1.GetUpper();
        Vector128<float> t2 = a2.GetLower() + a2.GetUpper(), t3 = a3.GetLower() + a3.GetUpper();
        if (halves % 2 != 0)
        {
            // The last block has only its first half: a 32-byte load would read past the row.
            ref float xb = ref Unsafe.Add(ref x, blocks * Block);
            nuint offset = (nuint)(blocks * 32);
            t0 = Vector128.FusedMultiplyAdd(HalfDot128(Vector128.LoadUnsafe(ref c, offset).AsUInt32(), ref xb), Vector128.Create(Unsafe.Add(ref s, g)), t0);
            t1 = Vector128.FusedMultiplyAdd(HalfDot128(Vector128.LoadUnsafe(ref c1, offset).AsUInt32(), ref xb), Vector128.Create(Unsafe.Add(ref s1, g)), t1);
            t2 = Vector128.FusedMultiplyAdd(HalfDot128(Vector128.LoadUnsafe(ref c2, offset).AsUInt32(), ref xb), Vector128.Create(Unsafe.Add(ref s2, g)), t2);
            t3 = Vector128.FusedMultiplyAdd(HalfDot128(Vector128.LoadUnsafe(ref c3, offset).AsUInt32(), ref xb), Vector128.Create(Unsafe.Add(ref s3, g)), t3);
        }

        return Sum4(t0, t1, t2, t3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> HalfScales(ref float rowScales, int first, int second) =>
        Vector256.Create(Vector128.Create(Unsafe.Add(ref rowScales, first)), Vector128.Create(Unsafe.Add(ref rowScales, second)));

    private static Vector128<float> CodeDot4x128(ref byte c, int rowBytes, ref float s, int groups, ref float x, int halves, int halvesPerGroup)
    {
        Vector128<float> a0 = Vector128<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
        ref byte c1 = ref Unsafe.Add(ref c, rowBytes), c2 = ref Unsafe.Add(ref c1, rowBytes), c3 = ref Unsafe.Add(ref c2, rowBytes);
        ref float s1 = ref Unsafe.Add(ref s, groups), s2 = ref Unsafe.Add(ref s1, groups), s3 = ref Unsafe.Add(ref s2, groups);
        int g = 0, left = halvesPerGroup;
        for (int h = 0; h < halves; h++)
        {
            ref float xh = ref Unsafe.Add(ref x, (h / 2 * Block) + (h % 2 * 4));
            nuint offset = (nuint)(h * 16);
            a0 = Vector128.FusedMultiplyAdd(HalfDot128(Vector128.LoadUnsafe(ref c, offset).AsUInt32(), ref xh), Vector128.Create(Unsafe.Add(ref s, g)), a0);
            a1 = Vector128.FusedMultiplyAdd(HalfDot128(Vector128.LoadUnsafe(ref c1, offset).AsUInt32(), ref xh), Vector128.Create(Unsafe.Add(ref s1, g)), a1);
            a2 = Vector128.FusedMultiplyAdd(HalfDot128(Vector128.LoadUnsafe(ref c2, offset).AsUInt32(), ref xh), Vector128.Create(Unsafe.Add(ref s2, g)), a2);
            a3 = Vector128.FusedMultiplyAdd(HalfDot128(Vector128.LoadUnsafe(ref c3, offset).AsUInt32(), ref xh), Vector128.Create(Unsafe.Add(ref s3, g)), a3);
            if (--left == 0)
            {
                g++;
                left = halvesPerGroup;
            }
        }

        return Sum4(a0, a1, a2, a3);
    }

    /// <summary>
    /// Lane r = Σ_j a[r·<paramref name="stride"/> + j]·b[j] for j &lt; <paramref name="length"/>, four rows at once:
    /// the epilogue's zero-point and A_row·t terms for the rows of <see cref="CodeDot4"/>.
    /// </summary>
    public static Vector128<float> Dot4(Int4Path path, ReadOnlySpan<float> a, int stride, ReadOnlySpan<float> b, int length)
    {
        if (length < 0 || stride < length || b.Length < length || a.Length < (3 * stride) + length)
        {
            throw new ArgumentException("Dot4 rows and vector disagree in length");
        }

        ref float a0 = ref MemoryMarshal.GetReference(a);
        ref float a1 = ref Unsafe.Add(ref a0, stride), a2 = ref Unsafe.Add(ref a1, stride), a3 = ref Unsafe.Add(ref a2, stride);
        ref float br = ref MemoryMarshal.GetReference(b);
        int j = 0;
        Vector128<float> sum = Vector128<float>.Zero;
        if (path == Int4Path.Vector256 && length >= 8)
        {
            Vector256<float> p0 = Vector256<float>.Zero, p1 = p0, p2 = p0, p3 = p0;
            for (; j <= length - 8; j += 8)
            {
                Vector256<float> bj = Vector256.LoadUnsafe(ref br, (nuint)j);
                p0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref a0, (nuint)j), bj, p0);
                p1 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref a1, (nuint)j), bj, p1);
                p2 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref a2, (nuint)j), bj, p2);
                p3 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref a3, (nuint)j), bj, p3);
            }

            sum = Sum4(p0.GetLower() + p0.GetUpper(), p1.GetLower() + p1.GetUpper(), p2.GetLower() + p2.GetUpper(), p3.GetLower() + p3.GetUpper());
        }

        if (path != Int4Path.Scalar && length - j >= 4)
        {
            Vector128<float> p0 = Vector128<float>.Zero, p1 = p0, p2 = p0, p3 = p0;
            for (; j <= length - 4; j += 4)
            {
                Vector128<float> bj = Vector128.LoadUnsafe(ref br, (nuint)j);
                p0 = Vector128.FusedMultiplyAdd(Vector128.LoadUnsafe(ref a0, (nuint)j), bj, p0);
                p1 = Vector128.FusedMultiplyAdd(Vector128.LoadUnsafe(ref a1, (nuint)j), bj, p1);
                p2 = Vector128.FusedMultiplyAdd(Vector128.LoadUnsafe(ref a2, (nuint)j), bj, p2);
                p3 = Vector128.FusedMultiplyAdd(Vector128.LoadUnsafe(ref a3, (nuint)j), bj, p3);
            }

            sum += Sum4(p0, p1, p2, p3);
        }

        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (; j < length; j++)
        {
            float bj = Unsafe.Add(ref br, j);
            s0 += Unsafe.Add(ref a0, j) * bj;
            s1 += Unsafe.Add(ref a1, j) * bj;
            s2 += Unsafe.Add(ref a2, j) * bj;
            s3 += Unsafe.Add(ref a3, j) * bj;
        }

        return sum + Vector128.Create(s0, s1, s2, s3);
    }

    /// <summary>
    /// (Σ lanes of a, of b, of c, of d): a transposing pairwise add (two rounds of haddps on x64, addp on arm64)
    /// instead of four shuffle-and-add reductions; per-lane sums elsewhere.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<float> Sum4(Vector128<float> a, Vector128<float> b, Vector128<float> c, Vector128<float> d)
    {
        if (Sse3.IsSupported)
        {
            return Sse3.HorizontalAdd(Sse3.HorizontalAdd(a, b), Sse3.HorizontalAdd(c, d));
        }

        if (AdvSimd.Arm64.IsSupported)
        {
            return AdvSimd.Arm64.AddPairwise(AdvSimd.Arm64.AddPairwise(a, b), AdvSimd.Arm64.AddPairwise(c, d));
        }

        return Vector128.Create(Vector128.Sum(a), Vector128.Sum(b), Vector128.Sum(c), Vector128.Sum(d));
    }

    /// <summary>Per-lane Σ_k q_k·x_k over one 64-column block of prescaled input: lane i holds word i's eight codes' dot.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> BlockDot(Vector256<uint> words, ref float xb)
    {
        // Four independent chains of two steps each, so FMA latency overlaps across steps.
        Vector256<float> p0 = Masked(words, 0x0000000Fu) * Vector256.LoadUnsafe(ref xb, 0);
        Vector256<float> p1 = Masked(words, 0x000000F0u) * Vector256.LoadUnsafe(ref xb, 8);
        Vector256<float> p2 = Masked(words, 0x00000F00u) * Vector256.LoadUnsafe(ref xb, 16);
        Vector256<float> p3 = Masked(words, 0x0000F000u) * Vector256.LoadUnsafe(ref xb, 24);
        p0 = Vector256.FusedMultiplyAdd(Masked(words, 0x000F0000u), Vector256.LoadUnsafe(ref xb, 32), p0);
        p1 = Vector256.FusedMultiplyAdd(Masked(words, 0x00F00000u), Vector256.LoadUnsafe(ref xb, 40), p1);
        p2 = Vector256.FusedMultiplyAdd(Masked(words, 0x0F000000u), Vector256.LoadUnsafe(ref xb, 48), p2);
        p3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle((words >> 28).AsInt32()), Vector256.LoadUnsafe(ref xb, 56), p3);
        return (p0 + p1) + (p2 + p3);
    }

    /// <summary>As <see cref="BlockDot"/> for one 32-column half-block (four words) at <paramref name="xh"/> (lane stride 8).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> HalfDot128(Vector128<uint> words, ref float xh)
    {
        Vector128<float> p0 = Masked(words, 0x0000000Fu) * Vector128.LoadUnsafe(ref xh, 0);
        Vector128<float> p1 = Masked(words, 0x000000F0u) * Vector128.LoadUnsafe(ref xh, 8);
        Vector128<float> p2 = Masked(words, 0x00000F00u) * Vector128.LoadUnsafe(ref xh, 16);
        Vector128<float> p3 = Masked(words, 0x0000F000u) * Vector128.LoadUnsafe(ref xh, 24);
        p0 = Vector128.FusedMultiplyAdd(Masked(words, 0x000F0000u), Vector128.LoadUnsafe(ref xh, 32), p0);
        p1 = Vector128.FusedMultiplyAdd(Masked(words, 0x00F00000u), Vector128.LoadUnsafe(ref xh, 40), p1);
        p2 = Vector128.FusedMultiplyAdd(Masked(words, 0x0F000000u), Vector128.LoadUnsafe(ref xh, 48), p2);
        p3 = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle((words >> 28).AsInt32()), Vector128.LoadUnsafe(ref xh, 56), p3);
        return (p0 + p1) + (p2 + p3);
    }

    private static float CodeDot128(ref byte c, ref float scales, ref float x, int halves, int halvesPerGroup)
    {
        Vector128<float> acc = Vector128<float>.Zero;
        int g = 0, left = halvesPerGroup;
        for (int h = 0; h < halves; h++)
        {
            Vector128<float> dot = HalfDot128(Vector128.LoadUnsafe(ref c, (nuint)(h * 16)).AsUInt32(), ref Unsafe.Add(ref x, (h / 2 * Block) + (h % 2 * 4)));
            acc = Vector128.FusedMultiplyAdd(dot, Vector128.Create(Unsafe.Add(ref scales, g)), acc);
            if (--left == 0)
            {
                g++;
                left = halvesPerGroup;
            }
        }

        return Vector128.Sum(acc);
    }

    /// <summary>
    /// sums[t] = Q(W)[row]·x_t for the <see cref="TokenBlock"/> token columns of one prefill block (layout of
    /// <see cref="PreparePrefillInput"/>). Each code vector is dequantised once, w = fma(q, s, −s·z) — exactly
    /// (q − z)·s, as q·s and s·z are exact in fp32 and so is their difference — and applied to all eight columns.
    /// </summary>
    public static void CodeDotTokenBlock(Int4Path path, ReadOnlySpan<byte> codes, ReadOnlySpan<float> halfScales, ReadOnlySpan<float> halfZeroScales, ReadOnlySpan<float> xp, Span<float> sums)
    {
        int halves = halfScales.Length;
        if (codes.Length < halves * 16 || halfZeroScales.Length < halves || xp.Length < NibbleOrderLength(halves * HalfBlock) * TokenBlock || sums.Length < TokenBlock)
        {
            throw new ArgumentException("codes, tables, input and sums disagree in length");
        }

        ref byte c = ref MemoryMarshal.GetReference(codes);
        ref float s = ref MemoryMarshal.GetReference(halfScales);
        ref float z = ref MemoryMarshal.GetReference(halfZeroScales);
        ref float x = ref MemoryMarshal.GetReference(xp);
        ref float y = ref MemoryMarshal.GetReference(sums);
        if (path == Int4Path.Vector256)
        {
            TokenBlock256(ref c, ref s, ref z, ref x, halves, ref y);
        }
        else
        {
            TokenBlock128(ref c, ref s, ref z, ref x, halves, ref y);
        }
    }

    private static void TokenBlock256(ref byte c, ref float s, ref float z, ref float x, int halves, ref float sums)
    {
        Vector256<float> a0 = Vector256<float>.Zero, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        Vector256<uint> mask = Vector256.Create(0xFu);
        int blocks = halves / 2;
        for (int b = 0; b < blocks; b++)
        {
            Vector256<uint> words = Vector256.LoadUnsafe(ref c, (nuint)(b * 32)).AsUInt32();
            Vector256<float> scale = Vector256.Create(Vector128.Create(Unsafe.Add(ref s, 2 * b)), Vector128.Create(Unsafe.Add(ref s, (2 * b) + 1)));
            Vector256<float> offset = -Vector256.Create(Vector128.Create(Unsafe.Add(ref z, 2 * b)), Vector128.Create(Unsafe.Add(ref z, (2 * b) + 1)));
            ref float xb = ref Unsafe.Add(ref x, b * Block * TokenBlock);
            for (int k = 0; k < 8; k++)
            {
                Vector256<float> w = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(((words >> (4 * k)) & mask).AsInt32()), scale, offset);
                ref float xk = ref Unsafe.Add(ref xb, k * 8 * TokenBlock);
                a0 = Vector256.FusedMultiplyAdd(w, Vector256.LoadUnsafe(ref xk, 0), a0);
                a1 = Vector256.FusedMultiplyAdd(w, Vector256.LoadUnsafe(ref xk, 8), a1);
                a2 = Vector256.FusedMultiplyAdd(w, Vector256.LoadUnsafe(ref xk, 16), a2);
                a3 = Vector256.FusedMultiplyAdd(w, Vector256.LoadUnsafe(ref xk, 24), a3);
                a4 = Vector256.FusedMultiplyAdd(w, Vector256.LoadUnsafe(ref xk, 32), a4);
                a5 = Vector256.FusedMultiplyAdd(w, Vector256.LoadUnsafe(ref xk, 40), a5);
                a6 = Vector256.FusedMultiplyAdd(w, Vector256.LoadUnsafe(ref xk, 48), a6);
                a7 = Vector256.FusedMultiplyAdd(w, Vector256.LoadUnsafe(ref xk, 56), a7);
            }
        }

        Vector128<float> t0 = a0.GetLower() + a0.GetUpper(), t1 = a1.GetLower() + a1.GetUpper(), t2 = a2.GetLower() + a2.GetUpper(), t3 = a3.GetLower() + a3.GetUpper();
        Vector128<float> t4 = a4.GetLower() + a4.GetUpper(), t5 = a5.GetLower() + a5.GetUpper(), t6 = a6.GetLower() + a6.GetUpper(), t7 = a7.GetLower() + a7.GetUpper();
        if (halves % 2 != 0)
        {
            // The last block has only its first half: its lanes 0–3 finish with 128-bit arithmetic.
            Vector128<uint> words = Vector128.LoadUnsafe(ref c, (nuint)(blocks * 32)).AsUInt32();
            Vector128<float> scale = Vector128.Create(Unsafe.Add(ref s, halves - 1)), offset = Vector128.Create(-Unsafe.Add(ref z, halves - 1));
            Vector128<uint> mask128 = Vector128.Create(0xFu);
            ref float xb = ref Unsafe.Add(ref x, blocks * Block * TokenBlock);
            for (int k = 0; k < 8; k++)
            {
                Vector128<float> w = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(((words >> (4 * k)) & mask128).AsInt32()), scale, offset);
                ref float xk = ref Unsafe.Add(ref xb, k * 8 * TokenBlock);
                t0 = Vector128.FusedMultiplyAdd(w, Vector128.LoadUnsafe(ref xk, 0), t0);
                t1 = Vector128.FusedMultiplyAdd(w, Vector128.LoadUnsafe(ref xk, 8), t1);
                t2 = Vector128.FusedMultiplyAdd(w, Vector128.LoadUnsafe(ref xk, 16), t2);
                t3 = Vector128.FusedMultiplyAdd(w, Vector128.LoadUnsafe(ref xk, 24), t3);
                t4 = Vector128.FusedMultiplyAdd(w, Vector128.LoadUnsafe(ref xk, 32), t4);
                t5 = Vector128.FusedMultiplyAdd(w, Vector128.LoadUnsafe(ref xk, 40), t5);
                t6 = Vector128.FusedMultiplyAdd(w, Vector128.LoadUnsafe(ref xk, 48), t6);
                t7 = Vector128.FusedMultiplyAdd(w, Vector128.LoadUnsafe(ref xk, 56), t7);
            }
        }

        StoreSums(ref sums, t0, t1, t2, t3, t4, t5, t6, t7);
    }

    private static void TokenBlock128(ref byte c, ref float s, ref float z, ref float x, int halves, ref float sums)
    {
        Vector128<float> a0 = Vector128<float>.Zero, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        Vector128<uint> mask = Vector128.Create(0xFu);
        for (int h = 0; h < halves; h++)
        {
            Vector128<uint> words = Vector128.LoadUnsafe(ref c, (nuint)(h * 16)).AsUInt32();
            Vector128<float> scale = Vector128.Create(Unsafe.Add(ref s, h)), offset = Vector128.Create(-Unsafe.Add(ref z, h));
            ref float xh = ref Unsafe.Add(ref x, (h / 2 * Block * TokenBlock) + (h % 2 * 4));
            for (int k = 0; k < 8; k++)
            {
                Vector128<float> w = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(((words >> (4 * k)) & mask).AsInt32()), scale, offset);
                ref float xk = ref Unsafe.Add(ref xh, k * 8 * TokenBlock);
                a0 = Vector128.FusedMultiplyAdd(w, Vector128.LoadUnsafe(ref xk, 0), a0);
                a1 = Vector128.FusedMultiplyAdd(w, Vector128.LoadUnsafe(ref xk, 8), a1);
                a2 = Vector128.FusedMultiplyAdd(w, Vector128.LoadUnsafe(ref xk, 16), a2);
                a3 = Vector128.FusedMultiplyAdd(w, Vector128.LoadUnsafe(ref xk, 24), a3);
                a4 = Vector128.FusedMultiplyAdd(w, Vector128.LoadUnsafe(ref xk, 32), a4);
                a5 = Vector128.FusedMultiplyAdd(w, Vector128.LoadUnsafe(ref xk, 40), a5);
                a6 = Vector128.FusedMultiplyAdd(w, Vector128.LoadUnsafe(ref xk, 48), a6);
                a7 = Vector128.FusedMultiplyAdd(w, Vector128.LoadUnsafe(ref xk, 56), a7);
            }
        }

        StoreSums(ref sums, a0, a1, a2, a3, a4, a5, a6, a7);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreSums(ref float sums, Vector128<float> t0, Vector128<float> t1, Vector128<float> t2, Vector128<float> t3, Vector128<float> t4, Vector128<float> t5, Vector128<float> t6, Vector128<float> t7)
    {
        Unsafe.Add(ref sums, 0) = Vector128.Sum(t0);
        Unsafe.Add(ref sums, 1) = Vector128.Sum(t1);
        Unsafe.Add(ref sums, 2) = Vector128.Sum(t2);
        Unsafe.Add(ref sums, 3) = Vector128.Sum(t3);
        Unsafe.Add(ref sums, 4) = Vector128.Sum(t4);
        Unsafe.Add(ref sums, 5) = Vector128.Sum(t5);
        Unsafe.Add(ref sums, 6) = Vector128.Sum(t6);
        Unsafe.Add(ref sums, 7) = Vector128.Sum(t7);
    }

    /// <summary>
    /// destination[j] = (float)source[j], exactly, eight or sixteen at a time (the library conversion widens one half
    /// at a time on this runtime, which made widening a row block's scales and A cost more than its dot products).
    /// </summary>
    public static void WidenHalves(Int4Path path, ReadOnlySpan<Half> source, Span<float> destination)
    {
        if (destination.Length < source.Length)
        {
            throw new ArgumentException("WidenHalves needs as many floats as halves");
        }

        ref ushort h = ref Unsafe.As<Half, ushort>(ref MemoryMarshal.GetReference(source));
        ref float f = ref MemoryMarshal.GetReference(destination);
        int j = 0;
        if (path == Int4Path.Vector256)
        {
            for (; j <= source.Length - 16; j += 16)
            {
                (Vector256<uint> low, Vector256<uint> high) = Vector256.Widen(Vector256.LoadUnsafe(ref h, (nuint)j));
                HalfBitsToSingle(low).StoreUnsafe(ref f, (nuint)j);
                HalfBitsToSingle(high).StoreUnsafe(ref f, (nuint)(j + 8));
            }
        }

        if (path != Int4Path.Scalar)
        {
            for (; j <= source.Length - 8; j += 8)
            {
                (Vector128<uint> low, Vector128<uint> high) = Vector128.Widen(Vector128.LoadUnsafe(ref h, (nuint)j));
                HalfBitsToSingle(low).StoreUnsafe(ref f, (nuint)j);
                HalfBitsToSingle(high).StoreUnsafe(ref f, (nuint)(j + 4));
            }
        }

        for (; j < source.Length; j++)
        {
            Unsafe.Add(ref f, j) = (float)source[j];
        }
    }

    /// <summary>Σ a_j·b_j in fp32 for the short vectors of the epilogue (A_row·t, Σ s·z·X), without a library call's fixed cost.</summary>
    public static float Dot(Int4Path path, ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (b.Length < a.Length)
        {
            throw new ArgumentException("Dot needs b at least as long as a");
        }

        ref float ar = ref MemoryMarshal.GetReference(a);
        ref float br = ref MemoryMarshal.GetReference(b);
        int j = 0;
        float sum = 0;
        if (path == Int4Path.Vector256 && a.Length >= 8)
        {
            Vector256<float> acc = Vector256<float>.Zero;
            for (; j <= a.Length - 8; j += 8)
            {
                acc = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref ar, (nuint)j), Vector256.LoadUnsafe(ref br, (nuint)j), acc);
            }

            sum = Vector256.Sum(acc);
        }

        if (path != Int4Path.Scalar && a.Length - j >= 4)
        {
            Vector128<float> acc = Vector128<float>.Zero;
            for (; j <= a.Length - 4; j += 4)
            {
                acc = Vector128.FusedMultiplyAdd(Vector128.LoadUnsafe(ref ar, (nuint)j), Vector128.LoadUnsafe(ref br, (nuint)j), acc);
            }

            sum += Vector128.Sum(acc);
        }

        for (; j < a.Length; j++)
        {
            sum += Unsafe.Add(ref ar, j) * Unsafe.Add(ref br, j);
        }

        return sum;
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

        // Vector256 finishes its remainder here too: ranks such as 8 would otherwise widen every half in scalar code.
        if (path != Int4Path.Scalar)
        {
            Vector128<float> acc0 = Vector128<float>.Zero, acc1 = acc0;
            for (; j <= a.Length - 8; j += 8)
            {
                (Vector128<uint> low, Vector128<uint> high) = Vector128.Widen(Vector128.LoadUnsafe(ref ar, (nuint)j));
                acc0 = Vector128.FusedMultiplyAdd(HalfBitsToSingle(low), Vector128.LoadUnsafe(ref tr, (nuint)j), acc0);
                acc1 = Vector128.FusedMultiplyAdd(HalfBitsToSingle(high), Vector128.LoadUnsafe(ref tr, (nuint)(j + 4)), acc1);
            }

            sum += Vector128.Sum(acc0 + acc1);
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

    /// <summary>Code k of every word times 2^4k (the prescaled input undoes the 2^4k), for k &lt; 7.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Masked(Vector256<uint> words, uint mask) =>
        Vector256.ConvertToSingle((words & Vector256.Create(mask)).AsInt32());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Masked(Vector128<uint> words, uint mask) =>
        Vector128.ConvertToSingle((words & Vector128.Create(mask)).AsInt32());
}
