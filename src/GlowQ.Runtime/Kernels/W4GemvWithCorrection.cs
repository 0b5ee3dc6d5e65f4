using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
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
/// Decode (T ≤ 3) multiplies packed codes directly (<see cref="Int4Kernels.CodeDot"/>); prefill dequantises each
/// code vector once in registers and applies it to eight tokens (<see cref="Int4Kernels.CodeDotTokenBlock"/>).
/// Rows are split across the worker pool in contiguous runs of whole 16-row blocks, so each thread streams its own
/// weights and writes its own output cache lines. Per block of rows the fp16 scales, zero points and A rows are
/// widened once, in one vectorised pass, rather than per row. All scratch is allocated here, so a call allocates
/// nothing; small products run on the calling thread (<see cref="WorkerPool.Run"/>).
/// </para>
/// </summary>
public sealed class W4GemvWithCorrection : IPartitionedWork
{
    /// <summary>Rows per scheduling block: a multiple of 16 keeps each thread's fp32 output on its own cache lines.</summary>
    private const int RowBlock = 16;

    /// <summary>Up to this many tokens each token multiplies packed codes; above it, rows dequantise once per eight tokens.</summary>
    internal const int DirectMaxTokens = 3;

    private const int TokenBlock = Int4Kernels.TokenBlock;

    /// <summary>
    /// Widest gate/up rows decoded four at a time. Four gate and four up rows are eight concurrent weight streams; at
    /// 1B widths (2048) that measured 1.6× slower than one row pair at a time, while narrow rows gain from sharing
    /// the reductions.
    /// </summary>
    private const int FourRowSwiGluMaxCols = 512;

    private enum Phase
    {
        Correction,
        Rows,
        SwiGluRows,
    }

    private readonly WorkerPool _pool;
    private readonly int _capacity, _maxRank;
    private readonly Scratch[] _scratch;

    // Per call, shared by all participants: the input in decode order with its group sums, or in prefill order; t = B·x.
    private readonly float[] _xr, _groupSums, _xp, _t;

