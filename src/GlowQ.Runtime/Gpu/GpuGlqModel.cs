using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Cuda;
using GlowQ.Runtime.Kernels;
using GlowQ.Runtime.Model;

namespace GlowQ.Runtime.Gpu;

/// <summary>
/// A .glq model run on a GPU by the embedded kernels: the same forward pass as the CPU runtime (<see cref="GlqRuntimeModel"/>),
/// one token at a time, with every weight, the KV cache and every activation in device memory, so only token ids and
/// the logits that are asked for cross to the host. The restoration mask is fixed at load time: masked-off units
/// run the plain int4 kernel and their correction factors are never uploaded.
/// </summary>
public sealed unsafe partial class GpuGlqModel : ILanguageModel, IDeviceArgmax, IDeviceSampler
{
    private const int NormChunk = 256;
    private const int ArgmaxChunk = 256;

    /// <summary>The W4 kernels read codes as u32 words of eight, so a quantisation group must hold whole words.</summary>
    private const int CodesPerWord = 8;

    private readonly IGpuDevice _device;
    private readonly GpuKernels _kernels;
    private readonly ModelConfig _c;
    private readonly List<DevicePointer> _allocations = [];
    private readonly RotaryEmbedding _rope;
    private readonly float _attentionScale;

    // Weights.
    private readonly DeviceView<Half> _embedding, _head;
    private readonly DeviceView<float>[] _attentionNorms, _ffnNorms;
    private readonly DeviceView<float> _finalNorm, _cos, _sin;
    private readonly GpuUnitCall[][][] _calls; // [layer][group][call]
    private readonly bool[] _fusedSwiGlu; // per layer: gate/up is one unit, so its kernel writes silu(gate)·up itself

    // The file's tensors mapped for the device (integrated GPUs): kernels read weights where the file holds them.
    private readonly bool _mapWeights;
    private readonly nint _mappedHostStart;
    private readonly long _mappedLength;
    private readonly DevicePointer _mappedDeviceStart;
    private long _mappedWeightBytes;

    // KV cache, one fp32 or fp16 array per layer for keys and one for values: [kvHeads × context × headDim].
    private readonly DeviceView<float>[] _keys = [], _values = [];
    private readonly DeviceView<Half>[] _halfKeys = [], _halfValues = [];

    // Activations.
    private readonly DeviceView<float> _x, _xNorm, _partialSums, _qkv, _attention, _delta, _gateUp, _hidden, _projected, _scores, _logits, _argmaxMaxima;
    private readonly DeviceView<int> _argmaxIndices, _argmaxResult;
    private readonly DeviceView<int> _tokens;
    private readonly int _normChunks, _qkvStride, _block;

    // Decode attention over spans longer than _attentionChunk runs split into chunks of that many positions.
    private readonly int _attentionChunk;
    private readonly bool _decodeGraphs;
    private readonly DeviceView<float> _chunkMaxima, _chunkSums, _chunkPartials;

