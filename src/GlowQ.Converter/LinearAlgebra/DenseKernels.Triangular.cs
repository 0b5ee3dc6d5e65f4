using System.Buffers;
using System.Globalization;
using System.Numerics.Tensors;

namespace GlowQ.Converter.LinearAlgebra;

public static partial class DenseKernels
{
    /// <summary>
    /// Cholesky panel width: the trailing update is a GEMM of depth 256 (one full packed block), and the serial
    /// diagonal-block factorisation between panels stays short.
    /// </summary>
    private const int CholeskyBlock = BlockDepth;

    /// <summary>Width of the diagonal blocks the solves treat element by element; everything off them is GEMM.</summary>
    private const int SolveBlock = 64;

    /// <summary>Columns of the result one MultiplyLower task computes.</summary>
    private const int MultiplyLowerBlock = 256;

    /// <summary>Lower-triangle tiles of the Cholesky trailing update (a multiple of both register-tile sides).</summary>
    private const int UpdateTile = 288;

    /// <summary>
    /// In-place Cholesky of the symmetric positive-definite a[n×n], reading only its lower triangle. On return the lower
    /// triangle holds L with L·Lᵀ = A and the strict upper triangle is zero.
    /// </summary>
    /// <exception cref="ArithmeticException">A is not positive definite (a pivot is ≤ 0 or NaN); names the pivot.</exception>
    public static void CholeskyLower(double[] a, int n)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        RequireLength(a, (long)n * n, nameof(a));

        // Right-looking: factor a diagonal block, solve the panel below it, then subtract the panel's outer product
        // from the trailing matrix. Almost all the work is that last update, a GEMM.
        for (int j0 = 0; j0 < n; j0 += CholeskyBlock)
        {
            int jb = Math.Min(CholeskyBlock, n - j0);
            FactorDiagonalBlock(a, n, j0, jb);
            int below = n - j0 - jb;
            if (below == 0)
            {
                break;
            }

            SolveRightRows(a, j0 * n + j0, n, jb, MatrixOp.Transpose, a, (j0 + jb) * n + j0, n, below);
            SubtractLowerOuterProduct(a, n, j0 + jb, below, j0, jb);
        }

