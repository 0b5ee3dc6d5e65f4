using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace GlowQ.Converter.LinearAlgebra;

/// <summary>How a kernel reads an operand stored row-major.</summary>
public enum MatrixOp
{
    /// <summary>The operand as stored.</summary>
    None,

    /// <summary>The transpose of the stored operand.</summary>
    Transpose,
}

/// <summary>
/// Dense fp64 kernels on row-major arrays for the converter's large products: a packed, register-tiled GEMM
/// (Goto/BLIS blocking) split over threads by output tile, and the triangular routines built on it.
/// Results are reproducible run to run: the tiling, and so the order of every sum, follows from the shapes and the
/// core count, never from which thread gets which tile.
/// </summary>
public static partial class DenseKernels
{
    /// <summary>Rows of op(A) packed at once: 144 × 256 doubles (288 KiB) stay in a 1 MiB L2 across a whole B block.</summary>
    internal const int BlockRows = 144;

    /// <summary>Depth of one packed block: a 256 × 8 B micro-panel (16 KiB) stays in L1 while A's micro-panels stream past it.</summary>
    internal const int BlockDepth = 256;

    /// <summary>Columns of op(B) packed at once (1 MiB), reused by every row block of A.</summary>
    internal const int BlockColumns = 512;

    /// <summary>Below this many multiply-adds the work stays on the calling thread: dispatch would cost more than it saves.</summary>
    internal const long ParallelThreshold = 1L << 20;

    private const int TileRows = 2 * BlockRows;
    private const int TileColumns = BlockColumns;

    /// <summary>C[m×n] = alpha·op(A)·op(B) + beta·C on row-major arrays; beta = 0 ignores C's old contents (even NaN).</summary>
    /// <remarks>C must not overlap A or B.</remarks>
    public static void Gemm(MatrixOp opA, MatrixOp opB, int m, int n, int k, double alpha,
        double[] a, int aOffset, int lda, double[] b, int bOffset, int ldb, double beta, double[] c, int cOffset, int ldc) =>
        Gemm(MicroKernels.Default, opA, opB, m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc);

