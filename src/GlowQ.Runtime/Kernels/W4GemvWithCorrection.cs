using System.Numerics.Tensors;
using GlowQ.Engine;
using GlowQ.Format.Glq;

namespace GlowQ.Runtime.Kernels;

/// <summary>
/// The fused GlowQ product of one unit (glowq-method.md §5): y_i = Q(W_i)·x + A_i·(B·x) (+ bias_i) for every member
/// i, for T tokens. t = B·x is computed once for the unit; then one pass over all members' rows computes each row's
/// int4 dot product and adds A_row·t before writing, all in fp32. With <c>restore</c> false (mask bit 0) it is the
/// plain int4 product and reads neither A, B nor t. <see cref="RunSwiGlu"/> does the same for gate/up and writes
/// silu(gate)·up, the FFN hidden state, directly.
/// <para>
/// Decode (T ≤ 2) multiplies packed codes directly (<see cref="Int4Kernels.CodeDot"/>); prefill dequantises each
/// row once and reuses it for every token. Rows are split across the worker pool in blocks; all scratch is
/// allocated here, so a call allocates nothing.
/// </para>
/// </summary>
public sealed class W4GemvWithCorrection : IPartitionedWork
{
    /// <summary>Rows per scheduling block.</summary>
    private const int RowBlock = 16;

    /// <summary>Above this many tokens a row is dequantised once and reused, rather than decoded per token.</summary>
    private const int DirectMaxTokens = 2;

    private enum Phase
    {
        Correction,
        Rows,
        SwiGluRows,
    }

    private readonly WorkerPool _pool;
    private readonly int _capacity, _maxRank;
    private readonly Scratch[] _scratch;

    // Per call, shared by all participants: the input in nibble order with its group sums, and t = B·x.
    private readonly float[] _xr, _groupSums, _t;

    // The call in progress (members, factors and outputs are copied into fixed slots: no per-call arrays).
    private readonly Int4Matrix[] _members = new Int4Matrix[Int4Unit.MaxMembers];
    private readonly ReadOnlyMemory<Half>[] _a = new ReadOnlyMemory<Half>[Int4Unit.MaxMembers];
    private readonly float[][] _outputs = new float[Int4Unit.MaxMembers][];
    private int _memberCount, _rank, _tokens, _firstToken, _xrStride;
    private bool _correct, _nibbleOrder;
    private Phase _phase;
    private ReadOnlyMemory<Half> _b;
    private float[] _x = null!;

