using ILGPU;
using ILGPU.Algorithms;
using Half = ILGPU.Half;

namespace GlowQ.Kernels;

/// <summary>
/// The forward pass over a block of prompt tokens at consecutive positions (prefill): each decode kernel's work
/// repeated for every row (token) of the block in one launch, so a prompt of n tokens costs the launches of one token
/// rather than n times them, and every token's rows run in parallel. Rows are row-major with the strides named by
/// each kernel; row t sits at position startPosition + t. Attention is causal: row t attends positions up to its own
/// (within the sliding window when one is set), which the KV cache holds once <see cref="KvCacheStoreRows"/> has
/// stored the block. The arithmetic per row is the decode kernels' own (shared helpers), so a row of a block and a
/// decoded token give the same values — except in the products (B·x, the int4 rows), where a decoded token splits each
/// row over a warp to keep its reads coalesced, while a block has rows enough to give each output one thread.
/// </summary>
public static class PrefillKernels
{
    /// <summary>output[t·dim + i] = table[tokens[t]·dim + i]. Launch with extent = rows · dim.</summary>
    /// <param name="index">t · dim + i.</param>
    /// <param name="table">fp16 [vocab × dim].</param>
    /// <param name="tokens">The block's token ids (validated by the host).</param>
    /// <param name="output">fp32 [rows × dim].</param>
    /// <param name="dim">Model width.</param>
    [GpuKernel]
    public static void EmbeddingLookupRows(Index1D index, ArrayView<Half> table, ArrayView<int> tokens, ArrayView<float> output, int dim)
    {
        int t = index.X / dim;
        output[index] = (float)table[((long)tokens[t] * dim) + index.X - (t * dim)];
    }

    /// <summary>
    /// <see cref="RmsNormKernels.RmsNormPartialSums"/> per row: chunk c of row t, after adding the row's residual delta.
    /// Launch with extent = rows · chunks.
    /// </summary>
    /// <param name="index">t · chunks + c.</param>
    /// <param name="hidden">fp32 [rows × length], updated in place when a delta is given.</param>
    /// <param name="residualDelta">fp32 [rows × length], or a length-0 view.</param>
    /// <param name="partialSums">fp32 [rows × chunks].</param>
    /// <param name="length">Elements per row.</param>
    /// <param name="chunkLength">Elements per chunk.</param>
    /// <param name="chunks">⌈length / chunkLength⌉.</param>
    [GpuKernel]
    public static void RmsNormRowsPartialSums(
        Index1D index, ArrayView<float> hidden, ArrayView<float> residualDelta, ArrayView<float> partialSums, int length, int chunkLength, int chunks)
    {
        int row = index.X / chunks;
        int start = (row * length) + ((index.X - (row * chunks)) * chunkLength);
        partialSums[index] = RmsNormKernels.AddResidualAndSumSquares(hidden, residualDelta, start, Math.Min(start + chunkLength, (row + 1) * length));
    }

    /// <summary>
    /// <see cref="RmsNormKernels.RmsNormApply"/> per row, with row t's own partial sums. Launch with extent = rows · length.
    /// </summary>
    /// <param name="index">t · length + i.</param>
    /// <param name="hidden">fp32 [rows × length].</param>
    /// <param name="partialSums">fp32 [rows × chunks] from <see cref="RmsNormRowsPartialSums"/>.</param>
    /// <param name="weight">fp32 [length].</param>
    /// <param name="output">fp32 [rows × length]; may not alias hidden.</param>
    /// <param name="length">Elements per row.</param>
    /// <param name="chunks">Partial sums per row.</param>
    /// <param name="epsilon">ε of the model's config.</param>
    [GpuKernel]
    public static void RmsNormRowsApply(
        Index1D index, ArrayView<float> hidden, ArrayView<float> partialSums, ArrayView<float> weight, ArrayView<float> output, int length, int chunks, float epsilon)
    {
        int row = index.X / length;
        output[index] = hidden[index] * RmsNormKernels.InverseRms(partialSums, row * chunks, chunks, length, epsilon) * weight[index.X - (row * length)];
    }