    private GpuGlqModel(GlqFile file, GlqModel glq, byte[] mask, InferenceOptions options, IGpuDevice device, GpuWeightPlacement placement)
    {
        _device = device;
        File = file;
        Glq = glq;
        Mask = mask;
        _c = glq.Config;
        ContextLength = options.ContextLengthFor(_c);
        KvCacheDtype = options.KvCacheDtype;
        _rope = new RotaryEmbedding(_c);
        _attentionScale = 1f / MathF.Sqrt(_c.HeadDim);
        try
        {
            _kernels = GpuKernels.Load(device);
            _mapWeights = placement == GpuWeightPlacement.MappedFile || (placement == GpuWeightPlacement.Auto && device.IsIntegrated);
            if (_mapWeights)
            {
                (_mappedHostStart, _mappedLength) = TensorRegion(file);
                _mappedDeviceStart = device.MapHostMemory(_mappedHostStart, _mappedLength);
            }

            _embedding = HalfMatrix(LlamaTensorNames.Embedding, _c.VocabSize, _c.Dim);
            _head = _c.TiedEmbeddings ? _embedding : HalfMatrix(LlamaTensorNames.OutputHead, _c.VocabSize, _c.Dim);
            _attentionNorms = [.. Enumerable.Range(0, _c.Layers).Select(l => UploadVector(LlamaTensorNames.AttentionNorm(l), _c.Dim))];
            _ffnNorms = [.. Enumerable.Range(0, _c.Layers).Select(l => UploadVector(LlamaTensorNames.FfnNorm(l), _c.Dim))];
            _finalNorm = UploadVector(LlamaTensorNames.FinalNorm, _c.Dim);
            UnitCall[][][] plan = ProjectionPlan.Calls(file, glq, out _);
            _calls = [.. plan.Select(layer => layer.Select((group, g) => group.Select(call => PlaceCall(call, g)).ToArray()).ToArray())];
            // Fused only when gate and up are one unit stacked in one slab: mapped weights keep the members apart.
            _fusedSwiGlu = [.. _calls.Select(layer => layer[ProjectionPlan.GateUpGroup] is [{ Slabs: [var slab] }] && slab.Rows == 2 * _c.HiddenDim)];
            WeightBytes = DeviceBytes + _mappedWeightBytes;
            (_cos, _sin) = UploadRotaryTables();

            long cacheElements = (long)_c.KvHeads * ContextLength * _c.HeadDim;
            if (KvCacheDtype == KvCacheDtype.F16)
            {
                _halfKeys = [.. Enumerable.Range(0, _c.Layers).Select(_ => Allocate<Half>(cacheElements))];
                _halfValues = [.. Enumerable.Range(0, _c.Layers).Select(_ => Allocate<Half>(cacheElements))];
            }
            else
            {
                _keys = [.. Enumerable.Range(0, _c.Layers).Select(_ => Allocate<float>(cacheElements))];
                _values = [.. Enumerable.Range(0, _c.Layers).Select(_ => Allocate<float>(cacheElements))];
            }

            // Activations hold a whole prefill block; a decoded token uses row 0.
            _block = Math.Clamp(options.PrefillChunk, 1, ContextLength);
            _normChunks = (_c.Dim + NormChunk - 1) / NormChunk;
            _qkvStride = _c.QDim + (2 * _c.KvDim);
            int maxRank = Math.Max(1, _calls.SelectMany(l => l).SelectMany(g => g).Max(call => call.Rank));
            _tokens = Allocate<int>(_block);
            _x = Allocate<float>((long)_block * _c.Dim);
            _xNorm = Allocate<float>((long)_block * _c.Dim);
            _partialSums = Allocate<float>((long)_block * _normChunks);
            _qkv = Allocate<float>((long)_block * _qkvStride);
            _attention = Allocate<float>((long)_block * _c.QDim);
            _delta = Allocate<float>((long)_block * _c.Dim);
            _gateUp = Allocate<float>(2L * _block * _c.HiddenDim);
            _hidden = Allocate<float>((long)_block * _c.HiddenDim);
            _projected = Allocate<float>((long)_block * maxRank);
            _scores = Allocate<float>((long)_block * _c.Heads * ContextLength);
            _attentionChunk = options.AttentionChunk > 0
                ? options.AttentionChunk
                : throw new ArgumentOutOfRangeException(nameof(options), options.AttentionChunk, "the attention chunk must be at least one position");
            _decodeGraphs = options.DecodeGraphs;
            int attentionChunks = ((ContextLength - 1) / _attentionChunk) + 1;
            _chunkMaxima = Allocate<float>((long)_c.Heads * attentionChunks);
            _chunkSums = Allocate<float>((long)_c.Heads * attentionChunks);
            _chunkPartials = Allocate<float>((long)_c.Heads * attentionChunks * _c.HeadDim);
            _logits = Allocate<float>(_c.VocabSize);
            int argmaxChunks = (_c.VocabSize + ArgmaxChunk - 1) / ArgmaxChunk;
            _argmaxMaxima = Allocate<float>(argmaxChunks);
            _argmaxIndices = Allocate<int>(argmaxChunks);
            _argmaxResult = Allocate<int>(1);
            int sampleChunks = (_c.VocabSize + SampleChunk - 1) / SampleChunk;
            _sampleScores = Allocate<float>((long)sampleChunks * GpuKernels.MaxSamplingTopK);
            _sampleIds = Allocate<int>((long)sampleChunks * GpuKernels.MaxSamplingTopK);
            _sampleMaxima = Allocate<float>(sampleChunks);
            _sampleSums = Allocate<float>(sampleChunks);
            _penalisedTokens = Allocate<int>(Math.Min(_c.VocabSize, ContextLength));
            _sampleResult = Allocate<int>(1);
        }
        catch
        {
            FreeAll();
            throw;
        }
    }