    // The call in progress (members, factors and outputs are copied into fixed slots: no per-call arrays).
    private readonly Int4Matrix[] _members = new Int4Matrix[Int4Unit.MaxMembers];
    private readonly ReadOnlyMemory<Half>[] _a = new ReadOnlyMemory<Half>[Int4Unit.MaxMembers];
    private readonly float[][] _outputs = new float[Int4Unit.MaxMembers][];
    private int _memberCount, _rank, _tokens, _firstToken, _xrStride, _xpStride;
    private bool _correct, _nibbleOrder, _direct;
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
        int direct = Math.Min(maxTokens, DirectMaxTokens);
        _xr = new float[direct * _capacity];
        _groupSums = new float[direct * _capacity];
        _xp = maxTokens > DirectMaxTokens ? new float[(maxTokens + TokenBlock - 1) / TokenBlock * TokenBlock * _capacity] : [];
        _t = new float[maxTokens * Math.Max(maxRank, 1)];
        _scratch = new Scratch[pool.ThreadCount];
        for (int i = 0; i < _scratch.Length; i++)
        {
            _scratch[i] = new Scratch(_capacity, Math.Max(maxRank, 1), maxTokens);
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

    /// <summary>The chunk's inputs in the order the vector kernels read (once per call, shared by every row of every member).</summary>
    private void PrepareInput()
    {
        Int4Matrix w = _members[0];
        _nibbleOrder = Int4Kernels.UsesNibbleOrder(Path, w.GroupSize);
        _direct = _tokens <= DirectMaxTokens;
        _xrStride = Int4Kernels.NibbleOrderLength(w.PaddedCols);
        _xpStride = _xrStride * TokenBlock;
        if (!_nibbleOrder)
        {
            return;
        }

        if (_direct)
        {
            for (int t = 0; t < _tokens; t++)
            {
                Int4Kernels.PrepareDecodeInput(Input(t), w.GroupSize, _xr.AsSpan(t * _xrStride, _xrStride), _groupSums.AsSpan(t * w.Groups, w.Groups));
            }

            return;
        }

        int cols = w.Cols;
        for (int first = 0, block = 0; first < _tokens; first += TokenBlock, block++)
        {
            int count = Math.Min(TokenBlock, _tokens - first);
            Int4Kernels.PreparePrefillInput(_x.AsSpan((_firstToken + first) * cols, count * cols), count, cols, _xp.AsSpan(block * _xpStride, _xpStride));
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
                ComputeT(part, parts, scratch);
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
    private void ComputeT(int part, int parts, Scratch scratch)
    {
        int cols = _members[0].Cols;
        (int first, int last) = WorkerPool.Range(_rank, part, parts);
        ReadOnlySpan<Half> b = _b.Span;
        Span<float> row = scratch.Dense.AsSpan(0, cols);
        for (int j = first; j < last; j++)
        {
            if (_tokens == 1)
            {
                _t[j] = Int4Kernels.HalfDot(Path, b.Slice(j * cols, cols), Input(0));
                continue;
            }

            // Several tokens: widen B's row once and reuse it for each of them.
            Int4Kernels.WidenHalves(Path, b.Slice(j * cols, cols), row);
            for (int t = 0; t < _tokens; t++)
            {
                _t[t * _rank + j] = Int4Kernels.Dot(Path, row, Input(t));
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
        int memberStart = 0;
        for (int member = 0; member < _memberCount && first < last; member++)
        {
            int memberBlocks = Blocks(_members[member].Rows);
            int from = Math.Max(first, memberStart), to = Math.Min(last, memberStart + memberBlocks);
            if (from < to)
            {
                MemberRows(member, (from - memberStart) * RowBlock, Math.Min(_members[member].Rows, (to - memberStart) * RowBlock), scratch);
            }

            memberStart += memberBlocks;
        }
    }

    /// <summary>Rows [start, end) of one member, written straight into its output.</summary>
    private void MemberRows(int member, int start, int end, Scratch scratch)
    {
        Int4Matrix w = _members[member];
        var view = new RowView(w, _correct ? _a[member].Span : [], _rank);
        float[] y = _outputs[member];
        Span<float> values = scratch.Values.AsSpan(0, _tokens);
        int chunk = scratch.RowsPerChunk(w.Groups);
        for (int row0 = start; row0 < end; row0 += chunk)
        {
            int rowEnd = Math.Min(end, row0 + chunk);
            Tables tables = scratch.Widen(Path, view, row0, rowEnd - row0, 0);
            int row = row0;
            if (_nibbleOrder && _direct)
            {
                for (; row <= rowEnd - 4; row += 4)
                {
                    for (int t = 0; t < _tokens; t++)
                    {
                        FourRows(view, row, tables, row - row0, t).CopyTo(y.AsSpan(((_firstToken + t) * w.Rows) + row, 4));
                    }
                }
            }

            for (; row < rowEnd; row++)
            {
                RowProduct(view, row, tables.Row(row - row0), scratch, values);
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
        int start = first * RowBlock, end = Math.Min(gate.Rows, last * RowBlock);
        var gateView = new RowView(gate, _correct ? _a[0].Span : [], _rank);
        var upView = new RowView(up, _correct ? _a[1].Span : [], _rank);
        float[] hidden = _outputs[0];
        Span<float> gateValues = scratch.Values.AsSpan(0, _tokens), upValues = scratch.UpValues.AsSpan(0, _tokens);
        int chunk = scratch.RowsPerChunk(gate.Groups);
        for (int row0 = start; row0 < end; row0 += chunk)
        {
            int rowEnd = Math.Min(end, row0 + chunk);
            Tables gateTables = scratch.Widen(Path, gateView, row0, rowEnd - row0, 0);
            Tables upTables = scratch.Widen(Path, upView, row0, rowEnd - row0, 1);
            int row = row0;
            if (_nibbleOrder && _direct && gate.PaddedCols <= FourRowSwiGluMaxCols)
            {
                for (; row <= rowEnd - 4; row += 4)
                {
                    for (int t = 0; t < _tokens; t++)
                    {
                        Vector128<float> g = FourRows(gateView, row, gateTables, row - row0, t);
                        Vector128<float> u = FourRows(upView, row, upTables, row - row0, t);
                        Span<float> h = hidden.AsSpan(((_firstToken + t) * gate.Rows) + row, 4);
                        for (int i = 0; i < 4; i++)
                        {
                            float gi = g.GetElement(i);
                            h[i] = gi / (1f + MathF.Exp(-gi)) * u.GetElement(i);
                        }
                    }
                }
            }

            for (; row < rowEnd; row++)
            {
                RowProduct(gateView, row, gateTables.Row(row - row0), scratch, gateValues);
                RowProduct(upView, row, upTables.Row(row - row0), scratch, upValues);
                for (int t = 0; t < _tokens; t++)
                {
                    float g = gateValues[t];
                    hidden[((_firstToken + t) * gate.Rows) + row] = g / (1f + MathF.Exp(-g)) * upValues[t];
                }
            }
        }
    }

    /// <summary>
    /// Rows [row, row + 4) of one member for decode token t, complete (int4 product, zero points, correction, bias):
    /// the four rows share each reduction, which at narrow widths costs as much as the rows' arithmetic.
    /// </summary>
    private Vector128<float> FourRows(in RowView w, int row, in Tables tables, int r, int t)
    {
        int groups = w.Groups;
        Vector128<float> v = Int4Kernels.CodeDot4(Path, w.Codes.Slice(row * w.RowBytes, 4 * w.RowBytes), w.RowBytes, tables.Scales.Slice(r * groups, 4 * groups), groups, w.GroupSize, _xr.AsSpan(t * _xrStride, _xrStride))
                             - Int4Kernels.Dot4(Path, tables.ZeroScales.Slice(r * groups, 4 * groups), groups, _groupSums.AsSpan(t * groups, groups), groups);
        if (_correct)
        {
            v += Int4Kernels.Dot4(Path, tables.A.Slice(r * _rank, 4 * _rank), _rank, _t.AsSpan(t * _rank, _rank), _rank);
        }

        if (!w.Bias.IsEmpty)
        {
            v += Vector128.Create(w.Bias.Slice(row, 4));
        }

        return v;
    }

    /// <summary>
    /// values[t] = Q(W)[row]·x_t + A_row·t_t + bias[row] for the chunk's tokens: one row of one member, complete.
    /// </summary>
    private void RowProduct(in RowView w, int row, in RowTables tables, Scratch scratch, Span<float> values)
    {
        ReadOnlySpan<byte> codes = w.Codes.Slice(row * w.RowBytes, w.RowBytes);
        if (!_nibbleOrder)
        {
            ReadOnlySpan<byte> zeros = w.Zeros.Slice(row * w.ZeroRowBytes, w.ZeroRowBytes);
            if (_direct)
            {
                for (int t = 0; t < _tokens; t++)
                {
                    values[t] = Int4Kernels.ScalarDot(codes, tables.Scales, zeros, w.GroupSize, Input(t));
                }
            }
            else
            {
                Span<float> dense = scratch.Dense.AsSpan(0, w.Cols);
                Int4Encoding.DequantizeRow(codes, w.Scales.Slice(row * w.Groups, w.Groups), zeros, w.GroupSize, dense);
                for (int t = 0; t < _tokens; t++)
                {
                    values[t] = System.Numerics.Tensors.TensorPrimitives.Dot(dense, Input(t));
                }
            }
        }
        else if (_direct)
        {
            for (int t = 0; t < _tokens; t++)
            {
                values[t] = Int4Kernels.CodeDot(Path, codes, tables.Scales, w.GroupSize, _xr.AsSpan(t * _xrStride, _xrStride))
                            - Int4Kernels.Dot(Path, tables.ZeroScales, _groupSums.AsSpan(t * w.Groups, w.Groups));
            }
        }
        else
        {
            int halves = w.PaddedCols / Int4Kernels.HalfBlock;
            ReadOnlySpan<float> halfScales = tables.Scales, halfZeroScales = tables.ZeroScales;
            if (w.GroupSize != Int4Kernels.HalfBlock)
            {
                Span<float> s = scratch.HalfScales.AsSpan(0, halves), z = scratch.HalfZeroScales.AsSpan(0, halves);
                Int4Kernels.ExpandToHalves(tables.Scales, w.GroupSize, s);
                Int4Kernels.ExpandToHalves(tables.ZeroScales, w.GroupSize, z);
                halfScales = s;
                halfZeroScales = z;
            }

            Span<float> sums = scratch.BlockSums.AsSpan(0, TokenBlock);
            for (int first = 0, block = 0; first < _tokens; first += TokenBlock, block++)
            {
                Int4Kernels.CodeDotTokenBlock(Path, codes, halfScales, halfZeroScales, _xp.AsSpan(block * _xpStride, _xpStride), sums);
                sums[..Math.Min(TokenBlock, _tokens - first)].CopyTo(values[first..]);
            }
        }

        // The epilogue: correction and bias join the int4 result before anything is written.
        if (_correct)
        {
            for (int t = 0; t < _tokens; t++)
            {
                values[t] += Int4Kernels.Dot(Path, tables.A, _t.AsSpan(t * _rank, _rank));
            }
        }

        if (!w.Bias.IsEmpty)
        {
            float bias = w.Bias[row];
            for (int t = 0; t < _tokens; t++)
            {
                values[t] += bias;
            }
        }
    }

    private static int Blocks(int rows) => (rows + RowBlock - 1) / RowBlock;

    /// <summary>One member's tensors as spans, resolved once per call and participant rather than once per row.</summary>
    private readonly ref struct RowView
    {
        public RowView(Int4Matrix w, ReadOnlySpan<Half> a, int rank)
        {
            Codes = w.Codes.Span;
            Scales = w.Scales.Span;
            Zeros = w.Zeros.Span;
            Bias = w.Bias.Span;
            A = a;
            Rank = rank;
            Cols = w.Cols;
            PaddedCols = w.PaddedCols;
            Groups = w.Groups;
            GroupSize = w.GroupSize;
            RowBytes = w.RowBytes;
            ZeroRowBytes = w.ZeroRowBytes;
        }

        public ReadOnlySpan<byte> Codes { get; }

        public ReadOnlySpan<Half> Scales { get; }

        public ReadOnlySpan<byte> Zeros { get; }

        public ReadOnlySpan<float> Bias { get; }

        public ReadOnlySpan<Half> A { get; }

        public int Rank { get; }

        public int Cols { get; }

        public int PaddedCols { get; }

        public int Groups { get; }

        public int GroupSize { get; }

        public int RowBytes { get; }

        public int ZeroRowBytes { get; }
    }

    /// <summary>A chunk of rows' widened tables: scales and scale·zero products [rows × groups], A [rows × rank].</summary>
    private readonly ref struct Tables(Span<float> scales, Span<float> zeroScales, Span<float> a, int groups, int rank)
    {
        private readonly Span<float> _scales = scales, _zeroScales = zeroScales, _a = a;

        public ReadOnlySpan<float> Scales => _scales;

        public ReadOnlySpan<float> ZeroScales => _zeroScales;

        public ReadOnlySpan<float> A => _a;

        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        public RowTables Row(int r) => new(_scales.Slice(r * groups, groups), _zeroScales.Slice(r * groups, groups), _a.Slice(r * rank, rank));
    }

    private readonly ref struct RowTables(ReadOnlySpan<float> scales, ReadOnlySpan<float> zeroScales, ReadOnlySpan<float> a)
    {
        public ReadOnlySpan<float> Scales { get; } = scales;

        public ReadOnlySpan<float> ZeroScales { get; } = zeroScales;

        public ReadOnlySpan<float> A { get; } = a;
    }

    /// <summary>
    /// One participant's working memory, sized for the largest product at construction. Every buffer is carved from
    /// one array with a cache line of padding on each side, so no two threads ever write the same line.
    /// </summary>
    private sealed class Scratch
    {
        private const int Pad = 16;
        private readonly float[] _slab;
        private readonly int _tableLength, _aLength;

        public Scratch(int capacity, int maxRank, int maxTokens)
        {
            // Two table sets (gate and up) of RowBlock rows at group size 32; smaller groups widen fewer rows at a time.
            _tableLength = Math.Max(RowBlock * (capacity / Int4Kernels.HalfBlock), capacity);
            _aLength = RowBlock * maxRank;
            int halves = capacity / Int4Kernels.HalfBlock;
            int[] lengths = [_tableLength, _tableLength, _aLength, _tableLength, _tableLength, _aLength, halves, halves, capacity, maxTokens, maxTokens, TokenBlock];
            _slab = new float[lengths.Sum(l => l + Pad) + Pad];
            int offset = Pad;
            var spans = new ArraySegment<float>[lengths.Length];
            for (int i = 0; i < lengths.Length; i++)
            {
                spans[i] = new ArraySegment<float>(_slab, offset, lengths[i]);
                offset += lengths[i] + Pad;
            }

            TableSets = [(spans[0], spans[1], spans[2]), (spans[3], spans[4], spans[5])];
            HalfScales = spans[6];
            HalfZeroScales = spans[7];
            Dense = spans[8];
            Values = spans[9];
            UpValues = spans[10];
            BlockSums = spans[11];
        }

        /// <summary>Scales, scale·zero products and A of a chunk of rows; two sets, for gate and up side by side.</summary>
        private (ArraySegment<float> Scales, ArraySegment<float> ZeroScales, ArraySegment<float> A)[] TableSets { get; }

        public ArraySegment<float> HalfScales { get; }

        public ArraySegment<float> HalfZeroScales { get; }

        /// <summary>A widened row: a dequantised row (scalar prefill) or a row of B.</summary>
        public ArraySegment<float> Dense { get; }

        public ArraySegment<float> Values { get; }

        public ArraySegment<float> UpValues { get; }

        public ArraySegment<float> BlockSums { get; }

        public int RowsPerChunk(int groups) => Math.Clamp(_tableLength / groups, 1, RowBlock);

        /// <summary>Widens rows [row0, row0 + rows) of one member's fp16 tables in one pass each.</summary>
        public Tables Widen(Int4Path path, in RowView w, int row0, int rows, int set)
        {
            (ArraySegment<float> scaleBuffer, ArraySegment<float> zeroBuffer, ArraySegment<float> aBuffer) = TableSets[set];
            int groups = w.Groups;
            Span<float> scales = scaleBuffer.AsSpan(0, rows * groups), zeroScales = zeroBuffer.AsSpan(0, rows * groups);
            Int4Kernels.WidenHalves(path, w.Scales.Slice(row0 * groups, rows * groups), scales);
            if (w.ZeroRowBytes * 2 == groups)
            {
                // Even group counts pack rows' zero points back to back: one flat pass, without per-row slicing
                // (which at two groups a row cost more than the products it served).
                ReadOnlySpan<byte> zeros = w.Zeros.Slice(row0 * w.ZeroRowBytes, rows * w.ZeroRowBytes);
                for (int j = 0; j < scales.Length; j++)
                {
                    zeroScales[j] = scales[j] * ((zeros[j >> 1] >> ((j & 1) * 4)) & 0xF);
                }
            }
            else
            {
                for (int r = 0; r < rows; r++)
                {
                    ReadOnlySpan<byte> zeros = w.Zeros.Slice((row0 + r) * w.ZeroRowBytes, w.ZeroRowBytes);
                    Span<float> rowScales = scales.Slice(r * groups, groups), rowZeroScales = zeroScales.Slice(r * groups, groups);
                    for (int g = 0; g < groups; g++)
                    {
                        rowZeroScales[g] = rowScales[g] * ((zeros[g >> 1] >> ((g & 1) * 4)) & 0xF);
                    }
                }
            }

            Span<float> a = aBuffer.AsSpan(0, rows * w.Rank);
            if (w.Rank > 0)
            {
                Int4Kernels.WidenHalves(path, w.A.Slice(row0 * w.Rank, rows * w.Rank), a);
            }

            return new Tables(scales, zeroScales, a, groups, w.Rank);
        }
    }
}