    /// <summary>t_row = B·x_row for every row: projected[t·rank + j]. Launch with extent = rows · rank (rank ≥ 1).</summary>
    /// <param name="index">t · rank + j.</param>
    /// <param name="rightFactor">B, fp16 [rank × cols].</param>
    /// <param name="input">fp32 [rows × cols].</param>
    /// <param name="projected">fp32 [rows × rank].</param>
    /// <param name="cols">The unit's input width.</param>
    /// <param name="rank">The correction rank.</param>
    [GpuKernel]
    public static void UnitRightFactorRows(Index1D index, ArrayView<Half> rightFactor, ArrayView<float> input, ArrayView<float> projected, int cols, int rank)
    {
        int t = index.X / rank;
        int j = index.X - (t * rank);
        projected[index] = DenseKernels.HalfRowDot(rightFactor, (long)j * cols, input.SubView((long)t * cols, cols), cols);
    }

    /// <summary>
    /// <see cref="W4GemvKernels.W4GemvCorrected"/> for every row of the block: output[t·outputStride + o]. Launch with
    /// extent = rows · totalRows, after <see cref="UnitRightFactorRows"/> when rank &gt; 0.
    /// </summary>
    /// <param name="index">t · totalRows + o.</param>
    /// <param name="codeWords">As <see cref="W4GemvKernels.W4GemvCorrected"/>.</param>
    /// <param name="scales">As <see cref="W4GemvKernels.W4GemvCorrected"/>.</param>
    /// <param name="zeros">As <see cref="W4GemvKernels.W4GemvCorrected"/>.</param>
    /// <param name="bias">As <see cref="W4GemvKernels.W4GemvCorrected"/>.</param>
    /// <param name="leftFactors">As <see cref="W4GemvKernels.W4GemvCorrected"/>.</param>
    /// <param name="projected">fp32 [rows × rank]; any view when rank is 0.</param>
    /// <param name="input">fp32 [rows × cols].</param>
    /// <param name="output">fp32, row t's outputs at t·outputStride.</param>
    /// <param name="totalRows">Output rows of the stacked unit.</param>
    /// <param name="cols">The unit's input width.</param>
    /// <param name="groupSize">Columns per scale.</param>
    /// <param name="rank">The correction rank; 0 skips the correction.</param>
    /// <param name="outputStride">Elements between consecutive rows of the output.</param>
    [GpuKernel]
    public static void W4GemmCorrected(
        Index1D index,
        ArrayView<uint> codeWords,
        ArrayView<Half> scales,
        ArrayView<byte> zeros,
        ArrayView<float> bias,
        ArrayView<Half> leftFactors,
        ArrayView<float> projected,
        ArrayView<float> input,
        ArrayView<float> output,
        int totalRows,
        int cols,
        int groupSize,
        int rank,
        int outputStride)
    {
        int t = index.X / totalRows;
        int o = index.X - (t * totalRows);
        ArrayView<float> rowProjected = rank > 0 ? projected.SubView((long)t * rank, rank) : projected;
        output[((long)t * outputStride) + o] = W4GemvKernels.CorrectedRow(
            o, codeWords, scales, zeros, bias, leftFactors, rowProjected, input.SubView((long)t * cols, cols), cols, groupSize, rank);
    }

    /// <summary>
    /// <see cref="W4GemvKernels.W4GemvSwiGlu"/> for every row of the block: hidden[t·hiddenRows + o]. Launch with
    /// extent = rows · hiddenRows, after <see cref="UnitRightFactorRows"/> when rank &gt; 0.
    /// </summary>
    /// <param name="index">t · hiddenRows + o.</param>
    /// <param name="codeWords">As <see cref="W4GemvKernels.W4GemvSwiGlu"/>.</param>
    /// <param name="scales">As <see cref="W4GemvKernels.W4GemvSwiGlu"/>.</param>
    /// <param name="zeros">As <see cref="W4GemvKernels.W4GemvSwiGlu"/>.</param>
    /// <param name="bias">As <see cref="W4GemvKernels.W4GemvSwiGlu"/>.</param>
    /// <param name="leftFactors">As <see cref="W4GemvKernels.W4GemvSwiGlu"/>.</param>
    /// <param name="projected">fp32 [rows × rank]; any view when rank is 0.</param>
    /// <param name="input">fp32 [rows × cols].</param>
    /// <param name="hidden">fp32 [rows × hiddenRows].</param>
    /// <param name="hiddenRows">Rows of gate (= rows of up).</param>
    /// <param name="cols">The unit's input width.</param>
    /// <param name="groupSize">Columns per scale.</param>
    /// <param name="rank">The correction rank; 0 skips the correction.</param>
    [GpuKernel]
    public static void W4GemmSwiGlu(
        Index1D index,
        ArrayView<uint> codeWords,
        ArrayView<Half> scales,
        ArrayView<byte> zeros,
        ArrayView<float> bias,
        ArrayView<Half> leftFactors,
        ArrayView<float> projected,
        ArrayView<float> input,
        ArrayView<float> hidden,
        int hiddenRows,
        int cols,
        int groupSize,
        int rank)
    {
        int t = index.X / hiddenRows;
        int o = index.X - (t * hiddenRows);
        ArrayView<float> rowProjected = rank > 0 ? projected.SubView((long)t * rank, rank) : projected;
        ArrayView<float> rowInput = input.SubView((long)t * cols, cols);
        float gate = W4GemvKernels.CorrectedRow(o, codeWords, scales, zeros, bias, leftFactors, rowProjected, rowInput, cols, groupSize, rank);
        float up = W4GemvKernels.CorrectedRow(o + hiddenRows, codeWords, scales, zeros, bias, leftFactors, rowProjected, rowInput, cols, groupSize, rank);
        hidden[index] = Activations.Silu(gate) * up;
    }

