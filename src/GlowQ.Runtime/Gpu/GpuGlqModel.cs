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
public sealed class GpuGlqModel : ILanguageModel, IDeviceArgmax
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

    // KV cache, one fp32 or fp16 array per layer for keys and one for values: [kvHeads × context × headDim].
    private readonly DeviceView<float>[] _keys = [], _values = [];
    private readonly DeviceView<Half>[] _halfKeys = [], _halfValues = [];

    // Activations.
    private readonly DeviceView<float> _x, _xNorm, _partialSums, _qkv, _attention, _delta, _gateUp, _hidden, _projected, _scores, _logits, _argmaxMaxima;
    private readonly DeviceView<int> _argmaxIndices, _argmaxResult;
    private readonly DeviceView<int> _tokens;
    private readonly int _normChunks, _qkvStride, _block;

    private GpuGlqModel(GlqFile file, GlqModel glq, byte[] mask, InferenceOptions options, IGpuDevice device)
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
            _embedding = UploadHalfMatrix(LlamaTensorNames.Embedding, _c.VocabSize, _c.Dim);
            _head = _c.TiedEmbeddings ? _embedding : UploadHalfMatrix(LlamaTensorNames.OutputHead, _c.VocabSize, _c.Dim);
            _attentionNorms = [.. Enumerable.Range(0, _c.Layers).Select(l => UploadVector(LlamaTensorNames.AttentionNorm(l), _c.Dim))];
            _ffnNorms = [.. Enumerable.Range(0, _c.Layers).Select(l => UploadVector(LlamaTensorNames.FfnNorm(l), _c.Dim))];
            _finalNorm = UploadVector(LlamaTensorNames.FinalNorm, _c.Dim);
            UnitCall[][][] plan = ProjectionPlan.Calls(file, glq, out _);
            _calls = [.. plan.Select(layer => layer.Select((group, g) => group.Select(call => UploadCall(call, g)).ToArray()).ToArray())];
            _fusedSwiGlu = [.. plan.Select(layer => layer[ProjectionPlan.GateUpGroup] is [{ Modules: [ProjectionPlan.Gate, ProjectionPlan.Up] }])];
            WeightBytes = DeviceBytes;
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
            _logits = Allocate<float>(_c.VocabSize);
            int argmaxChunks = (_c.VocabSize + ArgmaxChunk - 1) / ArgmaxChunk;
            _argmaxMaxima = Allocate<float>(argmaxChunks);
            _argmaxIndices = Allocate<int>(argmaxChunks);
            _argmaxResult = Allocate<int>(1);
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

    /// <summary>Bytes of weights in device memory (norms, embedding, head, int4 projections, restored units' factors).</summary>
    public long WeightBytes { get; }

    /// <summary>Every byte this model holds on the device: weights, rotary tables, KV cache and activations.</summary>
    public long DeviceBytes { get; private set; }

    public string DeviceDescription => _device.Description;

    /// <summary>Uploads <paramref name="file"/> to <paramref name="device"/>; the model then owns both and disposes them.</summary>
    /// <param name="mask">One entry (0 or 1) per unit of the file; null uses the file's default mask.</param>
    public static GpuGlqModel Open(GlqFile file, IGpuDevice device, byte[]? mask = null, InferenceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(device);
        GlqModel glq = GlqModel.Read(file);
        if (glq.Quantization.GroupSize % CodesPerWord != 0)
        {
            throw new ModelFormatException(
                $"{file.Name}: group size {glq.Quantization.GroupSize} is not a multiple of {CodesPerWord}, which the GPU kernels read as whole 32-bit words; use --backend cpu");
        }

        return new GpuGlqModel(file, glq, RestorationMask.For(file, glq, mask), options ?? new InferenceOptions(), device);
    }

    public void Forward(ReadOnlySpan<int> tokens, int startPosition, Span<float> logits, bool allPositions = false)
    {
        ForwardArguments.Check(tokens, startPosition, ContextLength, _c.VocabSize, logits.Length, allPositions);
        int vocab = _c.VocabSize;
        for (int done = 0; done < tokens.Length; done += _block)
        {
            int n = Math.Min(_block, tokens.Length - done);
            RunBlock(tokens.Slice(done, n), startPosition + done);
            if (allPositions)
            {
                for (int t = 0; t < n; t++)
                {
                    Head(t);
                    _device.Download(_logits, logits.Slice((done + t) * vocab, vocab));
                }
            }
            else if (done + n == tokens.Length)
            {
                Head(n - 1);
                _device.Download(_logits, logits[..vocab]);
            }
        }
    }

    public int ForwardArgmax(ReadOnlySpan<int> tokens, int startPosition)
    {
        ForwardArguments.Check(tokens, startPosition, ContextLength, _c.VocabSize, _c.VocabSize, allPositions: false);
        int n = 0;
        for (int done = 0; done < tokens.Length; done += n)
        {
            n = Math.Min(_block, tokens.Length - done);
            RunBlock(tokens.Slice(done, n), startPosition + done);
        }

        Head(n - 1);
        _kernels.LaunchArgmaxPartial(_logits, _argmaxMaxima, _argmaxIndices, _c.VocabSize, ArgmaxChunk);
        _kernels.LaunchArgmaxFinal(_argmaxMaxima, _argmaxIndices, _argmaxResult);
        Span<int> token = stackalloc int[1];
        _device.Download(_argmaxResult, token);
        return token[0];
    }

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
                ProjectUnit(n, call, _xNorm);
                if (n == 1)
                {
                    _kernels.LaunchW4GemvSwiGlu(call.Codes, call.Scales, call.Zeros, call.Bias, call.LeftFactors, _projected, _xNorm, _hidden,
                        hidden, call.Cols, call.GroupSize, call.Rank);
                }
                else
                {
                    _kernels.LaunchW4GemmSwiGlu(n, call.Codes, call.Scales, call.Zeros, call.Bias, call.LeftFactors, _projected, _xNorm, _hidden,
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
            int first = _c.SlidingWindow is int w ? Math.Max(0, start - w + 1) : 0;
            int span = start - first + 1;
            _kernels.LaunchKvCacheStore(k, v, keys, values, _c.KvHeads, headDim, ContextLength, start);
            _kernels.LaunchAttentionScores(q, keys, _scores, _c.Heads, _c.KvHeads, headDim, ContextLength, first, span, _attentionScale);
            _kernels.LaunchAttentionSoftmax(_scores, _c.Heads, span);
            _kernels.LaunchAttentionWeightedSum(_scores, values, _attention, _c.Heads, _c.KvHeads, headDim, ContextLength, first, span);
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
            foreach (GpuLaunch launch in call.Launches)
            {
                DeviceView<uint> codes = call.Codes.Slice((long)launch.FirstRow * call.WordsPerRow, (long)launch.Rows * call.WordsPerRow);
                DeviceView<Half> scales = call.Scales.Slice((long)launch.FirstRow * call.Groups, (long)launch.Rows * call.Groups);
                DeviceView<byte> zeros = call.Zeros.Slice((long)launch.FirstRow * call.ZeroBytesPerRow, (long)launch.Rows * call.ZeroBytesPerRow);
                DeviceView<float> bias = call.Bias.IsEmpty ? call.Bias : call.Bias.Slice(launch.FirstRow, launch.Rows);
                DeviceView<Half> leftFactors = call.Rank == 0 ? call.LeftFactors : call.LeftFactors.Slice((long)launch.FirstRow * call.Rank, (long)launch.Rows * call.Rank);
                if (n == 1)
                {
                    _kernels.LaunchW4GemvCorrected(launch.Rows, codes, scales, zeros, bias, leftFactors, _projected, input,
                        output.Slice(launch.OutputOffset, launch.Rows), call.Cols, call.GroupSize, call.Rank);
                }
                else
                {
                    _kernels.LaunchW4GemmCorrected(n, launch.Rows, codes, scales, zeros, bias, leftFactors, _projected, input,
                        output.Slice(launch.OutputOffset, output.Length - launch.OutputOffset), call.Cols, call.GroupSize, call.Rank, outputStride);
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
    /// A call's members stacked row after row in one set of device arrays (the layout the fused kernels read), with
    /// the launches that write them: one when the members are consecutive modules of the group's output, else one per
    /// member into its own place.
    /// </summary>
    private GpuUnitCall UploadCall(UnitCall call, int group)
    {
        Int4Unit unit = call.Unit;
        IReadOnlyList<Int4Matrix> members = unit.Members;
        Int4Matrix first = members[0];
        if (members.Any(m => m.GroupSize != first.GroupSize || m.PaddedCols != first.PaddedCols))
        {
            throw new ModelFormatException($"{File.Name}: the members of a unit differ in group size or padding");
        }

        int totalRows = members.Sum(m => m.Rows);
        bool restore = call.MaskIndex >= 0 && Mask[call.MaskIndex] != 0 && unit.Rank > 0;
        int rank = restore ? unit.Rank : 0;

        var codes = new byte[(long)totalRows * first.RowBytes];
        var scales = new Half[(long)totalRows * first.Groups];
        var zeros = new byte[(long)totalRows * first.ZeroRowBytes];
        bool anyBias = members.Any(m => !m.Bias.IsEmpty);
        float[] bias = anyBias ? new float[totalRows] : [];
        Half[] leftFactors = restore ? new Half[(long)totalRows * rank] : [];
        var launches = new List<GpuLaunch>();
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

            launches.Add(new GpuLaunch(row, m.Rows, ModuleOffset(group, call.Modules[i])));
            row += m.Rows;
        }

        bool contiguous = launches.Zip(launches.Skip(1)).All(p => p.Second.OutputOffset == p.First.OutputOffset + p.First.Rows);
        GpuLaunch[] merged = contiguous ? [new GpuLaunch(0, totalRows, launches[0].OutputOffset)] : [.. launches];

        DeviceView<Half> rightFactor = restore ? UploadNew<Half>(unit.B.Span) : DeviceView<Half>.Empty;
        return new GpuUnitCall(
            UploadNew<uint>(MemoryMarshal.Cast<byte, uint>(codes)),
            UploadNew<Half>(scales),
            UploadNew<byte>(zeros),
            anyBias ? UploadNew<float>(bias) : DeviceView<float>.Empty,
            restore ? UploadNew<Half>(leftFactors) : DeviceView<Half>.Empty,
            rightFactor,
            rank,
            unit.Cols,
            first.GroupSize,
            first.Groups,
            first.RowBytes / 4,
            first.ZeroRowBytes,
            merged);
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

    private DeviceView<Half> UploadHalfMatrix(string name, int rows, int cols)
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

        return UploadNew<Half>(MemoryMarshal.Cast<byte, Half>(File.GetBytes(t)));
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

    /// <summary>One W4 GEMV launch of a call: <paramref name="Rows"/> stacked rows from <paramref name="FirstRow"/>, written at <paramref name="OutputOffset"/>.</summary>
    private sealed record GpuLaunch(int FirstRow, int Rows, int OutputOffset);

    /// <summary>A call's stacked device arrays; <see cref="Rank"/> is 0 when its correction is not restored.</summary>
    private sealed record GpuUnitCall(
        DeviceView<uint> Codes,
        DeviceView<Half> Scales,
        DeviceView<byte> Zeros,
        DeviceView<float> Bias,
        DeviceView<Half> LeftFactors,
        DeviceView<Half> RightFactor,
        int Rank,
        int Cols,
        int GroupSize,
        int Groups,
        int WordsPerRow,
        int ZeroBytesPerRow,
        GpuLaunch[] Launches);
}