    /// <summary>C = A·B for dense row-major A[m×k] and B[k×n].</summary>
    public static double[] Multiply(double[] a, double[] b, int m, int k, int n)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        RequireNonNegative(m, k, n);
        RequireLength(a, (long)m * k, nameof(a));
        RequireLength(b, (long)k * n, nameof(b));
        var c = new double[checked(m * n)];
        Gemm(MatrixOp.None, MatrixOp.None, m, n, k, 1, a, 0, Math.Max(1, k), b, 0, Math.Max(1, n), 0, c, 0, Math.Max(1, n));
        return c;
    }

    internal static void Gemm(KernelPath path, MatrixOp opA, MatrixOp opB, int m, int n, int k, double alpha,
        double[] a, int aOffset, int lda, double[] b, int bOffset, int ldb, double beta, double[] c, int cOffset, int ldc)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(c);
        RequireNonNegative(m, n, k);
        RequireOperand(c, cOffset, ldc, m, n, nameof(c));
        if (m == 0 || n == 0)
        {
            return;
        }

        if (k == 0 || alpha == 0)
        {
            Scale(beta, c, cOffset, ldc, m, n);
            return;
        }

        RequireOperand(a, aOffset, lda, opA == MatrixOp.None ? m : k, opA == MatrixOp.None ? k : m, nameof(a));
        RequireOperand(b, bOffset, ldb, opB == MatrixOp.None ? k : n, opB == MatrixOp.None ? n : k, nameof(b));

        (int tileRows, int tileColumns) = ChooseTiles(m, n);
        int rowTiles = CeilDiv(m, tileRows), columnTiles = CeilDiv(n, tileColumns);
        RunTiles(rowTiles * columnTiles, (long)m * n * k, (tile, scratch) =>
        {
            int i0 = tile / columnTiles * tileRows, j0 = tile % columnTiles * tileColumns;
            GemmSerial(path, opA, opB, Math.Min(tileRows, m - i0), Math.Min(tileColumns, n - j0), k, alpha,
                a, aOffset + OffsetOf(opA, i0, 0, lda), lda, b, bOffset + OffsetOf(opB, 0, j0, ldb), ldb,
                beta, c, cOffset + i0 * ldc + j0, ldc, scratch);
        });
    }

    /// <summary>The GEMM on the calling thread. Callers have validated the operands.</summary>
    internal static void GemmSerial(KernelPath path, MatrixOp opA, MatrixOp opB, int m, int n, int k, double alpha,
        double[] a, int aOffset, int lda, double[] b, int bOffset, int ldb, double beta, double[] c, int cOffset, int ldc,
        KernelScratch scratch)
    {
        if (m == 0 || n == 0)
        {
            return;
        }

        if (k == 0 || alpha == 0)
        {
            Scale(beta, c, cOffset, ldc, m, n);
            return;
        }

        double[] packedA = scratch.PackedA, packedB = scratch.PackedB;
        for (int jc = 0; jc < n; jc += BlockColumns)
        {
            int nc = Math.Min(BlockColumns, n - jc);
            for (int pc = 0; pc < k; pc += BlockDepth)
            {
                int kc = Math.Min(BlockDepth, k - pc);
                PackB(opB, b, bOffset + OffsetOf(opB, pc, jc, ldb), ldb, kc, nc, packedB);

                // Later depth blocks add to what the first one wrote.
                double blockBeta = pc == 0 ? beta : 1;
                for (int ic = 0; ic < m; ic += BlockRows)
                {
                    int mc = Math.Min(BlockRows, m - ic);
                    PackA(opA, a, aOffset + OffsetOf(opA, ic, pc, lda), lda, mc, kc, packedA);
                    MacroKernel(path, mc, nc, kc, alpha, blockBeta, packedA, packedB, c, cOffset + ic * ldc + jc, ldc, scratch.Edge);
                }
            }
        }
    }

    private static void MacroKernel(KernelPath path, int mc, int nc, int kc, double alpha, double beta,
        double[] packedA, double[] packedB, double[] c, int cOffset, int ldc, double[] edge)
    {
        const int mr = MicroKernels.Mr, nr = MicroKernels.Nr;
        ref double aBase = ref MemoryMarshal.GetArrayDataReference(packedA);
        ref double bBase = ref MemoryMarshal.GetArrayDataReference(packedB);
        ref double cBase = ref MemoryMarshal.GetArrayDataReference(c);
        ref double edgeBase = ref MemoryMarshal.GetArrayDataReference(edge);
        for (int jr = 0; jr < nc; jr += nr)
        {
            int columns = Math.Min(nr, nc - jr);
            ref double bPanel = ref Unsafe.Add(ref bBase, jr * kc);
            for (int ir = 0; ir < mc; ir += mr)
            {
                int rows = Math.Min(mr, mc - ir);
                ref double aPanel = ref Unsafe.Add(ref aBase, ir * kc);
                int at = cOffset + ir * ldc + jr;
                if (rows == mr && columns == nr)
                {
                    MicroKernels.Run(path, kc, ref aPanel, ref bPanel, alpha, beta, ref Unsafe.Add(ref cBase, at), ldc);
                    continue;
                }

                // A ragged tile is computed whole (packing padded it with zeros) and only its real part merged.
                MicroKernels.Run(path, kc, ref aPanel, ref bPanel, alpha, 0, ref edgeBase, nr);
                for (int i = 0; i < rows; i++)
                {
                    for (int j = 0; j < columns; j++)
                    {
                        ref double cij = ref c[at + i * ldc + j];
                        double product = edge[i * nr + j];
                        cij = beta == 0 ? product : Math.FusedMultiplyAdd(beta, cij, product);
                    }
                }
            }
        }
    }

    /// <summary>Packs op(A)[mc × kc] into micro-panels of Mr rows, each stored depth-major, padding the last with zeros.</summary>
    private static void PackA(MatrixOp op, double[] a, int offset, int lda, int mc, int kc, double[] packed)
    {
        const int mr = MicroKernels.Mr;
        ref double src = ref MemoryMarshal.GetArrayDataReference(a);
        ref double dst = ref MemoryMarshal.GetArrayDataReference(packed);
        for (int ir = 0; ir < mc; ir += mr)
        {
            int rows = Math.Min(mr, mc - ir);
            ref double panel = ref Unsafe.Add(ref dst, ir * kc);
            if (op == MatrixOp.Transpose && rows == mr)
            {
                // op(A)'s rows are a's columns: each depth step is Mr adjacent elements, one fixed-size copy.
                for (int p = 0; p < kc; p++)
                {
                    CopyDoubles(ref Unsafe.Add(ref panel, p * mr), ref Unsafe.Add(ref src, offset + p * lda + ir), mr);
                }
            }
            else if (op == MatrixOp.Transpose)
            {
                for (int p = 0; p < kc; p++)
                {
                    ref double from = ref Unsafe.Add(ref src, offset + p * lda + ir);
                    ref double to = ref Unsafe.Add(ref panel, p * mr);
                    for (int i = 0; i < rows; i++)
                    {
                        Unsafe.Add(ref to, i) = Unsafe.Add(ref from, i);
                    }

                    for (int i = rows; i < mr; i++)
                    {
                        Unsafe.Add(ref to, i) = 0;
                    }
                }
            }
            else if (rows == mr)
            {
                ref double r0 = ref Unsafe.Add(ref src, offset + ir * lda);
                ref double r1 = ref Unsafe.Add(ref r0, lda);
                ref double r2 = ref Unsafe.Add(ref r1, lda);
                ref double r3 = ref Unsafe.Add(ref r2, lda);
                ref double r4 = ref Unsafe.Add(ref r3, lda);
                ref double r5 = ref Unsafe.Add(ref r4, lda);
                for (int p = 0; p < kc; p++)
                {
                    ref double to = ref Unsafe.Add(ref panel, p * mr);
                    to = Unsafe.Add(ref r0, p);
                    Unsafe.Add(ref to, 1) = Unsafe.Add(ref r1, p);
                    Unsafe.Add(ref to, 2) = Unsafe.Add(ref r2, p);
                    Unsafe.Add(ref to, 3) = Unsafe.Add(ref r3, p);
                    Unsafe.Add(ref to, 4) = Unsafe.Add(ref r4, p);
                    Unsafe.Add(ref to, 5) = Unsafe.Add(ref r5, p);
                }
            }
            else
            {
                for (int p = 0; p < kc; p++)
                {
                    ref double to = ref Unsafe.Add(ref panel, p * mr);
                    for (int i = 0; i < mr; i++)
                    {
                        Unsafe.Add(ref to, i) = i < rows ? Unsafe.Add(ref src, offset + (ir + i) * lda + p) : 0;
                    }
                }
            }
        }
    }

    /// <summary>Packs op(B)[kc × nc] into micro-panels of Nr columns, each stored depth-major, padding the last with zeros.</summary>
    private static void PackB(MatrixOp op, double[] b, int offset, int ldb, int kc, int nc, double[] packed)
    {
        const int nr = MicroKernels.Nr;
        ref double src = ref MemoryMarshal.GetArrayDataReference(b);
        ref double dst = ref MemoryMarshal.GetArrayDataReference(packed);
        for (int jr = 0; jr < nc; jr += nr)
        {
            int columns = Math.Min(nr, nc - jr);
            ref double panel = ref Unsafe.Add(ref dst, jr * kc);
            if (op == MatrixOp.None && columns == nr)
            {
                for (int p = 0; p < kc; p++)
                {
                    CopyDoubles(ref Unsafe.Add(ref panel, p * nr), ref Unsafe.Add(ref src, offset + p * ldb + jr), nr);
                }
            }
            else if (op == MatrixOp.None)
            {
                for (int p = 0; p < kc; p++)
                {
                    ref double from = ref Unsafe.Add(ref src, offset + p * ldb + jr);
                    ref double to = ref Unsafe.Add(ref panel, p * nr);
                    for (int j = 0; j < columns; j++)
                    {
                        Unsafe.Add(ref to, j) = Unsafe.Add(ref from, j);
                    }

                    for (int j = columns; j < nr; j++)
                    {
                        Unsafe.Add(ref to, j) = 0;
                    }
                }
            }
            else
            {
                // op(B)'s columns are b's rows: walk `columns` rows of b side by side.
                for (int j = 0; j < nr; j++)
                {
                    ref double to = ref Unsafe.Add(ref panel, j);
                    if (j >= columns)
                    {
                        for (int p = 0; p < kc; p++)
                        {
                            Unsafe.Add(ref to, p * nr) = 0;
                        }

                        continue;
                    }

                    ref double from = ref Unsafe.Add(ref src, offset + (jr + j) * ldb);
                    for (int p = 0; p < kc; p++)
                    {
                        Unsafe.Add(ref to, p * nr) = Unsafe.Add(ref from, p);
                    }
                }
            }
        }
    }

    /// <summary>Copies a register tile's row: with a constant count at the call site the JIT unrolls it into vector moves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyDoubles(ref double destination, ref double source, int count) =>
        Unsafe.CopyBlockUnaligned(ref Unsafe.As<double, byte>(ref destination), ref Unsafe.As<double, byte>(ref source), (uint)(count * sizeof(double)));

    /// <summary>
    /// Output tiles for the threads: big enough that re-packing per tile costs under 1% (each tile packs its own
    /// operands, so no thread waits for another), small enough that every thread gets several.
    /// </summary>
    private static (int Rows, int Columns) ChooseTiles(int m, int n)
    {
        int rows = EvenTile(m, TileRows, MicroKernels.Mr), columns = EvenTile(n, TileColumns, MicroKernels.Nr);
        int wanted = 4 * Environment.ProcessorCount;
        while (CeilDiv(m, rows) * CeilDiv(n, columns) < wanted)
        {
            if (rows >= columns && rows > 8 * MicroKernels.Mr)
            {
                rows = RoundUp(rows / 2, MicroKernels.Mr);
            }
            else if (columns > 16 * MicroKernels.Nr)
            {
                columns = RoundUp(columns / 2, MicroKernels.Nr);
            }
            else if (rows > 8 * MicroKernels.Mr)
            {
                rows = RoundUp(rows / 2, MicroKernels.Mr);
            }
            else
            {
                break;
            }
        }

        return (rows, columns);
    }

    /// <summary>Runs <paramref name="body"/> for every tile, over the thread pool when the work is worth it.</summary>
    internal static void RunTiles(int count, long multiplyAdds, Action<int, KernelScratch> body)
    {
        if (count <= 1 || multiplyAdds < ParallelThreshold || Environment.ProcessorCount == 1)
        {
            KernelScratch scratch = KernelScratch.Rent();
            try
            {
                for (int i = 0; i < count; i++)
                {
                    body(i, scratch);
                }
            }
            finally
            {
                KernelScratch.Return(scratch);
            }

            return;
        }

        Parallel.For(0, count, KernelScratch.Rent, (i, _, scratch) =>
        {
            body(i, scratch);
            return scratch;
        }, KernelScratch.Return);
    }

    private static void Scale(double beta, double[] c, int offset, int ldc, int m, int n)
    {
        for (int i = 0; i < m; i++)
        {
            Span<double> row = c.AsSpan(offset + i * ldc, n);
            if (beta == 0)
            {
                row.Clear();
            }
            else if (beta != 1)
            {
                TensorPrimitives.Multiply(row, beta, row);
            }
        }
    }

    /// <summary>
    /// The tile size that cuts <paramref name="extent"/> into as few pieces of at most <paramref name="maxTile"/> as
    /// possible, all nearly equal (rounded up to a multiple of a register tile): no sliver of a tile at the end.
    /// </summary>
    internal static int EvenTile(int extent, int maxTile, int multiple) =>
        Math.Min(extent, RoundUp(CeilDiv(extent, CeilDiv(extent, maxTile)), multiple));

    internal static int OffsetOf(MatrixOp op, int row, int column, int stride) =>
        op == MatrixOp.None ? row * stride + column : column * stride + row;

    internal static int CeilDiv(int value, int divisor) => (value + divisor - 1) / divisor;

    private static int RoundUp(int value, int multiple) => CeilDiv(value, multiple) * multiple;

    private static void RequireNonNegative(int first, int second, int third)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(first);
        ArgumentOutOfRangeException.ThrowIfNegative(second);
        ArgumentOutOfRangeException.ThrowIfNegative(third);
    }

    private static void RequireLength<T>(T[] array, long length, string name)
    {
        if (array.Length < length)
        {
            throw new ArgumentException($"{name} has {array.Length} elements, needs {length}", name);
        }
    }

    /// <summary>A stored rows × columns operand with the given first element and row stride must lie inside the array.</summary>
    private static void RequireOperand(double[] array, int offset, int stride, int rows, int columns, string name)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        if (rows == 0 || columns == 0)
        {
            return;
        }

        if (stride < columns)
        {
            throw new ArgumentException($"row stride {stride} of {name} is less than its {columns} columns", name);
        }

        long last = offset + ((long)(rows - 1) * stride) + columns;
        if (last > array.Length)
        {
            throw new ArgumentException($"{name} ({rows}×{columns}, offset {offset}, stride {stride}) runs past its {array.Length} elements", name);
        }
    }
}