    /// <summary>
    /// hidden[t·h + i] = silu(gateUp[t·2h + i]) · gateUp[t·2h + h + i]: the SwiGLU product of separate gate and up units
    /// written side by side per row. Launch with extent = rows · hiddenRows.
    /// </summary>
    /// <param name="index">t · hiddenRows + i.</param>
    /// <param name="gateUp">fp32 [rows × 2·hiddenRows], gate then up in each row.</param>
    /// <param name="hidden">fp32 [rows × hiddenRows].</param>
    /// <param name="hiddenRows">The hidden width h.</param>
    [GpuKernel]
    public static void SwiGluRows(Index1D index, ArrayView<float> gateUp, ArrayView<float> hidden, int hiddenRows)
    {
        int t = index.X / hiddenRows;
        long gate = index.X + ((long)t * hiddenRows);
        hidden[index] = Activations.Silu(gateUp[gate]) * gateUp[gate + hiddenRows];
    }

    /// <summary>
    /// <see cref="RopeKernels.RopeInterleaved"/> on every row, row t at position startPosition + t. Launch with extent =
    /// rows · headsPerRow · headDim/2.
    /// </summary>
    /// <param name="index">t · (headsPerRow · headDim/2) + pair.</param>
    /// <param name="heads">fp32; row t's heads start at t·rowStride; rotated in place.</param>
    /// <param name="cos">cos(p·θ_j) for every position p, fp32 [context × headDim/2].</param>
    /// <param name="sin">sin(p·θ_j) for every position p, fp32 [context × headDim/2].</param>
    /// <param name="headDim">Elements per head (even).</param>
    /// <param name="headsPerRow">Heads rotated per row.</param>
    /// <param name="rowStride">Elements between rows.</param>
    /// <param name="startPosition">Position of row 0.</param>
    [GpuKernel]
    public static void RopeInterleavedRows(
        Index1D index, ArrayView<float> heads, ArrayView<float> cos, ArrayView<float> sin, int headDim, int headsPerRow, int rowStride, int startPosition)
    {
        int half = headDim / 2;
        int pairsPerRow = headsPerRow * half;
        int t = index.X / pairsPerRow;
        int pair = index.X - (t * pairsPerRow);
        int j = pair % half;
        int first = (t * rowStride) + (pair / half * headDim) + (2 * j);
        int angle = ((startPosition + t) * half) + j;
        RopeKernels.Rotate(heads, first, first + 1, cos[angle], sin[angle]);
    }

