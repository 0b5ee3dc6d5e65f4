using GlowQ.Converter.LinearAlgebra;
using GlowQ.Format.Glq;

namespace GlowQ.Converter;

/// <summary>Choices of GPTQ (Frantar et al. 2022).</summary>
/// <param name="Damping">Added to the Hessian's diagonal as a fraction of its mean diagonal (1 % by default).</param>
/// <param name="ActOrder">Quantise columns in order of decreasing input energy. Group parameters are then fixed from the
/// original weights before any update ("static groups"), because the file's groups are contiguous in column order.</param>
/// <param name="BlockSize">Columns whose error updates are applied lazily, as one matrix product, to the columns after them.</param>
public sealed record GptqOptions(double Damping = 0.01, bool ActOrder = false, int BlockSize = 128);

/// <summary>
/// GPTQ in the .glq 4-bit layout: columns are quantised one at a time with the same per-group asymmetric grid as
/// <see cref="RtnQuantizer"/>, and each column's rounding error is spread over the columns not yet quantised so that
/// the layer's output error on the calibration inputs, tr(E H Eᵀ) with H = E[x xᵀ], is minimised greedily. Codes are
/// chosen against the fp16-rounded scale, so GlowQ's correction later fits the error the runtime makes.
/// </summary>
public static class GptqQuantizer
{
    /// <param name="weights">Row-major [rows × cols].</param>
    /// <param name="secondMoment">Row-major symmetric [cols × cols] E[x xᵀ] of the layer's input (not shrunk).</param>
    public static QuantizedMatrix Quantize(ReadOnlySpan<float> weights, int rows, int cols, int groupSize, double[] secondMoment, GptqOptions options)
    {
        if ((long)rows * cols != weights.Length)
        {
            throw new ArgumentException($"weights have {weights.Length} elements, expected {rows}×{cols}");
        }

        if (secondMoment.Length != (long)cols * cols)
        {
            throw new ArgumentException($"the second moment has {secondMoment.Length} elements, expected {cols}×{cols}");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(groupSize, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(options.Damping);
        int[] order = ColumnOrder(secondMoment, cols, options.ActOrder);
        double[] inverseFactor = InverseHessianFactor(secondMoment, cols, order, options.Damping);

        var q = new QuantizedMatrix(rows, cols, groupSize);
        var work = new double[(long)rows * cols];
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < cols; j++)
            {
                work[(long)r * cols + j] = weights[r * cols + order[j]];
            }
        }

        if (options.ActOrder)
        {
            // Static groups: each group's grid comes from the untouched weights, as RTN would choose it.
            for (int r = 0; r < rows; r++)
            {
                for (int g = 0; g < q.Groups; g++)
                {
                    int start = g * groupSize;
                    (Half scale, int zero) = RtnQuantizer.GroupParameters(weights.Slice(r * cols + start, Math.Min(groupSize, cols - start)));
                    q.ScaleRow(r)[g] = scale;
                    Int4Encoding.SetNibble(q.ZeroRow(r), g, zero);
                }
            }
        }

        // Without act-order, blocks start on group boundaries so a group's grid is chosen from weights that already
        // carry every earlier column's error, and all of a group's columns are in the block that chooses it.
        int block = options.ActOrder ? Math.Max(1, options.BlockSize)
            : groupSize >= options.BlockSize ? groupSize : groupSize * Math.Max(1, options.BlockSize / groupSize);
        var errors = new double[(long)rows * Math.Min(block, cols)];
        for (int start = 0; start < cols; start += block)
        {
            int end = Math.Min(cols, start + block), width = end - start;
            Parallel.For(0, (rows + RowsPerTask - 1) / RowsPerTask, task =>
            {
                float[] groupBuffer = new float[Math.Min(groupSize, cols)];
                for (int r = task * RowsPerTask, last = Math.Min(rows, r + RowsPerTask); r < last; r++)
                {
                    QuantizeBlockOfRow(q, r, work.AsSpan(r * cols, cols), errors.AsSpan(r * width, width), inverseFactor, cols, start, end, order, options.ActOrder, groupBuffer);
                }
            });

            if (end < cols)
            {
                // W[:, end:] −= Err · U[start:end, end:]
                DenseKernels.Gemm(MatrixOp.None, MatrixOp.None, rows, cols - end, width, -1,
                    errors, 0, width, inverseFactor, start * cols + end, cols, 1, work, end, cols);
            }
        }

        // Padding columns hold the zero point, so they dequantise to exactly 0.
        for (int r = 0; r < rows; r++)
        {
            for (int j = cols; j < q.PaddedCols; j++)
            {
                Int4Encoding.SetNibble(q.CodeRow(r), j, Int4Encoding.GetNibble(q.ZeroRow(r), j / groupSize));
            }
        }

        return q;
    }