    /// <summary>The file's metadata: units, scores, default mask, tokenizer.</summary>
    public GlqModel Glq { get; }

    /// <summary>The restoration mask in use, one entry per unit.</summary>
    public IReadOnlyList<byte> Mask { get; }

    public GlqFile File { get; }

    public ModelConfig Config => _c;

    public int ContextLength { get; }

    public KvCacheDtype KvCacheDtype { get; }

    /// <summary>Host threads: the GPU model drives the device from the calling thread only.</summary>
    public int Threads => 1;

    /// <summary>
    /// Bytes of weights the kernels read (norms, embedding, head, int4 projections, restored units' factors), in device
    /// memory or mapped from the file.
    /// </summary>
    public long WeightBytes { get; }

    /// <summary>Every byte this model allocated on the device: weights (unless mapped), rotary tables, KV cache and activations.</summary>
    public long DeviceBytes { get; private set; }

    /// <summary>Whether the kernels read the weights in place from the mapped file rather than from a device copy.</summary>
    public bool WeightsMapped => _mapWeights;

    public string DeviceDescription => _device.Description;

    /// <summary>Places <paramref name="file"/> on <paramref name="device"/>; the model then owns both and disposes them.</summary>
    /// <param name="mask">One entry (0 or 1) per unit of the file; null uses the file's default mask.</param>
    /// <param name="placement">Where the kernels read the weights; by default mapped from the file on an integrated GPU, copied otherwise.</param>
    public static GpuGlqModel Open(
        GlqFile file, IGpuDevice device, byte[]? mask = null, InferenceOptions? options = null, GpuWeightPlacement placement = GpuWeightPlacement.Auto)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(device);
        GlqModel glq = GlqModel.Read(file);
        if (glq.Quantization.GroupSize % CodesPerWord != 0)
        {
            throw new ModelFormatException(
                $"{file.Name}: group size {glq.Quantization.GroupSize} is not a multiple of {CodesPerWord}, which the GPU kernels read as whole 32-bit words; use --backend cpu");
        }