    /// <summary>As <see cref="RopeInterleavedRows"/>, in the Hugging Face layout (pair j = elements j and j + headDim/2).</summary>
    /// <param name="index">t · (headsPerRow · headDim/2) + pair.</param>
    /// <param name="heads">fp32; row t's heads start at t·rowStride; rotated in place.</param>
    /// <param name="cos">fp32 [context × headDim/2].</param>
    /// <param name="sin">fp32 [context × headDim/2].</param>
    /// <param name="headDim">Elements per head (even).</param>
    /// <param name="headsPerRow">Heads rotated per row.</param>
    /// <param name="rowStride">Elements between rows.</param>
    /// <param name="startPosition">Position of row 0.</param>
    [GpuKernel]
    public static void RopeHalfSplitRows(
        Index1D index, ArrayView<float> heads, ArrayView<float> cos, ArrayView<float> sin, int headDim, int headsPerRow, int rowStride, int startPosition)
    {
        int half = headDim / 2;
        int pairsPerRow = headsPerRow * half;
        int t = index.X / pairsPerRow;
        int pair = index.X - (t * pairsPerRow);
        int j = pair % half;
        int first = (t * rowStride) + (pair / half * headDim) + j;
        int angle = ((startPosition + t) * half) + j;
        RopeKernels.Rotate(heads, first, first + half, cos[angle], sin[angle]);
    }

    /// <summary>
    /// <see cref="AttentionKernels.KvCacheStore"/> for every row, row t at position startPosition + t. Launch with
    /// extent = rows · kvDim.
    /// </summary>
    /// <param name="index">t · kvDim + e.</param>
    /// <param name="tokenKeys">fp32; row t's k at t·rowStride.</param>
    /// <param name="tokenValues">fp32; row t's v at t·rowStride.</param>
    /// <param name="keys">One layer's keys, fp32 [kvHeads × contextLength × headDim].</param>
    /// <param name="values">One layer's values, fp32 [kvHeads × contextLength × headDim].</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="contextLength">Positions the cache holds per kv head.</param>
    /// <param name="kvDim">kvHeads · headDim.</param>
    /// <param name="rowStride">Elements between rows of k (and of v).</param>
    /// <param name="startPosition">Position of row 0.</param>
    [GpuKernel]
    public static void KvCacheStoreRows(
        Index1D index, ArrayView<float> tokenKeys, ArrayView<float> tokenValues, ArrayView<float> keys, ArrayView<float> values,
        int headDim, int contextLength, int kvDim, int rowStride, int startPosition)
    {
        int t = index.X / kvDim;
        int e = index.X - (t * kvDim);
        long at = AttentionKernels.CacheOffset(e, headDim, contextLength, startPosition + t);
        keys[at] = tokenKeys[(t * rowStride) + e];
        values[at] = tokenValues[(t * rowStride) + e];
    }

    /// <summary>As <see cref="KvCacheStoreRows"/>, into an fp16 cache rounded as <see cref="AttentionKernels.KvCacheStoreHalf"/> does.</summary>
    /// <param name="index">t · kvDim + e.</param>
    /// <param name="tokenKeys">fp32; row t's k at t·rowStride.</param>
    /// <param name="tokenValues">fp32; row t's v at t·rowStride.</param>
    /// <param name="keys">fp16 [kvHeads × contextLength × headDim].</param>
    /// <param name="values">fp16 [kvHeads × contextLength × headDim].</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="contextLength">Positions the cache holds per kv head.</param>
    /// <param name="kvDim">kvHeads · headDim.</param>
    /// <param name="rowStride">Elements between rows of k (and of v).</param>
    /// <param name="startPosition">Position of row 0.</param>
    [GpuKernel]
    public static void KvCacheStoreHalfRows(
        Index1D index, ArrayView<float> tokenKeys, ArrayView<float> tokenValues, ArrayView<Half> keys, ArrayView<Half> values,
        int headDim, int contextLength, int kvDim, int rowStride, int startPosition)
    {
        int t = index.X / kvDim;
        int e = index.X - (t * kvDim);
        long at = AttentionKernels.CacheOffset(e, headDim, contextLength, startPosition + t);
        keys[at] = AttentionKernels.RoundToHalf(tokenKeys[(t * rowStride) + e]);
        values[at] = AttentionKernels.RoundToHalf(tokenValues[(t * rowStride) + e]);
    }

