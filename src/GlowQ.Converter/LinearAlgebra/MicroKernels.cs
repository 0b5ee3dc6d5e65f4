using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace GlowQ.Converter.LinearAlgebra;

/// <summary>Which family of register-tile kernels does the arithmetic.</summary>
internal enum KernelPath
{
    /// <summary>x86-64 with FMA: 256-bit vectors, one rounding per multiply-add.</summary>
    Fma256,

    /// <summary>Any SIMD width through <see cref="Vector{T}"/> (NEON on arm64); fused where the hardware fuses.</summary>
    Portable,

    /// <summary>No usable SIMD: plain loops.</summary>
    Scalar,
}

/// <summary>
/// Register-tiled inner kernels. Each reads a packed A micro-panel (kc steps of <see cref="Mr"/> values) and a packed B
/// micro-panel (kc steps of <see cref="Nr"/> or <see cref="GramNr"/> values) and keeps the whole Mr × Nr tile of sums in
/// registers for the full kc loop, so C is read and written once per packed block instead of once per step.
/// All paths add the products in the same order (p ascending, one running sum per element), so they agree to rounding,
/// and bit for bit wherever the portable path's multiply-add fuses.
/// </summary>
internal static class MicroKernels
{
    /// <summary>Rows of a register tile: 6 rows × 2 vectors = 12 accumulators, leaving registers for B and a broadcast.</summary>
    public const int Mr = 6;

    /// <summary>fp64 columns of a register tile (two 256-bit vectors).</summary>
    public const int Nr = 8;

    /// <summary>fp32 columns of a Gram register tile (two 256-bit vectors).</summary>
    public const int GramNr = 16;

    public static KernelPath Default { get; } =
        Fma.IsSupported && Vector256.IsHardwareAccelerated ? KernelPath.Fma256
        : Vector.IsHardwareAccelerated && Nr % Vector<double>.Count == 0 && GramNr % Vector<float>.Count == 0 ? KernelPath.Portable
        : KernelPath.Scalar;

    /// <summary>
    /// c[Mr × Nr] = beta·c + alpha·Σ_p a_p b_pᵀ, or alpha·Σ when beta is 0 (old contents ignored, even NaN).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Run(KernelPath path, int kc, ref double a, ref double b, double alpha, double beta, ref double c, int ldc)
    {
        switch (path)
        {
            case KernelPath.Fma256:
                Fma256(kc, ref a, ref b, alpha, beta, ref c, ldc);
                break;
            case KernelPath.Portable:
                Portable(kc, ref a, ref b, alpha, beta, ref c, ldc);
                break;
            default:
                Scalar(kc, ref a, ref b, alpha, beta, ref c, ldc);
                break;
        }
    }

