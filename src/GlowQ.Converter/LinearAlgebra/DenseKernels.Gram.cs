using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace GlowQ.Converter.LinearAlgebra;

public static partial class DenseKernels
{
    /// <summary>Side of one task's square of the Gram matrix: its fp64 sums (288 KiB) stay in L2 across all token blocks.</summary>
    internal const int GramTile = 192;

    /// <summary>Tokens summed in fp32 before the sum is added to the fp64 total.</summary>
    internal const int GramTokens = 256;

    /// <summary>
    /// lowerSum[d×d] += XᵀX over <paramref name="tokens"/> rows of x[tokens×d], on and below the diagonal only (the strict
    /// upper triangle is not touched). Products and sums over blocks of at most 256 tokens are fp32; each block's sums are
    /// added to the fp64 array, so the rounding error does not grow with the number of tokens.
    /// </summary>
    public static void AccumulateGram(float[] x, int tokens, int d, double[] lowerSum) =>
        AccumulateGram(MicroKernels.Default, x, tokens, d, lowerSum);

    internal static void AccumulateGram(KernelPath path, float[] x, int tokens, int d, double[] lowerSum)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(lowerSum);
        RequireNonNegative(tokens, d, 0);
        RequireLength(x, (long)tokens * d, nameof(x));
        RequireLength(lowerSum, (long)d * d, nameof(lowerSum));
        if (tokens == 0 || d == 0)
        {
            return;
        }

        // Each task owns one tile of the lower triangle and runs every token block through it, so its fp64 sums are
        // read and written from cache rather than memory once per block.
        int tiles = CeilDiv(d, GramTile);
        RunTiles(tiles * (tiles + 1) / 2, (long)tokens * d * d / 2, (t, scratch) =>
        {
            (int ti, int tj) = LowerTriangleCell(t);
            int i0 = ti * GramTile, j0 = tj * GramTile;
            int rows = Math.Min(GramTile, d - i0), columns = Math.Min(GramTile, d - j0);
            for (int t0 = 0; t0 < tokens; t0 += GramTokens)
            {
                int block = Math.Min(GramTokens, tokens - t0);
                PackGramPanels(x, d, t0, block, i0, rows, MicroKernels.Mr, scratch.GramA);
                PackGramPanels(x, d, t0, block, j0, columns, MicroKernels.GramNr, scratch.GramB);
                GramTileKernel(path, block, i0, rows, j0, columns, scratch.GramA, scratch.GramB, lowerSum, d, scratch.Edge);
            }
        });
    }

    private static void GramTileKernel(KernelPath path, int block, int i0, int rows, int j0, int columns,
        float[] packedA, float[] packedB, double[] sum, int d, double[] edge)
    {
        const int mr = MicroKernels.Mr, nr = MicroKernels.GramNr;
        ref float aBase = ref MemoryMarshal.GetArrayDataReference(packedA);
        ref float bBase = ref MemoryMarshal.GetArrayDataReference(packedB);
        ref double sumBase = ref MemoryMarshal.GetArrayDataReference(sum);
        ref double edgeBase = ref MemoryMarshal.GetArrayDataReference(edge);
        for (int jr = 0; jr < columns; jr += nr)
        {
            int width = Math.Min(nr, columns - jr), col = j0 + jr;
            ref float bPanel = ref Unsafe.Add(ref bBase, jr * block);
            for (int ir = 0; ir < rows; ir += mr)
            {
                int height = Math.Min(mr, rows - ir), row = i0 + ir;
                if (col > row + height - 1)
                {
                    continue; // wholly above the diagonal
                }

                ref float aPanel = ref Unsafe.Add(ref aBase, ir * block);
                if (height == mr && width == nr && col + nr - 1 <= row)
                {
                    MicroKernels.RunGram(path, block, ref aPanel, ref bPanel, ref Unsafe.Add(ref sumBase, row * d + col), d);
                    continue;
                }

                // Straddles the diagonal or the edge: sum into a cleared buffer, keep the part on or below the diagonal.
                Array.Clear(edge);
                MicroKernels.RunGram(path, block, ref aPanel, ref bPanel, ref edgeBase, nr);
                for (int i = 0; i < height; i++)
                {
                    int last = Math.Min(width - 1, row + i - col);
                    for (int j = 0; j <= last; j++)
                    {
                        sum[(row + i) * d + col + j] += edge[i * nr + j];
                    }
                }
            }
        }
    }

    /// <summary>
    /// Packs columns c0..c0+count of token rows t0..t0+block of x into micro-panels of <paramref name="width"/> columns,
    /// token-major, padding the last panel with zeros.
    /// </summary>
    private static void PackGramPanels(float[] x, int d, int t0, int block, int c0, int count, int width, float[] packed)
    {
        ref float src = ref MemoryMarshal.GetArrayDataReference(x);
        ref float dst = ref MemoryMarshal.GetArrayDataReference(packed);
        for (int jr = 0; jr < count; jr += width)
        {
            int columns = Math.Min(width, count - jr);
            ref float panel = ref Unsafe.Add(ref dst, jr * block);
            if (columns == width)
            {
                // Whole panels are one fixed-size copy per token, which the JIT unrolls into vector moves.
                ref byte to = ref Unsafe.As<float, byte>(ref panel);
                ref byte from = ref Unsafe.As<float, byte>(ref Unsafe.Add(ref src, t0 * d + c0 + jr));
                int stride = d * sizeof(float);
                if (width == MicroKernels.GramNr)
                {
                    for (int p = 0; p < block; p++)
                    {
                        Unsafe.CopyBlockUnaligned(ref Unsafe.Add(ref to, p * MicroKernels.GramNr * sizeof(float)), ref Unsafe.Add(ref from, p * stride), MicroKernels.GramNr * sizeof(float));
                    }

                    continue;
                }

                if (width == MicroKernels.Mr)
                {
                    for (int p = 0; p < block; p++)
                    {
                        Unsafe.CopyBlockUnaligned(ref Unsafe.Add(ref to, p * MicroKernels.Mr * sizeof(float)), ref Unsafe.Add(ref from, p * stride), MicroKernels.Mr * sizeof(float));
                    }

                    continue;
                }
            }

            for (int p = 0; p < block; p++)
            {
                ref float from = ref Unsafe.Add(ref src, (t0 + p) * d + c0 + jr);
                ref float to = ref Unsafe.Add(ref panel, p * width);
                for (int j = 0; j < columns; j++)
                {
                    Unsafe.Add(ref to, j) = Unsafe.Add(ref from, j);
                }

                for (int j = columns; j < width; j++)
                {
                    Unsafe.Add(ref to, j) = 0;
                }
            }
        }
    }
}