    /// <summary>
    /// Causal scores: scores[(t·heads + h)·maxSpan + s] = scale · q_{t,h}·k_{first_t + s} for s &lt; span_t, where row t
    /// at position p = startPosition + t attends first_t = max(0, p − window + 1) (0 without a window) … p. Entries
    /// past span_t are left as they are (nothing reads them). Launch with extent = rows · heads · maxSpan.
    /// </summary>
    /// <param name="index">(t · heads + h) · maxSpan + s.</param>
    /// <param name="query">fp32; row t's query heads at t·queryStride.</param>
    /// <param name="keys">One layer's keys, fp32 [kvHeads × contextLength × headDim].</param>
    /// <param name="scores">fp32 [rows × heads × maxSpan].</param>
    /// <param name="heads">Query heads; a multiple of kvHeads.</param>
    /// <param name="kvHeads">Key/value heads.</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="contextLength">Positions the cache holds per kv head.</param>
    /// <param name="startPosition">Position of row 0.</param>
    /// <param name="window">Sliding window in positions, or 0 for none.</param>
    /// <param name="maxSpan">The longest row's span (the last row's), the stride of scores.</param>
    /// <param name="queryStride">Elements between rows of the query.</param>
    /// <param name="scale">1 / √headDim.</param>
    [GpuKernel]
    public static void AttentionScoresRows(
        Index1D index, ArrayView<float> query, ArrayView<float> keys, ArrayView<float> scores,
        int heads, int kvHeads, int headDim, int contextLength, int startPosition, int window, int maxSpan, int queryStride, float scale)
    {
        if (!ScoreSlot(index.X, heads, kvHeads, headDim, contextLength, startPosition, window, maxSpan, queryStride, out long keyStart, out int queryStart))
        {
            return;
        }

        scores[index] = AttentionKernels.QueryKeyDot(query, queryStart, keys, keyStart, headDim) * scale;
    }

    /// <summary>As <see cref="AttentionScoresRows"/>, over an fp16 key cache widened exactly.</summary>
    /// <param name="index">(t · heads + h) · maxSpan + s.</param>
    /// <param name="query">fp32; row t's query heads at t·queryStride.</param>
    /// <param name="keys">fp16 [kvHeads × contextLength × headDim].</param>
    /// <param name="scores">fp32 [rows × heads × maxSpan].</param>
    /// <param name="heads">Query heads; a multiple of kvHeads.</param>
    /// <param name="kvHeads">Key/value heads.</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="contextLength">Positions the cache holds per kv head.</param>
    /// <param name="startPosition">Position of row 0.</param>
    /// <param name="window">Sliding window in positions, or 0 for none.</param>
    /// <param name="maxSpan">The stride of scores.</param>
    /// <param name="queryStride">Elements between rows of the query.</param>
    /// <param name="scale">1 / √headDim.</param>
    [GpuKernel]
    public static void AttentionScoresHalfRows(
        Index1D index, ArrayView<float> query, ArrayView<Half> keys, ArrayView<float> scores,
        int heads, int kvHeads, int headDim, int contextLength, int startPosition, int window, int maxSpan, int queryStride, float scale)
    {
        if (!ScoreSlot(index.X, heads, kvHeads, headDim, contextLength, startPosition, window, maxSpan, queryStride, out long keyStart, out int queryStart))
        {
            return;
        }

        scores[index] = AttentionKernels.QueryKeyDot(query, queryStart, keys, keyStart, headDim) * scale;
    }

    /// <summary>Softmax of each (row, head)'s span_t scores in place. Launch with extent = rows · heads.</summary>
    /// <param name="index">t · heads + h.</param>
    /// <param name="scores">fp32 [rows × heads × maxSpan].</param>
    /// <param name="heads">Query heads.</param>
    /// <param name="startPosition">Position of row 0.</param>
    /// <param name="window">Sliding window in positions, or 0 for none.</param>
    /// <param name="maxSpan">The stride of scores.</param>
    [GpuKernel]
    public static void AttentionSoftmaxRows(Index1D index, ArrayView<float> scores, int heads, int startPosition, int window, int maxSpan)
    {
        int position = startPosition + (index.X / heads);
        AttentionKernels.SoftmaxInPlace(scores, index.X * maxSpan, position - FirstAttended(position, window) + 1);
    }