    /// <param name="maxCols">The widest input this instance will multiply.</param>
    /// <param name="maxRank">The largest correction rank.</param>
    /// <param name="maxTokens">Tokens per internal chunk; longer prompts run in chunks of this many.</param>
    public W4GemvWithCorrection(WorkerPool pool, int maxCols, int maxRank = 64, int maxTokens = 1)
    {
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCols, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxRank);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        _pool = pool;
        // Rows are stored padded to whole groups: leave room for the padding of any group size up to 512.
        _capacity = (maxCols + 511) / 512 * 512;
        _maxRank = maxRank;
        MaxTokens = maxTokens;
        _xr = new float[maxTokens * _capacity];
        _groupSums = new float[maxTokens * _capacity];
        _t = new float[maxTokens * Math.Max(maxRank, 1)];
        _scratch = new Scratch[pool.ThreadCount];
        for (int i = 0; i < _scratch.Length; i++)
        {
            _scratch[i] = new Scratch(_capacity, maxTokens);
        }
    }

    public int MaxTokens { get; }

    /// <summary>Instruction width of the kernels (tests compare the paths; the default is the widest available).</summary>
    internal Int4Path Path { get; set; } = Int4Kernels.Best;

    /// <summary>
    /// outputs[i][t·Rows_i + o] ← (Q(W_i)·x_t + A_i·(B·x_t) + bias_i)[o] for tokens t of x (row-major, Cols per token).
    /// </summary>
    /// <param name="restore">The unit's restoration-mask bit: false runs the plain int4 product.</param>
    public void Run(Int4Unit unit, bool restore, float[] x, int tokens, params ReadOnlySpan<float[]> outputs)
    {
        ArgumentNullException.ThrowIfNull(unit);
        if (outputs.Length != unit.Members.Count)
        {
            throw new ArgumentException($"the unit has {unit.Members.Count} members, {outputs.Length} outputs were given");
        }

        Begin(unit, restore, x, tokens);
        for (int i = 0; i < _memberCount; i++)
        {
            CheckLength(outputs[i], (long)tokens * _members[i].Rows, "output");
            _outputs[i] = outputs[i];
        }

        RunChunks(Phase.Rows, tokens);
    }

    /// <summary>hidden[t·Rows + o] ← silu(gate_t[o])·up_t[o], with gate and up the unit's two corrected products.</summary>
    public void RunSwiGlu(Int4Unit unit, bool restore, float[] x, float[] hidden, int tokens)
    {
        ArgumentNullException.ThrowIfNull(unit);
        if (unit.Members.Count != 2 || unit.Members[0].Rows != unit.Members[1].Rows)
        {
            throw new ArgumentException("SwiGLU needs a unit of two members (gate, up) with equal rows");
        }

        Begin(unit, restore, x, tokens);
        CheckLength(hidden, (long)tokens * _members[0].Rows, "hidden");
        _outputs[0] = hidden;
        RunChunks(Phase.SwiGluRows, tokens);
    }

    /// <summary>The plain product of one matrix (what <see cref="W4Gemv"/> runs).</summary>
    internal void RunPlain(Int4Matrix w, float[] x, float[] y, int tokens)
    {
        ArgumentNullException.ThrowIfNull(w);
        Check(w, x, tokens);
        CheckLength(y, (long)tokens * w.Rows, "output");
        _members[0] = w;
        _memberCount = 1;
        _correct = false;
        _rank = 0;
        _x = x;
        _outputs[0] = y;
        RunChunks(Phase.Rows, tokens);
    }

    private void Begin(Int4Unit unit, bool restore, float[] x, int tokens)
    {
        Check(unit.Members[0], x, tokens);
        _memberCount = unit.Members.Count;
        for (int i = 0; i < _memberCount; i++)
        {
            _members[i] = unit.Members[i];
            if (_members[i].GroupSize != _members[0].GroupSize)
            {
                throw new ArgumentException("the members of a unit must share one group size");
            }
        }

        _correct = restore && unit.Rank > 0;
        _rank = _correct ? unit.Rank : 0;
        if (_rank > _maxRank)
        {
            throw new ArgumentException($"rank {_rank} exceeds this instance's maximum {_maxRank}");
        }

        if (_correct)
        {
            _b = unit.B;
            for (int i = 0; i < _memberCount; i++)
            {
                _a[i] = unit.A[i];
            }
        }

        _x = x;
    }

    private void Check(Int4Matrix w, float[] x, int tokens)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentOutOfRangeException.ThrowIfLessThan(tokens, 1);
        if (Int4Kernels.NibbleOrderLength(w.PaddedCols) > _capacity)
        {
            throw new ArgumentException($"matrix rows hold {w.PaddedCols} padded columns, this instance is sized for {_capacity}");
        }

        CheckLength(x, (long)tokens * w.Cols, "input");
    }

    private static void CheckLength(float[] buffer, long needed, string what)
    {
        ArgumentNullException.ThrowIfNull(buffer, what);
        if (buffer.Length < needed)
        {
            throw new ArgumentException($"{what} holds {buffer.Length} floats, the product needs {needed}");
        }
    }

    private void RunChunks(Phase rowsPhase, int tokens)
    {
        long rows = 0;
        for (int i = 0; i < _memberCount; i++)
        {
            rows += _members[i].Rows;
        }

        int cols = _members[0].Cols;
        try
        {
            for (int start = 0; start < tokens; start += MaxTokens)
            {
                _firstToken = start;
                _tokens = Math.Min(MaxTokens, tokens - start);
                PrepareInput();
                if (_correct)
                {
                    _phase = Phase.Correction;
                    _pool.Run(this, (long)_rank * cols * _tokens);
                }

                _phase = rowsPhase;
                _pool.Run(this, rows * cols * _tokens);
            }
        }
        finally
        {
            _x = null!;
            _b = default;
            Array.Clear(_members);
            Array.Clear(_a);
            Array.Clear(_outputs);
        }
    }

    /// <summary>The chunk's inputs in the order the vector kernels read (once per call, shared by every row).</summary>
    private void PrepareInput()
    {
        Int4Matrix w = _members[0];
        _nibbleOrder = Int4Kernels.UsesNibbleOrder(Path, w.GroupSize);
        _xrStride = Int4Kernels.NibbleOrderLength(w.PaddedCols);
        if (!_nibbleOrder)
        {
            return;
        }

        for (int t = 0; t < _tokens; t++)
        {
            Int4Kernels.PrepareInput(Input(t), w.GroupSize, _xr.AsSpan(t * _xrStride, _xrStride), _groupSums.AsSpan(t * w.Groups, w.Groups));
        }
    }

    /// <summary>Token t of the current chunk, in column order.</summary>
    private ReadOnlySpan<float> Input(int t)
    {
        int cols = _members[0].Cols;
        return _x.AsSpan((_firstToken + t) * cols, cols);
    }

    void IPartitionedWork.Execute(int part, int parts)
    {
        Scratch scratch = _scratch[part];
        switch (_phase)
        {
            case Phase.Correction:
                ComputeT(part, parts);
                break;
            case Phase.Rows:
                ComputeRows(part, parts, scratch);
                break;
            default:
                ComputeSwiGluRows(part, parts, scratch);
                break;
        }
    }

    /// <summary>t[tok·rank + j] = B[j]·x_tok: the rank-r projection every member's correction shares.</summary>
    private void ComputeT(int part, int parts)
    {
        int cols = _members[0].Cols;
        (int first, int last) = WorkerPool.Range(_rank, part, parts);
        ReadOnlySpan<Half> b = _b.Span;
        for (int j = first; j < last; j++)
        {
            for (int t = 0; t < _tokens; t++)
            {
                _t[t * _rank + j] = Int4Kernels.HalfDot(Path, b.Slice(j * cols, cols), Input(t));
            }
        }
    }

    /// <summary>All members' rows, as one list of row blocks split evenly across participants.</summary>
    private void ComputeRows(int part, int parts, Scratch scratch)
    {
        int blocks = 0;
        for (int i = 0; i < _memberCount; i++)
        {
            blocks += Blocks(_members[i].Rows);
        }

        (int first, int last) = WorkerPool.Range(blocks, part, parts);
        int member = 0, memberStart = 0;
        for (int block = first; block < last; block++)
        {
            while (block - memberStart >= Blocks(_members[member].Rows))
            {
                memberStart += Blocks(_members[member].Rows);
                member++;
            }

            Int4Matrix w = _members[member];
            int row0 = (block - memberStart) * RowBlock, rowEnd = Math.Min(w.Rows, row0 + RowBlock);
            ReadOnlySpan<Half> a = _correct ? _a[member].Span : [];
            float[] y = _outputs[member];
            Span<float> values = scratch.Values.AsSpan(0, _tokens);
            for (int row = row0; row < rowEnd; row++)
            {
                RowProduct(w, row, a, scratch, values);
                for (int t = 0; t < _tokens; t++)
                {
                    y[((_firstToken + t) * w.Rows) + row] = values[t];
                }
            }
        }
    }

    /// <summary>Gate and up rows side by side, so silu(gate)·up is formed in registers and only the product is written.</summary>
    private void ComputeSwiGluRows(int part, int parts, Scratch scratch)
    {
        Int4Matrix gate = _members[0], up = _members[1];
        (int first, int last) = WorkerPool.Range(Blocks(gate.Rows), part, parts);
        float[] hidden = _outputs[0];
        Span<float> gateValues = scratch.Values.AsSpan(0, _tokens), upValues = scratch.UpValues.AsSpan(0, _tokens);
        for (int block = first; block < last; block++)
        {
            int row0 = block * RowBlock, rowEnd = Math.Min(gate.Rows, row0 + RowBlock);
            ReadOnlySpan<Half> aGate = _correct ? _a[0].Span : [], aUp = _correct ? _a[1].Span : [];
            for (int row = row0; row < rowEnd; row++)
            {
                RowProduct(gate, row, aGate, scratch, gateValues);
                RowProduct(up, row, aUp, scratch, upValues);
                for (int t = 0; t < _tokens; t++)
                {
                    float g = gateValues[t];
                    hidden[((_firstToken + t) * gate.Rows) + row] = g / (1f + MathF.Exp(-g)) * upValues[t];
                }
            }
        }
    }

    /// <summary>
    /// values[t] = Q(W)[row]·x_t + A_row·t_t + bias[row] for the chunk's tokens: one row of one member, complete.
    /// </summary>
    private void RowProduct(Int4Matrix w, int row, ReadOnlySpan<Half> a, Scratch scratch, Span<float> values)
    {
        ReadOnlySpan<byte> codes = w.Codes.Span.Slice(row * w.RowBytes, w.RowBytes);
        ReadOnlySpan<byte> zeros = w.Zeros.Span.Slice(row * w.ZeroRowBytes, w.ZeroRowBytes);
        Span<float> scales = scratch.Scales.AsSpan(0, w.Groups);
        TensorPrimitives.ConvertToSingle(w.Scales.Span.Slice(row * w.Groups, w.Groups), scales);
        bool direct = _tokens <= DirectMaxTokens;

        if (!_nibbleOrder)
        {
            Span<float> dense = scratch.Row.AsSpan(0, w.Cols);
            if (!direct)
            {
                Int4Encoding.DequantizeRow(codes, w.Scales.Span.Slice(row * w.Groups, w.Groups), zeros, w.GroupSize, dense);
            }

            for (int t = 0; t < _tokens; t++)
            {
                values[t] = direct ? Int4Kernels.ScalarDot(codes, scales, zeros, w.GroupSize, Input(t)) : TensorPrimitives.Dot(dense, Input(t));
            }
        }
        else
        {
            int halves = w.PaddedCols / Int4Kernels.HalfBlock;
            Span<float> halfScales = scratch.HalfScales.AsSpan(0, halves);
            Span<float> halfZeros = direct ? [] : scratch.HalfZeros.AsSpan(0, halves);
            bool byGroup = direct && Path == Int4Path.Vector256 && w.GroupSize % Int4Kernels.Block == 0;
            if (!byGroup)
            {
                Int4Kernels.ExpandToHalves(scales, zeros, w.GroupSize, halfScales, halfZeros);
            }

            Span<float> dense = scratch.Row.AsSpan(0, _xrStride);
            if (!direct)
            {
                Int4Kernels.DequantizeRow(codes, halfScales, halfZeros, dense);
            }

            for (int t = 0; t < _tokens; t++)
            {
                ReadOnlySpan<float> xr = _xr.AsSpan(t * _xrStride, _xrStride);
                values[t] = !direct ? TensorPrimitives.Dot(dense, xr)
                    : (byGroup ? Int4Kernels.CodeDotByGroup(codes, scales, w.GroupSize, xr) : Int4Kernels.CodeDot(Path, codes, halfScales, xr))
                      - Int4Kernels.ZeroPointTerm(scales, zeros, _groupSums.AsSpan(t * w.Groups, w.Groups));
            }
        }

        // The epilogue: correction and bias join the int4 result before anything is written.
        for (int t = 0; t < _tokens; t++)
        {
            if (_correct)
            {
                values[t] += Int4Kernels.HalfDot(Path, a.Slice(row * _rank, _rank), _t.AsSpan(t * _rank, _rank));
            }

            if (!w.Bias.IsEmpty)
            {
                values[t] += w.Bias.Span[row];
            }
        }
    }

    private static int Blocks(int rows) => (rows + RowBlock - 1) / RowBlock;

    /// <summary>One participant's working memory, sized for the largest product at construction.</summary>
    private sealed class Scratch(int capacity, int maxTokens)
    {
        public float[] Scales { get; } = new float[capacity];

        public float[] HalfScales { get; } = new float[capacity / Int4Kernels.HalfBlock];

        public float[] HalfZeros { get; } = new float[capacity / Int4Kernels.HalfBlock];

        /// <summary>A dequantised row (prefill), in column or nibble order.</summary>
        public float[] Row { get; } = new float[capacity];

        public float[] Values { get; } = new float[maxTokens];

        public float[] UpValues { get; } = new float[maxTokens];
    }
}