        ClearStrictUpper(a, n);
    }

    /// <summary>Solves op(L)·X = B in place for lower-triangular L[n×n]; B is n×nrhs row-major.</summary>
    public static void SolveLower(double[] l, int n, MatrixOp opL, double[] b, int nrhs)
    {
        ArgumentNullException.ThrowIfNull(l);
        ArgumentNullException.ThrowIfNull(b);
        RequireNonNegative(n, nrhs, 0);
        RequireLength(l, (long)n * n, nameof(l));
        RequireLength(b, (long)n * nrhs, nameof(b));
        if (n == 0 || nrhs == 0)
        {
            return;
        }

        // Columns of X are independent: each task solves a slab of them through the whole triangle.
        int slab = SlabWidth(nrhs);
        RunTiles(CeilDiv(nrhs, slab), (long)n * n / 2 * nrhs, (t, scratch) =>
        {
            int c0 = t * slab;
            SolveLowerColumns(l, 0, n, n, opL, b, c0, nrhs, Math.Min(slab, nrhs - c0), scratch);
        });
    }

    /// <summary>Solves X·op(L) = B in place for lower-triangular L[n×n]; B is m×n row-major.</summary>
    public static void SolveLowerRight(double[] l, int n, MatrixOp opL, double[] b, int m)
    {
        ArgumentNullException.ThrowIfNull(l);
        ArgumentNullException.ThrowIfNull(b);
        RequireNonNegative(n, m, 0);
        RequireLength(l, (long)n * n, nameof(l));
        RequireLength(b, (long)m * n, nameof(b));
        if (n == 0 || m == 0)
        {
            return;
        }

        SolveRightRows(l, 0, n, n, opL, b, 0, n, m);
    }

    /// <summary>
    /// Result[m×n] = B[m×n]·L for lower-triangular L[n×n]. L's strict upper triangle is never read (taken as zero),
    /// which halves the work of a dense product.
    /// </summary>
    public static double[] MultiplyLower(double[] b, int m, int n, double[] l)
    {
        RequireNonNegative(m, n, 0);
        var result = new double[checked(m * n)];
        MultiplyLower(b, m, n, l, result);
        return result;
    }

    /// <summary><see cref="MultiplyLower(double[], int, int, double[])"/> into the first m·n elements of <paramref name="result"/>.</summary>
    internal static void MultiplyLower(double[] b, int m, int n, double[] l, double[] result)
    {
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(l);
        ArgumentNullException.ThrowIfNull(result);
        RequireNonNegative(m, n, 0);
        RequireLength(b, (long)m * n, nameof(b));
        RequireLength(l, (long)n * n, nameof(l));
        RequireLength(result, (long)m * n, nameof(result));
        if (m == 0 || n == 0)
        {
            return;
        }

        // Result[:, J] = B[:, J]·tril(L[J, J]) + B[:, right of J]·L[below J, J]. The diagonal blocks are copied with
        // their upper part zeroed so both terms are plain GEMMs.
        const int width = MultiplyLowerBlock;
        double[] diagonal = ArrayPool<double>.Shared.Rent(checked(n * width));
        try
        {
            for (int i = 0; i < n; i++)
            {
                int j0 = i / width * width;
                Span<double> row = diagonal.AsSpan(i * width, width);
                l.AsSpan(i * n + j0, i - j0 + 1).CopyTo(row);
                row[(i - j0 + 1)..].Clear();
            }

            int columnBlocks = CeilDiv(n, width);
            int rowBlock = EvenTile(m, TileRows, MicroKernels.Mr);
            int rowBlocks = CeilDiv(m, rowBlock);

            // Blocks on the left have the most below them: hand them out first so the last tasks are short.
            RunTiles(columnBlocks * rowBlocks, (long)m * n * n / 2, (t, scratch) =>
            {
                int j0 = t / rowBlocks * width, i0 = t % rowBlocks * rowBlock;
                int columns = Math.Min(width, n - j0), rows = Math.Min(rowBlock, m - i0), j1 = j0 + columns;
                GemmSerial(MicroKernels.Default, MatrixOp.None, MatrixOp.None, rows, columns, columns, 1,
                    b, i0 * n + j0, n, diagonal, j0 * width, width, 0, result, i0 * n + j0, n, scratch);
                GemmSerial(MicroKernels.Default, MatrixOp.None, MatrixOp.None, rows, columns, n - j1, 1,
                    b, i0 * n + j1, n, l, j1 * n + j0, n, 1, result, i0 * n + j0, n, scratch);
            });
        }
        finally
        {
            ArrayPool<double>.Shared.Return(diagonal);
        }
    }

    /// <summary>In-place inverse of a lower-triangular L[n×n]; the strict upper triangle is set to zero.</summary>
    /// <exception cref="ArithmeticException">L has a zero on its diagonal.</exception>
    public static void InvertLower(double[] l, int n)
    {
        ArgumentNullException.ThrowIfNull(l);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        RequireLength(l, (long)n * n, nameof(l));
        ClearStrictUpper(l, n);
        for (int i = 0; i < n; i++)
        {
            if (l[i * n + i] == 0)
            {
                throw new ArithmeticException(string.Create(CultureInfo.InvariantCulture, $"lower-triangular matrix is singular: diagonal element {i} is 0"));
            }
        }

        // [L11 0; L21 L22]⁻¹ = [L11⁻¹ 0; −L22⁻¹·L21·L11⁻¹ L22⁻¹]. Going up from the bottom-right block, L22⁻¹ is already
        // in place when block column j is reached, so each step is one GEMM and one right solve.
        const int width = CholeskyBlock;
        double[]? panel = null;
        int last = (n - 1) / width * width;
        for (int j0 = last; j0 >= 0; j0 -= width)
        {
            int jb = Math.Min(width, n - j0), below = n - j0 - jb;
            if (below > 0)
            {
                panel ??= new double[checked((n - jb) * width)];
                double[] product = panel;
                int start = j0 + jb;
                int rowBlock = EvenTile(below, TileRows, MicroKernels.Mr);
                RunTiles(CeilDiv(below, rowBlock), (long)below * below / 2 * jb, (t, scratch) =>
                {
                    int r0 = t * rowBlock, rows = Math.Min(rowBlock, below - r0);

                    // Row block of L22⁻¹·L21: L22⁻¹ is lower-triangular, so only its first r0 + rows columns contribute.
                    GemmSerial(MicroKernels.Default, MatrixOp.None, MatrixOp.None, rows, jb, r0 + rows, 1,
                        l, (start + r0) * n + start, n, l, start * n + j0, n, 0, product, r0 * jb, jb, scratch);
                    SolveRightRowsSerial(l, j0 * n + j0, n, jb, MatrixOp.None, product, r0 * jb, jb, rows, scratch);
                });

                // Written back only now: every task above read the old L21.
                for (int r = 0; r < below; r++)
                {
                    TensorPrimitives.Negate(product.AsSpan(r * jb, jb), l.AsSpan((start + r) * n + j0, jb));
                }
            }

            InvertDiagonalBlock(l, n, j0, jb);
        }
    }

    /// <summary>
    /// Unblocked Cholesky (row by row, dot-product form) of the diagonal block at (j0, j0); earlier panels' contributions
    /// were already subtracted by the trailing updates.
    /// </summary>
    private static void FactorDiagonalBlock(double[] a, int n, int j0, int jb)
    {
        for (int i = j0; i < j0 + jb; i++)
        {
            ReadOnlySpan<double> rowI = a.AsSpan(i * n + j0, i - j0);
            for (int j = j0; j < i; j++)
            {
                double dot = TensorPrimitives.Dot(rowI[..(j - j0)], a.AsSpan(j * n + j0, j - j0));
                a[i * n + j] = (a[i * n + j] - dot) / a[j * n + j];
            }

            double pivot = a[i * n + i] - TensorPrimitives.Dot(rowI, rowI);
            if (!(pivot > 0))
            {
                throw new ArithmeticException(string.Create(CultureInfo.InvariantCulture,
                    $"matrix is not positive definite: pivot {i} is {pivot:R}"));
            }

            a[i * n + i] = Math.Sqrt(pivot);
        }
    }

    /// <summary>a[start.., start..] −= P·Pᵀ on and below the diagonal, P = a[start.., kColumn..kColumn+kb].</summary>
    private static void SubtractLowerOuterProduct(double[] a, int n, int start, int size, int kColumn, int kb)
    {
        int tiles = CeilDiv(size, UpdateTile);
        RunTiles(tiles * (tiles + 1) / 2, (long)size * size / 2 * kb, (t, scratch) =>
        {
            (int ti, int tj) = LowerTriangleCell(t);
            int i0 = ti * UpdateTile, j0 = tj * UpdateTile;

            // Diagonal tiles are computed whole; their upper half lands in A's strict upper triangle, which is never
            // read and is cleared at the end.
            GemmSerial(MicroKernels.Default, MatrixOp.None, MatrixOp.Transpose, Math.Min(UpdateTile, size - i0), Math.Min(UpdateTile, size - j0), kb, -1,
                a, (start + i0) * n + kColumn, n, a, (start + j0) * n + kColumn, n, 1, a, (start + i0) * n + start + j0, n, scratch);
        });
    }

    /// <summary>Solves X·op(L) = B for the rows of B, which are independent: row slabs go to the threads.</summary>
    private static void SolveRightRows(double[] l, int lOffset, int ldl, int n, MatrixOp op, double[] b, int bOffset, int ldb, int m)
    {
        int slab = SlabHeight(m);
        RunTiles(CeilDiv(m, slab), (long)m * n / 2 * n, (t, scratch) =>
        {
            int r0 = t * slab;
            SolveRightRowsSerial(l, lOffset, ldl, n, op, b, bOffset + r0 * ldb, ldb, Math.Min(slab, m - r0), scratch);
        });
    }

    /// <summary>
    /// X·op(L) = B for m rows on the calling thread. Blocked by SolveBlock columns: a block's columns are solved
    /// element by element, then their contribution to the remaining columns is removed with one GEMM.
    /// </summary>
    private static void SolveRightRowsSerial(double[] l, int lOffset, int ldl, int n, MatrixOp op, double[] b, int bOffset, int ldb, int m, KernelScratch scratch)
    {
        if (op == MatrixOp.Transpose)
        {
            // X·Lᵀ = B: x_i = (b_i − Σ_{j<i} L[i,j]·x_j) / L[i,i], forward over the columns.
            for (int j0 = 0; j0 < n; j0 += SolveBlock)
            {
                int jb = Math.Min(SolveBlock, n - j0), j1 = j0 + jb;
                for (int r = 0; r < m; r++)
                {
                    Span<double> x = b.AsSpan(bOffset + r * ldb + j0, jb);
                    for (int i = 0; i < jb; i++)
                    {
                        int row = lOffset + (j0 + i) * ldl + j0;
                        x[i] = (x[i] - TensorPrimitives.Dot(l.AsSpan(row, i), x[..i])) / l[row + i];
                    }
                }

                if (j1 < n)
                {
                    GemmSerial(MicroKernels.Default, MatrixOp.None, MatrixOp.Transpose, m, n - j1, jb, -1,
                        b, bOffset + j0, ldb, l, lOffset + j1 * ldl + j0, ldl, 1, b, bOffset + j1, ldb, scratch);
                }
            }
        }
        else
        {
            // X·L = B: x_i = (b_i − Σ_{j>i} x_j·L[j,i]) / L[i,i], backward over the columns.
            for (int j1 = n; j1 > 0; j1 -= SolveBlock)
            {
                int j0 = Math.Max(0, j1 - SolveBlock), jb = j1 - j0;
                for (int r = 0; r < m; r++)
                {
                    Span<double> x = b.AsSpan(bOffset + r * ldb + j0, jb);
                    for (int i = jb - 1; i >= 0; i--)
                    {
                        int row = lOffset + (j0 + i) * ldl + j0;
                        x[i] /= l[row + i];
                        TensorPrimitives.MultiplyAdd(l.AsSpan(row, i), -x[i], x[..i], x[..i]);
                    }
                }

                if (j0 > 0)
                {
                    GemmSerial(MicroKernels.Default, MatrixOp.None, MatrixOp.None, m, j0, jb, -1,
                        b, bOffset + j0, ldb, l, lOffset + j0 * ldl, ldl, 1, b, bOffset, ldb, scratch);
                }
            }
        }
    }

    /// <summary>
    /// op(L)·X = B for the columns c0..c0+width of B on the calling thread: a block of rows is solved row by row, then
    /// removed from the rest with one GEMM.
    /// </summary>
    private static void SolveLowerColumns(double[] l, int lOffset, int ldl, int n, MatrixOp op, double[] b, int bOffset, int ldb, int width, KernelScratch scratch)
    {
        if (op == MatrixOp.None)
        {
            // L·X = B: forward over the rows.
            for (int i0 = 0; i0 < n; i0 += SolveBlock)
            {
                int ib = Math.Min(SolveBlock, n - i0), i1 = i0 + ib;
                for (int i = i0; i < i1; i++)
                {
                    Span<double> xi = b.AsSpan(bOffset + i * ldb, width);
                    for (int k = i0; k < i; k++)
                    {
                        TensorPrimitives.MultiplyAdd(b.AsSpan(bOffset + k * ldb, width), -l[lOffset + i * ldl + k], xi, xi);
                    }

                    TensorPrimitives.Divide(xi, l[lOffset + i * ldl + i], xi);
                }

                if (i1 < n)
                {
                    GemmSerial(MicroKernels.Default, MatrixOp.None, MatrixOp.None, n - i1, width, ib, -1,
                        l, lOffset + i1 * ldl + i0, ldl, b, bOffset + i0 * ldb, ldb, 1, b, bOffset + i1 * ldb, ldb, scratch);
                }
            }
        }
        else
        {
            // Lᵀ·X = B: Lᵀ is upper-triangular, so backward over the rows; row i of L is column i of Lᵀ.
            for (int i1 = n; i1 > 0; i1 -= SolveBlock)
            {
                int i0 = Math.Max(0, i1 - SolveBlock);
                for (int i = i1 - 1; i >= i0; i--)
                {
                    Span<double> xi = b.AsSpan(bOffset + i * ldb, width);
                    TensorPrimitives.Divide(xi, l[lOffset + i * ldl + i], xi);
                    for (int k = i0; k < i; k++)
                    {
                        Span<double> xk = b.AsSpan(bOffset + k * ldb, width);
                        TensorPrimitives.MultiplyAdd(xi, -l[lOffset + i * ldl + k], xk, xk);
                    }
                }

                if (i0 > 0)
                {
                    GemmSerial(MicroKernels.Default, MatrixOp.Transpose, MatrixOp.None, i0, width, i1 - i0, -1,
                        l, lOffset + i0 * ldl, ldl, b, bOffset + i0 * ldb, ldb, 1, b, bOffset, ldb, scratch);
                }
            }
        }
    }

    /// <summary>
    /// Inverts the diagonal block at (j0, j0) in place, row by row: row i of L⁻¹ is −(Σ_{k<i} L[i,k]·(L⁻¹)[k,:]) / L[i,i]
    /// with 1/L[i,i] on the diagonal, and rows above i are already inverted.
    /// </summary>
    private static void InvertDiagonalBlock(double[] l, int n, int j0, int jb)
    {
        Span<double> sum = jb <= 512 ? stackalloc double[jb] : new double[jb];
        for (int i = 0; i < jb; i++)
        {
            int row = (j0 + i) * n + j0;
            Span<double> partial = sum[..i];
            partial.Clear();
            for (int k = 0; k < i; k++)
            {
                Span<double> head = partial[..(k + 1)];
                TensorPrimitives.MultiplyAdd(l.AsSpan((j0 + k) * n + j0, k + 1), l[row + k], head, head);
            }

            double diagonal = l[row + i];
            TensorPrimitives.Divide(partial, -diagonal, l.AsSpan(row, i));
            l[row + i] = 1 / diagonal;
        }
    }

    /// <summary>Copies the strict lower triangle of a[n×n] onto the strict upper one, making it symmetric.</summary>
    internal static void MirrorLowerToUpper(double[] a, int n)
    {
        // By 64 × 64 tiles, so the column-wise writes of a tile stay in L1; tile row t writes only tile column t.
        const int tile = 64;
        int tiles = CeilDiv(n, tile);
        RunTiles(tiles, (long)n * n, (ti, _) =>
        {
            int i0 = ti * tile, i1 = Math.Min(n, i0 + tile);
            for (int j0 = 0; j0 <= i0; j0 += tile)
            {
                for (int i = i0; i < i1; i++)
                {
                    for (int j = j0, j1 = Math.Min(i, j0 + tile); j < j1; j++)
                    {
                        a[j * n + i] = a[i * n + j];
                    }
                }
            }
        });
    }

    private static void ClearStrictUpper(double[] a, int n)
    {
        for (int i = 0; i < n - 1; i++)
        {
            a.AsSpan(i * n + i + 1, n - i - 1).Clear();
        }
    }

    /// <summary>Row and column of the t-th cell of a lower triangle enumerated row by row: (0,0), (1,0), (1,1), (2,0)…</summary>
    internal static (int Row, int Column) LowerTriangleCell(int t)
    {
        int row = (int)((Math.Sqrt(8.0 * t + 1) - 1) / 2);
        while (row * (row + 1) / 2 > t)
        {
            row--;
        }

        while ((row + 1) * (row + 2) / 2 <= t)
        {
            row++;
        }

        return (row, t - row * (row + 1) / 2);
    }

    /// <summary>Rows per task for row-independent work: several tasks per thread, but each a worthwhile GEMM height.</summary>
    private static int SlabHeight(int m) =>
        Math.Max(Math.Min(m, 8 * MicroKernels.Mr), Math.Min(TileRows, RoundUp(CeilDiv(m, 4 * Environment.ProcessorCount), MicroKernels.Mr)));

    private static int SlabWidth(int nrhs) =>
        Math.Max(Math.Min(nrhs, 16 * MicroKernels.Nr), Math.Min(TileColumns, RoundUp(CeilDiv(nrhs, 4 * Environment.ProcessorCount), MicroKernels.Nr)));
}
