using ILGPU;
using Half = ILGPU.Half;

namespace GlowQ.Kernels;

/// <summary>
/// Decode-time (one token) int4 products of a GlowQ unit with the correction fused (glowq-method.md §5), in the
/// layout of formats/glq-v1.md §6. Activations are fp32 for now: the CPU runtime's residual stream and every
/// intermediate are fp32, so the GPU path can be checked against it value for value; fp16 activations only halve
/// bytes that are tiny next to the weights at decode.
/// <para>
/// A unit's members are stacked: their rows are concatenated (q, then k, then v; or gate, then up), which the §6
/// layout allows without repacking because every per-row tensor (codes, scales, zero points, A, bias) is row-major
/// and the members share columns and group size. Codes are read as little-endian u32 words, word w of a row holding
/// columns 8w…8w+7 in nibbles 0…7, so the group size must be a multiple of 8 (every real configuration is: 32, 64,
/// 128) for rows and groups to start on whole words. fp16 is <see cref="ILGPU.Half"/>, bit-identical to
/// <see cref="System.Half"/>.
/// </para>
/// </summary>
public static class W4GemvKernels
{
    /// <summary>Codes in one u32 word.</summary>
    public const int CodesPerWord = 8;

    /// <summary>
    /// t = B·x, the rank-r projection every member of a unit shares: one warp per row of B. Launch with extent =
    /// rank · <see cref="Warp.WarpSize"/>; a unit with rank 0 or a masked-off unit launches nothing.
    /// </summary>
    /// <param name="index">j · warp size + lane, for row j of B (0 ≤ j &lt; rank).</param>
    /// <param name="rightFactor">B, fp16 [rank × cols] row-major: at least rank·cols elements.</param>
    /// <param name="input">x, fp32: at least cols elements.</param>
    /// <param name="projected">t, fp32: at least rank elements; element j is written (by lane 0).</param>
    /// <param name="cols">The unit's input width (unpadded).</param>
    [GpuKernel]
    public static void UnitRightFactor(Index1D index, ArrayView<Half> rightFactor, ArrayView<float> input, ArrayView<float> projected, int cols)
    {
        int factorRow = index.X / Warp.WarpSize;
        float sum = WarpMath.Sum(WarpMath.LaneHalfRowDot(rightFactor, (long)factorRow * cols, input, cols));
        if (Warp.LaneIdx == 0)
        {
            projected[factorRow] = sum;
        }
    }

    /// <summary>
    /// y[o] = Q(W)[o]·x + A[o]·t (+ bias[o]) for every row o of a stacked unit, fp32 accumulation. One warp per output
    /// row, lane l reading code words l, l + warp, … of the row, so a warp's loads of one step are adjacent words (the
    /// thread-per-row form reads one word per row per step, 32 rows apart). Launch with extent = the unit's total rows
    /// (the sum of its members' rows) · <see cref="Warp.WarpSize"/>; member i's output is then
    /// y[offset_i … offset_i + rows_i). Launch <see cref="UnitRightFactor"/> first when rank &gt; 0.
    /// </summary>
    /// <param name="index">o · warp size + lane, for output row o of the stacked unit.</param>
    /// <param name="codeWords">Packed codes as u32 words, [totalRows × paddedCols/8], paddedCols = ⌈cols/groupSize⌉·groupSize.</param>
    /// <param name="scales">fp16 scales, [totalRows × groups], groups = ⌈cols/groupSize⌉.</param>
    /// <param name="zeros">Zero points packed two per byte (low nibble = even group), [totalRows × ⌈groups/2⌉] bytes.</param>
    /// <param name="bias">fp32 bias [totalRows], or a length-0 view for a unit without bias.</param>
    /// <param name="leftFactors">The members' A stacked, fp16 [totalRows × rank]; any (e.g. length-0) view when rank is 0.</param>
    /// <param name="projected">t = B·x from <see cref="UnitRightFactor"/>, at least rank elements; any view when rank is 0.</param>
    /// <param name="input">x, fp32: at least cols elements.</param>
    /// <param name="output">y, fp32: at least totalRows elements; element o is written (by lane 0).</param>
    /// <param name="cols">The unit's input width (unpadded).</param>
    /// <param name="groupSize">Columns per scale, a multiple of <see cref="CodesPerWord"/>.</param>
    /// <param name="rank">The correction rank; 0 for a rank-0 or masked-off unit, which reads neither A nor t.</param>
    [GpuKernel]
    public static void W4GemvCorrected(
        Index1D index,
        ArrayView<uint> codeWords,
        ArrayView<Half> scales,
        ArrayView<byte> zeros,
        ArrayView<float> bias,
        ArrayView<Half> leftFactors,
        ArrayView<float> projected,
        ArrayView<float> input,
        ArrayView<float> output,
        int cols,
        int groupSize,
        int rank)
    {
        int row = index.X / Warp.WarpSize;
        float value = WarpMath.Sum(LaneCorrectedRowPartial(row, codeWords, scales, zeros, leftFactors, projected, input, cols, groupSize, rank));
        if (Warp.LaneIdx == 0)
        {
            output[row] = value + (bias.Length > 0 ? bias[row] : 0f);
        }
    }