    /// <summary>
    /// output[t·heads·headDim + h·headDim + d] = Σ_s weights[(t·heads + h)·maxSpan + s] · v_{first_t + s}[d]. Launch with
    /// extent = rows · heads · headDim, after <see cref="AttentionSoftmaxRows"/>.
    /// </summary>
    /// <param name="index">t · heads · headDim + h · headDim + d.</param>
    /// <param name="weights">fp32 [rows × heads × maxSpan], softmaxed.</param>
    /// <param name="values">One layer's values, fp32 [kvHeads × contextLength × headDim].</param>
    /// <param name="output">fp32 [rows × heads · headDim].</param>
    /// <param name="heads">Query heads; a multiple of kvHeads.</param>
    /// <param name="kvHeads">Key/value heads.</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="contextLength">Positions the cache holds per kv head.</param>
    /// <param name="startPosition">Position of row 0.</param>
    /// <param name="window">Sliding window in positions, or 0 for none.</param>
    /// <param name="maxSpan">The stride of weights.</param>
    [GpuKernel]
    public static void AttentionWeightedSumRows(
        Index1D index, ArrayView<float> weights, ArrayView<float> values, ArrayView<float> output,
        int heads, int kvHeads, int headDim, int contextLength, int startPosition, int window, int maxSpan)
    {
        int span = SumSlot(index.X, heads, kvHeads, headDim, contextLength, startPosition, window, maxSpan, out long valueStart, out int weightStart);
        output[index] = AttentionKernels.WeightedValueSum(weights, weightStart, values, valueStart, span, headDim);
    }

    /// <summary>As <see cref="AttentionWeightedSumRows"/>, over an fp16 value cache widened exactly.</summary>
    /// <param name="index">t · heads · headDim + h · headDim + d.</param>
    /// <param name="weights">fp32 [rows × heads × maxSpan], softmaxed.</param>
    /// <param name="values">fp16 [kvHeads × contextLength × headDim].</param>
    /// <param name="output">fp32 [rows × heads · headDim].</param>
    /// <param name="heads">Query heads; a multiple of kvHeads.</param>
    /// <param name="kvHeads">Key/value heads.</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="contextLength">Positions the cache holds per kv head.</param>
    /// <param name="startPosition">Position of row 0.</param>
    /// <param name="window">Sliding window in positions, or 0 for none.</param>
    /// <param name="maxSpan">The stride of weights.</param>
    [GpuKernel]
    public static void AttentionWeightedSumHalfRows(
        Index1D index, ArrayView<float> weights, ArrayView<Half> values, ArrayView<float> output,
        int heads, int kvHeads, int headDim, int contextLength, int startPosition, int window, int maxSpan)
    {
        int span = SumSlot(index.X, heads, kvHeads, headDim, contextLength, startPosition, window, maxSpan, out long valueStart, out int weightStart);
        output[index] = AttentionKernels.WeightedValueSum(weights, weightStart, values, valueStart, span, headDim);
    }

    /// <summary>
    /// Where score index (t·heads + h)·maxSpan + s reads: row t's query head h and the key at first_t + s; false for an
    /// s past row t's span (a slot of the stride that nothing uses).
    /// </summary>
    private static bool ScoreSlot(
        int index, int heads, int kvHeads, int headDim, int contextLength, int startPosition, int window, int maxSpan, int queryStride,
        out long keyStart, out int queryStart)
    {
        int rowHead = index / maxSpan;
        int s = index - (rowHead * maxSpan);
        int t = rowHead / heads;
        int head = rowHead - (t * heads);
        int first = FirstAttended(startPosition + t, window);
        keyStart = AttentionKernels.KeyOffset(head, s, heads, kvHeads, headDim, contextLength, first);
        queryStart = (t * queryStride) + (head * headDim);
        return s <= startPosition + t - first;
    }

    /// <summary>
    /// What output index t·heads·headDim + h·headDim + d sums: row t's weights for head h and element d of the values
    /// from first_t on; returns span_t.
    /// </summary>
    private static int SumSlot(
        int index, int heads, int kvHeads, int headDim, int contextLength, int startPosition, int window, int maxSpan,
        out long valueStart, out int weightStart)
    {
        int rowHead = index / headDim;
        int d = index - (rowHead * headDim);
        int t = rowHead / heads;
        int head = rowHead - (t * heads);
        int first = FirstAttended(startPosition + t, window);
        valueStart = AttentionKernels.KeyOffset(head, 0, heads, kvHeads, headDim, contextLength, first) + d;
        weightStart = rowHead * maxSpan;
        return startPosition + t - first + 1;
    }

    /// <summary>The first position a token at <paramref name="position"/> attends: within the window, or 0 without one.</summary>
    private static int FirstAttended(int position, int window) => window > 0 ? Math.Max(0, position - window + 1) : 0;
}
