using System.Runtime.InteropServices;
using GlowQ.Format.Glq;

namespace GlowQ.Runtime.Kernels;

/// <summary>
/// A read-only view of one quantised projection exactly as a .glq file stores it (formats/glq-v1.md §6): packed codes
/// [Rows × PaddedCols/2], fp16 scales [Rows × Groups], packed zero points [Rows × ⌈Groups/2⌉], optional fp32 bias.
/// It owns none of that memory: <see cref="FromGlq"/> views the file mapping in place, so the runtime never copies
/// weights; <see cref="FromQuantized"/> views arrays.
/// </summary>
public sealed class Int4Matrix
{
    private Int4Matrix(int rows, int cols, int groupSize, ReadOnlyMemory<byte> codes, ReadOnlyMemory<Half> scales, ReadOnlyMemory<byte> zeros, ReadOnlyMemory<float> bias)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(cols, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(groupSize, 1);
        Rows = rows;
        Cols = cols;
        GroupSize = groupSize;
        Groups = (cols + groupSize - 1) / groupSize;
        PaddedCols = Groups * groupSize;
        RowBytes = Int4Encoding.PackedRowBytes(PaddedCols);
        ZeroRowBytes = Int4Encoding.PackedRowBytes(Groups);
        Check(codes.Length, (long)rows * RowBytes, "codes");
        Check(scales.Length, (long)rows * Groups, "scales");
        Check(zeros.Length, (long)rows * ZeroRowBytes, "zeros");
        if (!bias.IsEmpty)
        {
            Check(bias.Length, rows, "bias");
        }

        Codes = codes;
        Scales = scales;
        Zeros = zeros;
        Bias = bias;
    }

    public int Rows { get; }

    public int Cols { get; }

    public int GroupSize { get; }

    public int Groups { get; }

    /// <summary>Cols rounded up to whole groups: the stored row length in codes.</summary>
    public int PaddedCols { get; }

    public int RowBytes { get; }

    public int ZeroRowBytes { get; }

    public ReadOnlyMemory<byte> Codes { get; }

    public ReadOnlyMemory<Half> Scales { get; }

    public ReadOnlyMemory<byte> Zeros { get; }

    /// <summary>Empty when the projection has no bias.</summary>
    public ReadOnlyMemory<float> Bias { get; }

    /// <summary>Bytes a product streams: codes, scales, zero points and bias.</summary>
    public long WeightBytes => Codes.Length + 2L * Scales.Length + Zeros.Length + 4L * Bias.Length;

    /// <summary>A view over arrays in the §6 layout (tests, and weights built in memory).</summary>
    public static Int4Matrix FromQuantized(int rows, int cols, int groupSize, byte[] codes, Half[] scales, byte[] zeros, float[]? bias = null) =>
        new(rows, cols, groupSize, codes, scales, zeros, bias ?? ReadOnlyMemory<float>.Empty);

    /// <summary>
    /// A zero-copy view of <paramref name="linear"/> inside the mapping of <paramref name="file"/>, which must stay
    /// open while the view is used.
    /// </summary>
    public static Int4Matrix FromGlq(GlqFile file, GlqLinear linear, int groupSize)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(linear);
        return new Int4Matrix(linear.Rows, linear.Cols, groupSize,
            MappedMemory<byte>.Over(file.GetBytes(file.RequireTensor(linear.QWeight))),
            MappedMemory<Half>.Over(file.GetBytes(file.RequireTensor(linear.Scales))),
            MappedMemory<byte>.Over(file.GetBytes(file.RequireTensor(linear.Zeros))),
            linear.HasBias ? MappedMemory<float>.Over(file.GetBytes(file.RequireTensor(linear.Bias))) : ReadOnlyMemory<float>.Empty);
    }

    /// <summary>Q(W) as dense fp32 [Rows × Cols] through the format's own dequantisation (tests, references).</summary>
    public float[] Dequantize()
    {
        var w = new float[Rows * Cols];
        Int4Encoding.DequantizeMatrix(Codes.Span, Scales.Span, Zeros.Span, Rows, Cols, GroupSize, w);
        return w;
    }

    private static void Check(int actual, long expected, string what)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"{what}: {actual} elements, the layout needs {expected}");
        }
    }
}