    /// <summary>
    /// hidden[o] = silu(gate[o])·up[o], where gate and up are the corrected rows of a stacked gate/up unit (gate rows
    /// 0…hiddenRows−1, then up rows hiddenRows…2·hiddenRows−1). One warp forms both rows, so only the product is
    /// written. Launch with extent = hiddenRows · <see cref="Warp.WarpSize"/>, after <see cref="UnitRightFactor"/> when
    /// rank &gt; 0.
    /// </summary>
    /// <param name="index">o · warp size + lane, for hidden row o (0 ≤ o &lt; hiddenRows).</param>
    /// <param name="codeWords">As <see cref="W4GemvCorrected"/>, with totalRows = 2·hiddenRows.</param>
    /// <param name="scales">As <see cref="W4GemvCorrected"/>, with totalRows = 2·hiddenRows.</param>
    /// <param name="zeros">As <see cref="W4GemvCorrected"/>, with totalRows = 2·hiddenRows.</param>
    /// <param name="bias">fp32 [2·hiddenRows] (gate's, then up's), or a length-0 view.</param>
    /// <param name="leftFactors">A of gate then up, fp16 [2·hiddenRows × rank]; any view when rank is 0.</param>
    /// <param name="projected">t = B·x, at least rank elements; any view when rank is 0.</param>
    /// <param name="input">x, fp32: at least cols elements.</param>
    /// <param name="hidden">fp32: at least hiddenRows elements; element o is written (by lane 0).</param>
    /// <param name="hiddenRows">Rows of gate (= rows of up).</param>
    /// <param name="cols">The unit's input width (unpadded).</param>
    /// <param name="groupSize">Columns per scale, a multiple of <see cref="CodesPerWord"/>.</param>
    /// <param name="rank">The correction rank; 0 skips the correction.</param>
    [GpuKernel]
    public static void W4GemvSwiGlu(
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
        int row = index.X / Warp.WarpSize;
        float gate = WarpMath.Sum(LaneCorrectedRowPartial(row, codeWords, scales, zeros, leftFactors, projected, input, cols, groupSize, rank));
        float up = WarpMath.Sum(LaneCorrectedRowPartial(row + hiddenRows, codeWords, scales, zeros, leftFactors, projected, input, cols, groupSize, rank));
        if (Warp.LaneIdx == 0)
        {
            if (bias.Length > 0)
            {
                gate += bias[row];
                up += bias[row + hiddenRows];
            }

            hidden[row] = Activations.Silu(gate) * up;
        }
    }

    /// <summary>
    /// This lane's share of Q(W)[row]·x + A[row]·t: code words w ≡ lane (mod warp) of the row, each scaled by its own
    /// group's scale, and factor terms j ≡ lane (mod warp). The warp's sum of the shares is the row (without bias).
    /// </summary>
    private static float LaneCorrectedRowPartial(
        int row,
        ArrayView<uint> codeWords,
        ArrayView<Half> scales,
        ArrayView<byte> zeros,
        ArrayView<Half> leftFactors,
        ArrayView<float> projected,
        ArrayView<float> input,
        int cols,
        int groupSize,
        int rank)
    {
        int lane = Warp.LaneIdx, lanes = Warp.WarpSize;
        var layout = new QuantizedRowLayout(row, cols, groupSize);
        float total = 0f;
        for (int w = lane; w < layout.WordsWithColumns; w += lanes)
        {
            int g = w / layout.WordsPerGroup;
            int zero = layout.ZeroPoint(zeros, g);
            uint word = codeWords[layout.FirstWord + w];
            int col = w * CodesPerWord;
            int count = Math.Min(CodesPerWord, cols - col);
            float wordSum = 0f;
            for (int k = 0; k < count; k++)
            {
                int code = (int)((word >> (4 * k)) & 0xF);
                wordSum += (code - zero) * input[col + k];
            }

            total += wordSum * (float)scales[layout.FirstScale + g];
        }

        long factorStart = (long)row * rank;
        for (int j = lane; j < rank; j += lanes)
        {
            total += (float)leftFactors[factorStart + j] * projected[j];
        }

        return total;
    }