    /// <summary>c[Mr × GramNr] (fp64) += Σ_p a_p b_pᵀ formed and summed in fp32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void RunGram(KernelPath path, int kc, ref float a, ref float b, ref double c, int ldc)
    {
        switch (path)
        {
            case KernelPath.Fma256:
                GramFma256(kc, ref a, ref b, ref c, ldc);
                break;
            case KernelPath.Portable:
                GramPortable(kc, ref a, ref b, ref c, ldc);
                break;
            default:
                GramScalar(kc, ref a, ref b, ref c, ldc);
                break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Fma256(int kc, ref double a, ref double b, double alpha, double beta, ref double c, int ldc)
    {
        Vector256<double> c00 = Vector256<double>.Zero, c01 = Vector256<double>.Zero;
        Vector256<double> c10 = Vector256<double>.Zero, c11 = Vector256<double>.Zero;
        Vector256<double> c20 = Vector256<double>.Zero, c21 = Vector256<double>.Zero;
        Vector256<double> c30 = Vector256<double>.Zero, c31 = Vector256<double>.Zero;
        Vector256<double> c40 = Vector256<double>.Zero, c41 = Vector256<double>.Zero;
        Vector256<double> c50 = Vector256<double>.Zero, c51 = Vector256<double>.Zero;
        for (int p = 0; p < kc; p++)
        {
            Vector256<double> b0 = Vector256.LoadUnsafe(ref b);
            Vector256<double> b1 = Vector256.LoadUnsafe(ref b, 4);
            Vector256<double> x = Vector256.Create(a);
            c00 = Fma.MultiplyAdd(x, b0, c00);
            c01 = Fma.MultiplyAdd(x, b1, c01);
            x = Vector256.Create(Unsafe.Add(ref a, 1));
            c10 = Fma.MultiplyAdd(x, b0, c10);
            c11 = Fma.MultiplyAdd(x, b1, c11);
            x = Vector256.Create(Unsafe.Add(ref a, 2));
            c20 = Fma.MultiplyAdd(x, b0, c20);
            c21 = Fma.MultiplyAdd(x, b1, c21);
            x = Vector256.Create(Unsafe.Add(ref a, 3));
            c30 = Fma.MultiplyAdd(x, b0, c30);
            c31 = Fma.MultiplyAdd(x, b1, c31);
            x = Vector256.Create(Unsafe.Add(ref a, 4));
            c40 = Fma.MultiplyAdd(x, b0, c40);
            c41 = Fma.MultiplyAdd(x, b1, c41);
            x = Vector256.Create(Unsafe.Add(ref a, 5));
            c50 = Fma.MultiplyAdd(x, b0, c50);
            c51 = Fma.MultiplyAdd(x, b1, c51);
            a = ref Unsafe.Add(ref a, Mr);
            b = ref Unsafe.Add(ref b, Nr);
        }

        StoreFma256(ref c, c00, c01, alpha, beta);
        StoreFma256(ref Unsafe.Add(ref c, ldc), c10, c11, alpha, beta);
        StoreFma256(ref Unsafe.Add(ref c, 2 * ldc), c20, c21, alpha, beta);
        StoreFma256(ref Unsafe.Add(ref c, 3 * ldc), c30, c31, alpha, beta);
        StoreFma256(ref Unsafe.Add(ref c, 4 * ldc), c40, c41, alpha, beta);
        StoreFma256(ref Unsafe.Add(ref c, 5 * ldc), c50, c51, alpha, beta);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreFma256(ref double c, Vector256<double> low, Vector256<double> high, double alpha, double beta)
    {
        var scale = Vector256.Create(alpha);
        if (beta == 0)
        {
            (low * scale).StoreUnsafe(ref c);
            (high * scale).StoreUnsafe(ref c, 4);
        }
        else
        {
            var keep = Vector256.Create(beta);
            Fma.MultiplyAdd(low, scale, Vector256.LoadUnsafe(ref c) * keep).StoreUnsafe(ref c);
            Fma.MultiplyAdd(high, scale, Vector256.LoadUnsafe(ref c, 4) * keep).StoreUnsafe(ref c, 4);
        }
    }

    /// <summary>
    /// One vector of columns at a time, so the same code serves 128-bit NEON (4 passes), 256-bit (2) and 512-bit (1);
    /// the A micro-panel is re-read from L1 on each pass.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Portable(int kc, ref double a, ref double b, double alpha, double beta, ref double c, int ldc)
    {
        int width = Vector<double>.Count;
        var scale = new Vector<double>(alpha);
        var keep = new Vector<double>(beta);
        for (int j = 0; j < Nr; j += width)
        {
            Vector<double> r0 = Vector<double>.Zero, r1 = Vector<double>.Zero, r2 = Vector<double>.Zero;
            Vector<double> r3 = Vector<double>.Zero, r4 = Vector<double>.Zero, r5 = Vector<double>.Zero;
            ref double ap = ref a;
            ref double bp = ref Unsafe.Add(ref b, j);
            for (int p = 0; p < kc; p++)
            {
                Vector<double> bv = Vector.LoadUnsafe(ref bp);
                r0 = Vector.MultiplyAddEstimate(new Vector<double>(ap), bv, r0);
                r1 = Vector.MultiplyAddEstimate(new Vector<double>(Unsafe.Add(ref ap, 1)), bv, r1);
                r2 = Vector.MultiplyAddEstimate(new Vector<double>(Unsafe.Add(ref ap, 2)), bv, r2);
                r3 = Vector.MultiplyAddEstimate(new Vector<double>(Unsafe.Add(ref ap, 3)), bv, r3);
                r4 = Vector.MultiplyAddEstimate(new Vector<double>(Unsafe.Add(ref ap, 4)), bv, r4);
                r5 = Vector.MultiplyAddEstimate(new Vector<double>(Unsafe.Add(ref ap, 5)), bv, r5);
                ap = ref Unsafe.Add(ref ap, Mr);
                bp = ref Unsafe.Add(ref bp, Nr);
            }

            ref double cj = ref Unsafe.Add(ref c, j);
            StorePortable(ref cj, r0, scale, keep, beta);
            StorePortable(ref Unsafe.Add(ref cj, ldc), r1, scale, keep, beta);
            StorePortable(ref Unsafe.Add(ref cj, 2 * ldc), r2, scale, keep, beta);
            StorePortable(ref Unsafe.Add(ref cj, 3 * ldc), r3, scale, keep, beta);
            StorePortable(ref Unsafe.Add(ref cj, 4 * ldc), r4, scale, keep, beta);
            StorePortable(ref Unsafe.Add(ref cj, 5 * ldc), r5, scale, keep, beta);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StorePortable(ref double c, Vector<double> sum, Vector<double> scale, Vector<double> keep, double beta)
    {
        Vector<double> result = beta == 0 ? sum * scale : Vector.MultiplyAddEstimate(sum, scale, Vector.LoadUnsafe(ref c) * keep);
        result.StoreUnsafe(ref c);
    }

    private static void Scalar(int kc, ref double a, ref double b, double alpha, double beta, ref double c, int ldc)
    {
        Span<double> sums = stackalloc double[Mr * Nr];
        sums.Clear();
        for (int p = 0; p < kc; p++)
        {
            for (int i = 0; i < Mr; i++)
            {
                double ai = Unsafe.Add(ref a, p * Mr + i);
                for (int j = 0; j < Nr; j++)
                {
                    sums[i * Nr + j] += ai * Unsafe.Add(ref b, p * Nr + j);
                }
            }
        }

        for (int i = 0; i < Mr; i++)
        {
            ref double row = ref Unsafe.Add(ref c, i * ldc);
            for (int j = 0; j < Nr; j++)
            {
                ref double cij = ref Unsafe.Add(ref row, j);
                cij = beta == 0 ? alpha * sums[i * Nr + j] : (alpha * sums[i * Nr + j]) + (beta * cij);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GramFma256(int kc, ref float a, ref float b, ref double c, int ldc)
    {
        Vector256<float> c00 = Vector256<float>.Zero, c01 = Vector256<float>.Zero;
        Vector256<float> c10 = Vector256<float>.Zero, c11 = Vector256<float>.Zero;
        Vector256<float> c20 = Vector256<float>.Zero, c21 = Vector256<float>.Zero;
        Vector256<float> c30 = Vector256<float>.Zero, c31 = Vector256<float>.Zero;
        Vector256<float> c40 = Vector256<float>.Zero, c41 = Vector256<float>.Zero;
        Vector256<float> c50 = Vector256<float>.Zero, c51 = Vector256<float>.Zero;
        for (int p = 0; p < kc; p++)
        {
            Vector256<float> b0 = Vector256.LoadUnsafe(ref b);
            Vector256<float> b1 = Vector256.LoadUnsafe(ref b, 8);
            Vector256<float> x = Vector256.Create(a);
            c00 = Fma.MultiplyAdd(x, b0, c00);
            c01 = Fma.MultiplyAdd(x, b1, c01);
            x = Vector256.Create(Unsafe.Add(ref a, 1));
            c10 = Fma.MultiplyAdd(x, b0, c10);
            c11 = Fma.MultiplyAdd(x, b1, c11);
            x = Vector256.Create(Unsafe.Add(ref a, 2));
            c20 = Fma.MultiplyAdd(x, b0, c20);
            c21 = Fma.MultiplyAdd(x, b1, c21);
            x = Vector256.Create(Unsafe.Add(ref a, 3));
            c30 = Fma.MultiplyAdd(x, b0, c30);
            c31 = Fma.MultiplyAdd(x, b1, c31);
            x = Vector256.Create(Unsafe.Add(ref a, 4));
            c40 = Fma.MultiplyAdd(x, b0, c40);
            c41 = Fma.MultiplyAdd(x, b1, c41);
            x = Vector256.Create(Unsafe.Add(ref a, 5));
            c50 = Fma.MultiplyAdd(x, b0, c50);
            c51 = Fma.MultiplyAdd(x, b1, c51);
            a = ref Unsafe.Add(ref a, Mr);
            b = ref Unsafe.Add(ref b, GramNr);
        }

        AddWidened256(ref c, c00, c01);
        AddWidened256(ref Unsafe.Add(ref c, ldc), c10, c11);
        AddWidened256(ref Unsafe.Add(ref c, 2 * ldc), c20, c21);
        AddWidened256(ref Unsafe.Add(ref c, 3 * ldc), c30, c31);
        AddWidened256(ref Unsafe.Add(ref c, 4 * ldc), c40, c41);
        AddWidened256(ref Unsafe.Add(ref c, 5 * ldc), c50, c51);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddWidened256(ref double c, Vector256<float> low, Vector256<float> high)
    {
        (Vector256.LoadUnsafe(ref c) + Vector256.WidenLower(low)).StoreUnsafe(ref c);
        (Vector256.LoadUnsafe(ref c, 4) + Vector256.WidenUpper(low)).StoreUnsafe(ref c, 4);
        (Vector256.LoadUnsafe(ref c, 8) + Vector256.WidenLower(high)).StoreUnsafe(ref c, 8);
        (Vector256.LoadUnsafe(ref c, 12) + Vector256.WidenUpper(high)).StoreUnsafe(ref c, 12);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GramPortable(int kc, ref float a, ref float b, ref double c, int ldc)
    {
        int width = Vector<float>.Count;
        for (int j = 0; j < GramNr; j += width)
        {
            Vector<float> r0 = Vector<float>.Zero, r1 = Vector<float>.Zero, r2 = Vector<float>.Zero;
            Vector<float> r3 = Vector<float>.Zero, r4 = Vector<float>.Zero, r5 = Vector<float>.Zero;
            ref float ap = ref a;
            ref float bp = ref Unsafe.Add(ref b, j);
            for (int p = 0; p < kc; p++)
            {
                Vector<float> bv = Vector.LoadUnsafe(ref bp);
                r0 = Vector.MultiplyAddEstimate(new Vector<float>(ap), bv, r0);
                r1 = Vector.MultiplyAddEstimate(new Vector<float>(Unsafe.Add(ref ap, 1)), bv, r1);
                r2 = Vector.MultiplyAddEstimate(new Vector<float>(Unsafe.Add(ref ap, 2)), bv, r2);
                r3 = Vector.MultiplyAddEstimate(new Vector<float>(Unsafe.Add(ref ap, 3)), bv, r3);
                r4 = Vector.MultiplyAddEstimate(new Vector<float>(Unsafe.Add(ref ap, 4)), bv, r4);
                r5 = Vector.MultiplyAddEstimate(new Vector<float>(Unsafe.Add(ref ap, 5)), bv, r5);
                ap = ref Unsafe.Add(ref ap, Mr);
                bp = ref Unsafe.Add(ref bp, GramNr);
            }

            ref double cj = ref Unsafe.Add(ref c, j);
            AddWidenedPortable(ref cj, r0);
            AddWidenedPortable(ref Unsafe.Add(ref cj, ldc), r1);
            AddWidenedPortable(ref Unsafe.Add(ref cj, 2 * ldc), r2);
            AddWidenedPortable(ref Unsafe.Add(ref cj, 3 * ldc), r3);
            AddWidenedPortable(ref Unsafe.Add(ref cj, 4 * ldc), r4);
            AddWidenedPortable(ref Unsafe.Add(ref cj, 5 * ldc), r5);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddWidenedPortable(ref double c, Vector<float> sum)
    {
        Vector.Widen(sum, out Vector<double> low, out Vector<double> high);
        (Vector.LoadUnsafe(ref c) + low).StoreUnsafe(ref c);
        ref double upper = ref Unsafe.Add(ref c, Vector<double>.Count);
        (Vector.LoadUnsafe(ref upper) + high).StoreUnsafe(ref upper);
    }

    private static void GramScalar(int kc, ref float a, ref float b, ref double c, int ldc)
    {
        Span<float> sums = stackalloc float[Mr * GramNr];
        sums.Clear();
        for (int p = 0; p < kc; p++)
        {
            for (int i = 0; i < Mr; i++)
            {
                float ai = Unsafe.Add(ref a, p * Mr + i);
                for (int j = 0; j < GramNr; j++)
                {
                    sums[i * GramNr + j] += ai * Unsafe.Add(ref b, p * GramNr + j);
                }
            }
        }

        for (int i = 0; i < Mr; i++)
        {
            ref double row = ref Unsafe.Add(ref c, i * ldc);
            for (int j = 0; j < GramNr; j++)
            {
                Unsafe.Add(ref row, j) += sums[i * GramNr + j];
            }
        }
    }
}