/// <summary>
/// A GlowQ unit (glowq-method.md §5): projections that read one input and share one correction factor B [Rank × Cols];
/// member i adds A_i [Rows_i × Rank]·(B·x). All factors are fp16 views, like <see cref="Int4Matrix"/>. A unit without
/// factors (rank 0) is a plain int4 product.
/// </summary>
public sealed class Int4Unit
{
    public Int4Unit(IReadOnlyList<Int4Matrix> members, int rank = 0, ReadOnlyMemory<Half> b = default, IReadOnlyList<ReadOnlyMemory<Half>>? a = null)
    {
        ArgumentNullException.ThrowIfNull(members);
        if (members.Count is < 1 or > MaxMembers)
        {
            throw new ArgumentException($"a unit has 1..{MaxMembers} members, not {members.Count}");
        }

        int cols = members[0].Cols;
        if (members.Any(m => m.Cols != cols))
        {
            throw new ArgumentException("the members of a unit read one input: their column counts must agree");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        if (rank > 0)
        {
            if (b.Length != (long)rank * cols)
            {
                throw new ArgumentException($"B has {b.Length} elements, rank {rank} × {cols} columns needs {rank * cols}");
            }

            if (a is null || a.Count != members.Count)
            {
                throw new ArgumentException("a unit with a correction needs one A factor per member");
            }

            for (int i = 0; i < members.Count; i++)
            {
                if (a[i].Length != (long)members[i].Rows * rank)
                {
                    throw new ArgumentException($"A of member {i} has {a[i].Length} elements, needs {members[i].Rows} × {rank}");
                }
            }
        }

        Members = [.. members];
        Rank = rank;
        B = b;
        A = rank > 0 ? [.. a!] : [];
        Cols = cols;
    }

    /// <summary>q/k/v is the widest unit.</summary>
    public const int MaxMembers = 3;

    public IReadOnlyList<Int4Matrix> Members { get; }

    public int Rank { get; }

    public int Cols { get; }

    /// <summary>Shared factor [Rank × Cols], fp16.</summary>
    public ReadOnlyMemory<Half> B { get; }

    /// <summary>Per-member factors [Rows_i × Rank], fp16.</summary>
    public IReadOnlyList<ReadOnlyMemory<Half>> A { get; }

    public long WeightBytes => Members.Sum(m => m.WeightBytes);

    public long CorrectionBytes => 2L * (B.Length + A.Sum(a => (long)a.Length));

    /// <summary>Unit <paramref name="unitIndex"/> of a .glq model, viewing the file mapping in place.</summary>
    public static Int4Unit FromGlq(GlqFile file, GlqModel model, int unitIndex)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(model);
        GlqUnit unit = model.Units[unitIndex];
        Dictionary<string, GlqLinear> linears = GlqModel.LinearsByModule(model.Config);
        Int4Matrix[] members = [.. unit.Members.Select(m => Int4Matrix.FromGlq(file, linears[m], model.Quantization.GroupSize))];
        ReadOnlyMemory<Half>[] a = [.. unit.Members.Select(m => Half(file, unit.AName(m)))];
        return new Int4Unit(members, unit.Rank, Half(file, unit.BName), a);
    }

    /// <summary>A unit of one projection with no correction: the plain int4 product.</summary>
    public static Int4Unit Plain(Int4Matrix matrix) => new([matrix]);

    private static ReadOnlyMemory<Half> Half(GlqFile file, string name)
    {
        GlqTensorInfo t = file.RequireTensor(name);
        if (t.DType != GlqDType.F16)
        {
            throw new ArgumentException($"{name} is {t.DType.Name()}, the runtime reads F16 correction factors");
        }

        return MappedMemory<System.Half>.Over(file.GetBytes(t));
    }
}