        return new GpuGlqModel(file, glq, RestorationMask.For(file, glq, mask), options ?? new InferenceOptions(), device, placement);
    }

    public void Forward(ReadOnlySpan<int> tokens, int startPosition, Span<float> logits, bool allPositions = false)
    {
        ForwardArguments.Check(tokens, startPosition, ContextLength, _c.VocabSize, logits.Length, allPositions);
        int vocab = _c.VocabSize;
        if (!allPositions)
        {
            RunToLastLogits(tokens, startPosition);
            _device.Download(_logits, logits[..vocab]);
            return;
        }

        for (int done = 0; done < tokens.Length; done += _block)
        {
            int n = Math.Min(_block, tokens.Length - done);
            RunBlock(tokens.Slice(done, n), startPosition + done);
            for (int t = 0; t < n; t++)
            {
                Head(t);
                _device.Download(_logits, logits.Slice((done + t) * vocab, vocab));
            }
        }
    }

    public int ForwardArgmax(ReadOnlySpan<int> tokens, int startPosition)
    {
        ForwardArguments.Check(tokens, startPosition, ContextLength, _c.VocabSize, _c.VocabSize, allPositions: false);
        RunToLastLogits(tokens, startPosition);
        _kernels.LaunchArgmaxPartial(_logits, _argmaxMaxima, _argmaxIndices, _c.VocabSize, ArgmaxChunk);
        _kernels.LaunchArgmaxFinal(_argmaxMaxima, _argmaxIndices, _argmaxResult);
        Span<int> token = stackalloc int[1];
        _device.Download(_argmaxResult, token);
        return token[0];
    }

    /// <summary>Every block of <paramref name="tokens"/>, then the last token's logits into _logits (left on the device).</summary>
    private void RunToLastLogits(ReadOnlySpan<int> tokens, int startPosition)
    {
        if (tokens.Length == 1 && _decodeGraphs)
        {
            // One graph per attention path (whole-span or split), the launches that differ between the two.
            int key = DecodeSpan(startPosition) > _attentionChunk ? 1 : 0;
            _device.LaunchAsGraph(key, (Model: this, Token: tokens[0], Position: startPosition), static s => s.Model.DecodeToLogits(s.Token, s.Position));
            return;
        }

        int n = 0;
        for (int done = 0; done < tokens.Length; done += n)
        {
            n = Math.Min(_block, tokens.Length - done);
            RunBlock(tokens.Slice(done, n), startPosition + done);
        }

        Head(n - 1);
    }

    /// <summary>One decoded token to its logits: launches only, so it can be recorded as a graph.</summary>
    private void DecodeToLogits(int token, int position)
    {
        RunBlock(new ReadOnlySpan<int>(in token), position);
        Head(0);
    }

    /// <summary>Positions a token at <paramref name="position"/> attends: back to the start, or across the sliding window.</summary>
    private int DecodeSpan(int position) => position - (_c.SlidingWindow is int w ? Math.Max(0, position - w + 1) : 0) + 1;

    /// <summary>
    /// Tokens at positions <paramref name="start"/>… through every layer and the final norm, as one block (at most
    /// _block tokens): the decode kernels for a single token, the prefill (rows) kernels for more.
    /// </summary>
    private void RunBlock(ReadOnlySpan<int> tokens, int start)
    {
        int n = tokens.Length, dim = _c.Dim, hidden = _c.HiddenDim;
        if (n == 1)
        {
            _kernels.LaunchEmbeddingLookup(_embedding, _x, tokens[0], dim);
        }
        else
        {
            _device.Upload(tokens, _tokens);
            _kernels.LaunchEmbeddingLookupRows(n, _embedding, _tokens, _x, dim);
        }

        for (int l = 0; l < _c.Layers; l++)
        {
            // Attention block. The previous layer's down projection (in _delta) joins the residual inside the norm.
            Norm(n, l == 0 ? DeviceView<float>.Empty : _delta, _attentionNorms[l]);
            RunGroup(n, l, ProjectionPlan.QkvGroup, _xNorm, _qkv, _qkvStride);
            Attention(n, l, start);
            RunGroup(n, l, ProjectionPlan.OutputGroup, _attention, _delta, dim);

            // Feed-forward block.
            Norm(n, _delta, _ffnNorms[l]);
            if (_fusedSwiGlu[l])
            {
                GpuUnitCall call = _calls[l][ProjectionPlan.GateUpGroup][0];
                GpuSlab slab = call.Slabs[0];
                ProjectUnit(n, call, _xNorm);
                if (n == 1)
                {
                    _kernels.LaunchW4GemvSwiGlu(slab.Codes, slab.Scales, slab.Zeros, slab.Bias, slab.LeftFactors, _projected, _xNorm, _hidden,
                        hidden, call.Cols, call.GroupSize, call.Rank);
                }
                else
                {
                    _kernels.LaunchW4GemmSwiGlu(n, slab.Codes, slab.Scales, slab.Zeros, slab.Bias, slab.LeftFactors, _projected, _xNorm, _hidden,
                        hidden, call.Cols, call.GroupSize, call.Rank);
                }
            }
            else
            {
                RunGroup(n, l, ProjectionPlan.GateUpGroup, _xNorm, _gateUp, 2 * hidden);
                _kernels.LaunchSwiGluRows(n, _gateUp, _hidden, hidden);
            }

            RunGroup(n, l, ProjectionPlan.DownGroup, _hidden, _delta, dim);
        }

        Norm(n, _delta, _finalNorm);
    }

    /// <summary>Logits of row <paramref name="row"/> of the last block (its final-normed state) into _logits.</summary>
    private void Head(int row) =>
        _kernels.LaunchHalfMatrixVector(_c.VocabSize, _head, _xNorm.Slice((long)row * _c.Dim, _c.Dim), _logits, _c.Dim);

    /// <summary>Each row: _x += delta (when given), then _xNorm = rmsnorm(_x) · weight.</summary>
    private void Norm(int n, DeviceView<float> delta, DeviceView<float> weight)
    {
        if (n == 1)
        {
            DeviceView<float> partialSums = _partialSums.Slice(0, _normChunks); // the apply kernel sums every element it is given
            _kernels.LaunchRmsNormPartialSums(_x, delta, partialSums, _c.Dim, NormChunk);
            _kernels.LaunchRmsNormApply(_x, partialSums, weight, _xNorm, _c.Dim, _c.NormEps);
            return;
        }

        _kernels.LaunchRmsNormRowsPartialSums(n, _x, delta, _partialSums, _c.Dim, NormChunk);
        _kernels.LaunchRmsNormRowsApply(n, _x, _partialSums, weight, _xNorm, _c.Dim, NormChunk, _c.NormEps);
    }

    private void Attention(int n, int layer, int start)
    {
        if (KvCacheDtype == KvCacheDtype.F16)
        {
            Attention(n, start, _halfKeys[layer], _halfValues[layer]);
        }
        else
        {
            Attention(n, start, _keys[layer], _values[layer]);
        }
    }

    /// <summary>
    /// RoPE on the rows' queries and keys, the keys and values into the layer's cache, then causal attention into
    /// _attention: the decode kernels for one token, the row kernels for a block.
    /// </summary>
    private void Attention<TCache>(int n, int start, DeviceView<TCache> keys, DeviceView<TCache> values)
        where TCache : unmanaged
    {
        int qDim = _c.QDim, kvDim = _c.KvDim, headDim = _c.HeadDim;
        if (n == 1)
        {
            DeviceView<float> q = _qkv.Slice(0, qDim), k = _qkv.Slice(qDim, kvDim), v = _qkv.Slice(qDim + kvDim, kvDim);
            DeviceView<float> cos = _cos.Slice((long)start * _rope.HalfDim, _rope.HalfDim);
            DeviceView<float> sin = _sin.Slice((long)start * _rope.HalfDim, _rope.HalfDim);
            _kernels.LaunchRope(_c.RopeLayout, q, cos, sin, _c.Heads, headDim);
            _kernels.LaunchRope(_c.RopeLayout, k, cos, sin, _c.KvHeads, headDim);
            int span = DecodeSpan(start);
            int first = start - span + 1;
            _kernels.LaunchKvCacheStore(k, v, keys, values, _c.KvHeads, headDim, ContextLength, start);
            _kernels.LaunchAttentionScores(q, keys, _scores, _c.Heads, _c.KvHeads, headDim, ContextLength, first, span, _attentionScale);
            if (span <= _attentionChunk)
            {
                // One thread per head walks a short span faster than a split would join it.
                _kernels.LaunchAttentionSoftmax(_scores, _c.Heads, span);
                _kernels.LaunchAttentionWeightedSum(_scores, values, _attention, _c.Heads, _c.KvHeads, headDim, ContextLength, first, span);
                return;
            }

            int chunks = ((span - 1) / _attentionChunk) + 1;
            _kernels.LaunchAttentionChunkSoftmax(_scores, _chunkMaxima, _chunkSums, _c.Heads, span, _attentionChunk);
            _kernels.LaunchAttentionChunkWeightedSum(_scores, values, _chunkPartials, _c.Heads, _c.KvHeads, headDim, ContextLength, first, span, _attentionChunk);
            _kernels.LaunchAttentionCombineChunks(_chunkPartials, _chunkMaxima, _chunkSums, _attention, _c.Heads, headDim, chunks);
            return;
        }

        int window = _c.SlidingWindow ?? 0;
        DeviceView<float> keysRows = _qkv.Slice(qDim, _qkv.Length - qDim), valuesRows = _qkv.Slice(qDim + kvDim, _qkv.Length - qDim - kvDim);
        _kernels.LaunchRopeRows(_c.RopeLayout, n, _qkv, _cos, _sin, headDim, _c.Heads, _qkvStride, start);
        _kernels.LaunchRopeRows(_c.RopeLayout, n, keysRows, _cos, _sin, headDim, _c.KvHeads, _qkvStride, start);
        _kernels.LaunchKvCacheStoreRows(n, keysRows, valuesRows, keys, values, _c.KvHeads, headDim, ContextLength, _qkvStride, start);
        _kernels.LaunchAttentionScoresRows(n, _qkv, keys, _scores, _c.Heads, _c.KvHeads, headDim, ContextLength, start, window, _qkvStride, _attentionScale);
        _kernels.LaunchAttentionSoftmaxRows(n, _scores, _c.Heads, start, window);
        _kernels.LaunchAttentionWeightedSumRows(n, _scores, values, _attention, _c.Heads, _c.KvHeads, headDim, ContextLength, start, window);
    }

    /// <summary>
    /// Every call of a group over <paramref name="input"/> ([n × cols]), each writing its members' rows at their offsets in
    /// each row of <paramref name="output"/> (rows <paramref name="outputStride"/> apart).
    /// </summary>
    private void RunGroup(int n, int layer, int group, DeviceView<float> input, DeviceView<float> output, int outputStride)
    {
        foreach (GpuUnitCall call in _calls[layer][group])
        {
            ProjectUnit(n, call, input);
            foreach (GpuSlab slab in call.Slabs)
            {
                if (n == 1)
                {
                    _kernels.LaunchW4GemvCorrected(slab.Rows, slab.Codes, slab.Scales, slab.Zeros, slab.Bias, slab.LeftFactors, _projected, input,
                        output.Slice(slab.OutputOffset, slab.Rows), call.Cols, call.GroupSize, call.Rank);
                }
                else
                {
                    _kernels.LaunchW4GemmCorrected(n, slab.Rows, slab.Codes, slab.Scales, slab.Zeros, slab.Bias, slab.LeftFactors, _projected, input,
                        output.Slice(slab.OutputOffset, output.Length - slab.OutputOffset), call.Cols, call.GroupSize, call.Rank, outputStride);
                }
            }
        }
    }

    /// <summary>t = B·x of every row for a restored unit; nothing for a plain or masked-off one.</summary>
    private void ProjectUnit(int n, GpuUnitCall call, DeviceView<float> input)
    {
        if (call.Rank == 0)
        {
            return;
        }

        if (n == 1)
        {
            _kernels.LaunchUnitRightFactor(call.Rank, call.RightFactor, input, _projected, call.Cols);
        }
        else
        {
            _kernels.LaunchUnitRightFactorRows(n, call.Rank, call.RightFactor, input, _projected, call.Cols);
        }
    }

    /// <summary>
    /// A call's weights on the device with the launches that write its members' rows: mapped in place, one slab per
    /// member; or copied, the members stacked row after row in one set of device arrays (the layout the fused kernels
    /// read) and cut into one slab when the members are consecutive modules of the group's output, else one per member.
    /// </summary>
    private GpuUnitCall PlaceCall(UnitCall call, int group)
    {
        Int4Unit unit = call.Unit;
        IReadOnlyList<Int4Matrix> members = unit.Members;
        Int4Matrix first = members[0];
        if (members.Any(m => m.GroupSize != first.GroupSize || m.PaddedCols != first.PaddedCols))
        {
            throw new ModelFormatException($"{File.Name}: the members of a unit differ in group size or padding");
        }

        bool restore = call.MaskIndex >= 0 && Mask[call.MaskIndex] != 0 && unit.Rank > 0;
        int rank = restore ? unit.Rank : 0;
        if (_mapWeights)
        {
            GpuSlab[] slabs = [.. members.Select((m, i) => new GpuSlab(
                MapView(MemoryMarshal.Cast<byte, uint>(m.Codes.Span)),
                MapView(m.Scales.Span),
                MapView(m.Zeros.Span),
                MapView(m.Bias.Span),
                restore ? MapView(unit.A[i].Span) : DeviceView<Half>.Empty,
                m.Rows,
                ModuleOffset(group, call.Modules[i])))];
            return new GpuUnitCall(restore ? MapView(unit.B.Span) : DeviceView<Half>.Empty, rank, unit.Cols, first.GroupSize, slabs);
        }

        int totalRows = members.Sum(m => m.Rows);
        var codes = new byte[(long)totalRows * first.RowBytes];
        var scales = new Half[(long)totalRows * first.Groups];
        var zeros = new byte[(long)totalRows * first.ZeroRowBytes];
        bool anyBias = members.Any(m => !m.Bias.IsEmpty);
        float[] bias = anyBias ? new float[totalRows] : [];
        Half[] leftFactors = restore ? new Half[(long)totalRows * rank] : [];
        var memberRows = new List<(int FirstRow, int Rows, int OutputOffset)>();
        int row = 0;
        for (int i = 0; i < members.Count; i++)
        {
            Int4Matrix m = members[i];
            m.Codes.Span.CopyTo(codes.AsSpan().Slice((int)((long)row * first.RowBytes)));
            m.Scales.Span.CopyTo(scales.AsSpan(row * first.Groups));
            m.Zeros.Span.CopyTo(zeros.AsSpan(row * first.ZeroRowBytes));
            m.Bias.Span.CopyTo(bias.AsSpan(anyBias ? row : 0));
            if (restore)
            {
                unit.A[i].Span.CopyTo(leftFactors.AsSpan(row * rank));
            }

            memberRows.Add((row, m.Rows, ModuleOffset(group, call.Modules[i])));
            row += m.Rows;
        }

        bool contiguous = memberRows.Zip(memberRows.Skip(1)).All(p => p.Second.OutputOffset == p.First.OutputOffset + p.First.Rows);
        if (contiguous)
        {
            memberRows = [(0, totalRows, memberRows[0].OutputOffset)];
        }

        DeviceView<uint> codeWords = UploadNew<uint>(MemoryMarshal.Cast<byte, uint>(codes));
        DeviceView<Half> scaleView = UploadNew<Half>(scales);
        DeviceView<byte> zeroView = UploadNew<byte>(zeros);
        DeviceView<float> biasView = anyBias ? UploadNew<float>(bias) : DeviceView<float>.Empty;
        DeviceView<Half> leftView = restore ? UploadNew<Half>(leftFactors) : DeviceView<Half>.Empty;
        int wordsPerRow = first.RowBytes / 4;
        GpuSlab[] stacked = [.. memberRows.Select(r => new GpuSlab(
            codeWords.Slice((long)r.FirstRow * wordsPerRow, (long)r.Rows * wordsPerRow),
            scaleView.Slice((long)r.FirstRow * first.Groups, (long)r.Rows * first.Groups),
            zeroView.Slice((long)r.FirstRow * first.ZeroRowBytes, (long)r.Rows * first.ZeroRowBytes),
            anyBias ? biasView.Slice(r.FirstRow, r.Rows) : biasView,
            restore ? leftView.Slice((long)r.FirstRow * rank, (long)r.Rows * rank) : leftView,
            r.Rows,
            r.OutputOffset))];
        return new GpuUnitCall(restore ? UploadNew<Half>(unit.B.Span) : DeviceView<Half>.Empty, rank, unit.Cols, first.GroupSize, stacked);
    }

    /// <summary>Where module <paramref name="module"/>'s rows go in its group's output buffer.</summary>
    private int ModuleOffset(int group, int module) => (group, module) switch
    {
        (ProjectionPlan.QkvGroup, ProjectionPlan.Q) => 0,
        (ProjectionPlan.QkvGroup, ProjectionPlan.K) => _c.QDim,
        (ProjectionPlan.QkvGroup, ProjectionPlan.V) => _c.QDim + _c.KvDim,
        (ProjectionPlan.GateUpGroup, ProjectionPlan.Gate) => 0,
        (ProjectionPlan.GateUpGroup, ProjectionPlan.Up) => _c.HiddenDim,
        (ProjectionPlan.OutputGroup, ProjectionPlan.O) or (ProjectionPlan.DownGroup, ProjectionPlan.Down) => 0,
        _ => throw new ModelFormatException($"{File.Name}: module {module} does not belong to input group {group}"),
    };

    /// <summary>cos and sin of every frequency at every position, [context × headDim/2], computed as the CPU engine does.</summary>
    private (DeviceView<float> Cos, DeviceView<float> Sin) UploadRotaryTables()
    {
        int half = _rope.HalfDim;
        var cos = new float[(long)ContextLength * half];
        var sin = new float[(long)ContextLength * half];
        for (int p = 0; p < ContextLength; p++)
        {
            _rope.Angles(p, cos.AsSpan(p * half, half), sin.AsSpan(p * half, half));
        }

        return (UploadNew<float>(cos), UploadNew<float>(sin));
    }

    private DeviceView<Half> HalfMatrix(string name, int rows, int cols)
    {
        GlqTensorInfo t = File.RequireTensor(name);
        if (t.DType != GlqDType.F16)
        {
            throw new ModelFormatException($"{File.Name}: tensor '{name}' is {t.DType.Name()}; the GPU backend reads F16 (use --backend cpu)");
        }

        if (t.ElementCount != (long)rows * cols)
        {
            throw new ModelFormatException($"{File.Name}: tensor '{name}' has {t.ElementCount} elements, expected {(long)rows * cols}");
        }

        ReadOnlySpan<Half> values = MemoryMarshal.Cast<byte, Half>(File.GetBytes(t));
        return _mapWeights ? MapView(values) : UploadNew<Half>(values);
    }

    private DeviceView<float> UploadVector(string name, int length)
    {
        GlqTensorInfo t = File.RequireTensor(name);
        if (t.ElementCount != length || t.DType is not (GlqDType.F16 or GlqDType.F32))
        {
            throw new ModelFormatException($"{File.Name}: tensor '{name}' is {t.DType.Name()} × {t.ElementCount}, expected F16 or F32 × {length}");
        }

        ReadOnlySpan<byte> bytes = File.GetBytes(t);
        var values = new float[length];
        if (t.DType == GlqDType.F16)
        {
            System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(bytes), values);
        }
        else
        {
            MemoryMarshal.Cast<byte, float>(bytes).CopyTo(values);
        }

        return UploadNew<float>(values);
    }

    /// <summary>The host range that holds every tensor of <paramref name="file"/>: the one mapping the device needs.</summary>
    private static (nint Start, long Length) TensorRegion(GlqFile file)
    {
        nint start = nint.MaxValue, end = 0;
        foreach (GlqTensorInfo tensor in file.Tensors)
        {
            nint first = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetReference(file.GetBytes(tensor, 0, 0)));
            start = Math.Min(start, first);
            end = Math.Max(end, first + (nint)tensor.Length);
        }

        if (end <= start)
        {
            throw new ModelFormatException($"{file.Name}: no tensor data to map");
        }

        return (start, end - start);
    }

    /// <summary>The device address of host memory inside the mapped tensor region (a length-0 view for an empty span).</summary>
    private DeviceView<T> MapView<T>(ReadOnlySpan<T> values)
        where T : unmanaged
    {
        if (values.IsEmpty)
        {
            return DeviceView<T>.Empty;
        }

        long offset = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetReference(values)) - _mappedHostStart;
        long bytes = (long)values.Length * sizeof(T);
        if (offset < 0 || offset + bytes > _mappedLength)
        {
            throw new InvalidOperationException($"{File.Name}: a weight lies outside the file's mapped tensor data");
        }

        _mappedWeightBytes += bytes;
        return new DeviceView<T>(_mappedDeviceStart.AddBytes(offset), values.Length);
    }

    private DeviceView<T> UploadNew<T>(ReadOnlySpan<T> values)
        where T : unmanaged
    {
        DeviceView<T> view = Allocate<T>(Math.Max(1, values.Length));
        _device.Upload(values, view);
        return view;
    }

    private DeviceView<T> Allocate<T>(long length)
        where T : unmanaged
    {
        DeviceView<T> view = _device.Allocate<T>(length);
        _allocations.Add(view.Pointer);
        DeviceBytes += length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        return view;
    }

    private void FreeAll()
    {
        if (_mapWeights && !_mappedDeviceStart.IsNull)
        {
            _device.UnmapHostMemory(_mappedDeviceStart);
        }

        foreach (DevicePointer pointer in _allocations)
        {
            _device.Free(pointer);
        }

        _allocations.Clear();
    }

    public void Dispose()
    {
        FreeAll();
        _device.Dispose();
        File.Dispose();
    }

    /// <summary>
    /// One W4 launch's weights: <paramref name="Rows"/> rows of a call's members (stacked copies, or one member mapped
    /// in place) and where they go in the group's output.
    /// </summary>
    private sealed record GpuSlab(
        DeviceView<uint> Codes,
        DeviceView<Half> Scales,
        DeviceView<byte> Zeros,
        DeviceView<float> Bias,
        DeviceView<Half> LeftFactors,
        int Rows,
        int OutputOffset);

    /// <summary>A call on the device: B (restored units only), the rank in use (0 when not restored) and its slabs.</summary>
    private sealed record GpuUnitCall(DeviceView<Half> RightFactor, int Rank, int Cols, int GroupSize, GpuSlab[] Slabs);
}
