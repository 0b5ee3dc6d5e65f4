using System.Runtime.InteropServices;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Kernels;

namespace GlowQ.Kernels.Tests;

/// <summary>
/// A random GlowQ unit in the .glq §6 layout, both as the CPU runtime's <see cref="Int4Unit"/> and as the stacked
/// arrays the GPU kernels read, with a float64 reference of its corrected product.
/// </summary>
internal sealed class RandomUnit
{
    private RandomUnit(Int4Matrix[] members, int cols, int groupSize, int rank, Half[] rightFactor, Half[][] leftFactors, float[][]? biases)
    {
        Members = members;
        Cols = cols;
        GroupSize = groupSize;
        Rank = rank;
        RightFactor = rightFactor;
        LeftFactors = leftFactors;
        Biases = biases;
        Unit = new Int4Unit(members, rank, rightFactor, rank > 0 ? [.. leftFactors.Select(a => (ReadOnlyMemory<Half>)a)] : null);
    }

    public Int4Matrix[] Members { get; }

    public int Cols { get; }

    public int GroupSize { get; }

    public int Rank { get; }

    public Half[] RightFactor { get; }

    public Half[][] LeftFactors { get; }

    public float[][]? Biases { get; }

    public Int4Unit Unit { get; }

    public int TotalRows => Members.Sum(m => m.Rows);

    /// <param name="memberRows">Rows of each member, e.g. q, k, v.</param>
    /// <param name="garbagePadding">
    /// Fill the padding columns with codes that do not dequantise to zero, instead of the zero point §6 prescribes,
    /// so a kernel that reads padding against x is caught.
    /// </param>
    public static RandomUnit Create(int seed, int[] memberRows, int cols, int groupSize, int rank, bool withBias, bool garbagePadding = false)
    {
        var random = new Random(seed);
        int groups = (cols + groupSize - 1) / groupSize, paddedCols = groups * groupSize;
        var members = new Int4Matrix[memberRows.Length];
        float[][]? biases = withBias ? new float[memberRows.Length][] : null;
        for (int m = 0; m < memberRows.Length; m++)
        {
            int rows = memberRows[m];
            int rowBytes = Int4Encoding.PackedRowBytes(paddedCols), zeroBytes = Int4Encoding.PackedRowBytes(groups);
            var codes = new byte[rows * rowBytes];
            var zeros = new byte[rows * zeroBytes];
            Half[] scales = [.. Enumerable.Range(0, rows * groups).Select(_ => (Half)((0.002 + (random.NextDouble() * 0.03)) * (random.Next(2) * 2 - 1)))];
            for (int r = 0; r < rows; r++)
            {
                Span<byte> rowZeros = zeros.AsSpan(r * zeroBytes, zeroBytes), rowCodes = codes.AsSpan(r * rowBytes, rowBytes);
                for (int g = 0; g < groups; g++)
                {
                    Int4Encoding.SetNibble(rowZeros, g, random.Next(16));
                }

                for (int i = 0; i < paddedCols; i++)
                {
                    int zero = Int4Encoding.GetNibble(rowZeros, i / groupSize);
                    int code = i < cols ? random.Next(16) : garbagePadding ? 15 - zero : zero;
                    Int4Encoding.SetNibble(rowCodes, i, code);
                }
            }

            if (biases is not null)
            {
                biases[m] = DeviceData.Floats(random, rows, 0.5f);
            }

            members[m] = Int4Matrix.FromQuantized(rows, cols, groupSize, codes, scales, zeros, biases?[m]);
        }

        Half[] rightFactor = rank > 0 ? DeviceData.Halves(random, rank * cols, 0.2f) : [];
        Half[][] leftFactors = [.. memberRows.Select(rows => rank > 0 ? DeviceData.Halves(random, rows * rank, 0.2f) : [])];
        return new RandomUnit(members, cols, groupSize, rank, rightFactor, leftFactors, biases);
    }

    /// <summary>All members' codes, rows concatenated, as the u32 words the kernels read.</summary>
    public uint[] StackedCodeWords() => MemoryMarshal.Cast<byte, uint>(Concat(Members.Select(m => m.Codes.ToArray()))).ToArray();

    public Half[] StackedScales() => Concat(Members.Select(m => m.Scales.ToArray()));

    public byte[] StackedZeros() => Concat(Members.Select(m => m.Zeros.ToArray()));

    public Half[] StackedLeftFactors() => Concat(LeftFactors);

    public float[] StackedBias() => Biases is null ? [] : Concat(Biases);

    /// <summary>t = B·x in float64.</summary>
    public double[] Projection(float[] x) =>
        [.. Enumerable.Range(0, Rank).Select(j => Enumerable.Range(0, Cols).Sum(c => (double)RightFactor[j * Cols + c] * x[c]))];

    /// <summary>
    /// The stacked corrected product in float64, from the format's own dequantisation, with each row's magnitude
    /// Σ|terms| (the scale an fp32 result's rounding error is proportional to, however much the terms cancel).
    /// </summary>
    public (double[] Values, double[] Magnitudes) Reference(float[] x, bool restore)
    {
        double[] t = Projection(x);
        var values = new List<double>();
        var magnitudes = new List<double>();
        for (int m = 0; m < Members.Length; m++)
        {
            Int4Matrix w = Members[m];
            float[] dense = w.Dequantize();
            for (int r = 0; r < w.Rows; r++)
            {
                double value = 0, magnitude = 0;
                for (int c = 0; c < Cols; c++)
                {
                    double term = (double)dense[r * Cols + c] * x[c];
                    value += term;
                    magnitude += Math.Abs(term);
                }

                for (int j = 0; restore && j < Rank; j++)
                {
                    double term = (double)LeftFactors[m][r * Rank + j] * t[j];
                    value += term;
                    magnitude += Math.Abs(term);
                }

                if (Biases is not null)
                {
                    value += Biases[m][r];
                    magnitude += Math.Abs(Biases[m][r]);
                }

                values.Add(value);
                magnitudes.Add(magnitude);
            }
        }

        return ([.. values], [.. magnitudes]);
    }

    private static T[] Concat<T>(IEnumerable<T[]> parts) => [.. parts.SelectMany(p => p)];
}