    private const int RowsPerTask = 16;

    private static void QuantizeBlockOfRow(
        QuantizedMatrix q, int r, Span<double> row, Span<double> errors, double[] u, int cols, int start, int end,
        int[] order, bool staticGroups, float[] groupBuffer)
    {
        int g = q.GroupSize;
        Span<Half> scales = q.ScaleRow(r);
        Span<byte> zeros = q.ZeroRow(r), codes = q.CodeRow(r);
        for (int i = start; i < end; i++)
        {
            int column = order[i], group = column / g;
            if (!staticGroups && i % g == 0)
            {
                Span<float> values = groupBuffer.AsSpan(0, Math.Min(g, cols - i));
                for (int k = 0; k < values.Length; k++)
                {
                    values[k] = (float)row[i + k];
                }

                (Half chosen, int chosenZero) = RtnQuantizer.GroupParameters(values);
                scales[group] = chosen;
                Int4Encoding.SetNibble(zeros, group, chosenZero);
            }

            float s = (float)scales[group];
            int zero = Int4Encoding.GetNibble(zeros, group);
            float w = (float)row[i];
            int code = Math.Clamp((int)MathF.Round(w / s + zero, MidpointRounding.ToEven), 0, RtnQuantizer.MaxCode);
            Int4Encoding.SetNibble(codes, column, code);
            double error = (row[i] - (code - zero) * s) / u[(long)i * cols + i];
            errors[i - start] = error;
            ReadOnlySpan<double> influence = u.AsSpan(i * cols + i + 1, end - i - 1);
            Span<double> rest = row.Slice(i + 1, end - i - 1);
            System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(influence, -error, rest, rest);
        }
    }

    /// <summary>The order columns are quantised in: natural, or by decreasing E[x_j²] (stable).</summary>
    private static int[] ColumnOrder(double[] h, int n, bool actOrder)
    {
        int[] order = [.. Enumerable.Range(0, n)];
        if (actOrder)
        {
            order = [.. order.OrderByDescending(j => h[(long)j * n + j]).ThenBy(j => j)];
        }

        return order;
    }

    /// <summary>
    /// Upper-triangular U with UᵀU = H⁻¹ for the damped, permuted Hessian H — GPTQ's per-column error weights.
    /// Computed without forming H⁻¹: for the reversal permutation J, Cholesky of J H J = L Lᵀ gives H = Ũ Ũᵀ with
    /// Ũ = J L J upper-triangular, so H⁻¹ = (Ũ⁻¹)ᵀ Ũ⁻¹ and U = Ũ⁻¹ = J L⁻¹ J: one factorisation and one triangular inverse.
    /// </summary>
    internal static double[] InverseHessianFactor(double[] secondMoment, int n, int[] order, double damping)
    {
        double meanDiagonal = 0;
        for (int j = 0; j < n; j++)
        {
            meanDiagonal += secondMoment[(long)j * n + j];
        }

        meanDiagonal /= n;
        double damp = damping * meanDiagonal;
        var reversed = new double[(long)n * n];
        for (int i = 0; i < n; i++)
        {
            int oi = order[n - 1 - i];
            for (int j = 0; j <= i; j++)
            {
                int oj = order[n - 1 - j];
                // Read the lower triangle of the (symmetric) statistic: only it is guaranteed to be filled.
                reversed[(long)i * n + j] = oi >= oj ? secondMoment[(long)oi * n + oj] : secondMoment[(long)oj * n + oi];
            }

            // A column no calibration input ever reaches (E[x_j²] = 0) has nothing to weigh its error by: give it unit
            // weight, so it is rounded like RTN and passes no error on.
            double diagonal = reversed[(long)i * n + i];
            reversed[(long)i * n + i] = (diagonal > 0 ? diagonal : meanDiagonal > 0 ? meanDiagonal : 1) + damp;
        }

        DenseKernels.CholeskyLower(reversed, n);
        DenseKernels.InvertLower(reversed, n);
        var u = new double[(long)n * n];
        for (int i = 0; i < n; i++)
        {
            for (int j = i; j < n; j++)
            {
                u[(long)i * n + j] = reversed[(long)(n - 1 - i) * n + (n - 1 - j)];
            }
        }

        return u;
    }
}