    /// <summary>
    /// Q(W)[row]·x + A[row]·t (+ bias[row]) on one thread, in column order: the prefill (rows) kernels' arithmetic, where
    /// a block supplies enough rows to fill the GPU without splitting a row across a warp.
    /// </summary>
    internal static float CorrectedRow(
        int row,
        ArrayView<uint> codeWords,
        ArrayView<Half> scales,
        ArrayView<byte> zeros,
        ArrayView<float> bias,
        ArrayView<Half> leftFactors,
        ArrayView<float> projected,
        ArrayView<float> input,
        int cols,
        int groupSize,
        int rank)
    {
        float value = QuantizedRowDot(row, codeWords, scales, zeros, input, cols, groupSize);
        if (rank > 0)
        {
            long factorStart = (long)row * rank;
            float correction = 0f;
            for (int j = 0; j < rank; j++)
            {
                correction += (float)leftFactors[factorStart + j] * projected[j];
            }

            value += correction;
        }

        if (bias.Length > 0)
        {
            value += bias[row];
        }

        return value;
    }

    /// <summary>
    /// Q(W)[row]·x. Each group sums (q − z)·x, exact small integers times x, and is scaled once, so a row costs one
    /// scale multiply per group rather than per code. Codes past cols (the row's padding) are never read against x.
    /// </summary>
    private static float QuantizedRowDot(int row, ArrayView<uint> codeWords, ArrayView<Half> scales, ArrayView<byte> zeros, ArrayView<float> input, int cols, int groupSize)
    {
        var layout = new QuantizedRowLayout(row, cols, groupSize);
        float total = 0f;
        for (int g = 0; g < layout.Groups; g++)
        {
            int zero = layout.ZeroPoint(zeros, g);
            int firstWord = g * layout.WordsPerGroup;
            int endWord = Math.Min(firstWord + layout.WordsPerGroup, layout.WordsWithColumns);
            float groupSum = 0f;
            for (int w = firstWord; w < endWord; w++)
            {
                uint word = codeWords[layout.FirstWord + w];
                int col = w * CodesPerWord;
                int count = Math.Min(CodesPerWord, cols - col);
                for (int k = 0; k < count; k++)
                {
                    int code = (int)((word >> (4 * k)) & 0xF);
                    groupSum += (code - zero) * input[col + k];
                }
            }

            total += groupSum * (float)scales[layout.FirstScale + g];
        }

        return total;
    }

    /// <summary>Where row <c>row</c> of a stacked unit starts in each of its tensors (formats/glq-v1.md §6), and its groups' sizes.</summary>
    private readonly struct QuantizedRowLayout
    {
        public QuantizedRowLayout(int row, int cols, int groupSize)
        {
            Groups = (cols + groupSize - 1) / groupSize;
            WordsPerGroup = groupSize / CodesPerWord;
            WordsWithColumns = (cols + CodesPerWord - 1) / CodesPerWord;
            FirstWord = (long)row * Groups * WordsPerGroup;
            FirstScale = (long)row * Groups;
            FirstZeroByte = (long)row * ((Groups + 1) / 2);
        }

        public int Groups { get; }

        public int WordsPerGroup { get; }

        /// <summary>Code words that hold at least one real column (the rest of the row is padding).</summary>
        public int WordsWithColumns { get; }

        public long FirstWord { get; }

        public long FirstScale { get; }

        public long FirstZeroByte { get; }

        /// <summary>Group g's zero point: zero points are packed two per byte, the even group in the low nibble.</summary>
        public int ZeroPoint(ArrayView<byte> zeros, int g) => (zeros[FirstZeroByte + (g >> 1)] >> ((g & 1) * 4)) & 0xF;
    }
}
