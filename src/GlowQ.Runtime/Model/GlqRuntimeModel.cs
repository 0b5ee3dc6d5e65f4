using System.Runtime.InteropServices;
using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.Format.Glq;

namespace GlowQ.Runtime.Model;

/// <summary>
/// A .glq model run on the CPU by the int4 kernels: the file stays memory-mapped and every projection, scale, zero
/// point and correction factor is read in place; the engine's <see cref="LlamaModel"/> does the rest of the forward
/// pass (embedding, norms, RoPE, attention with its KV cache, head). The restoration mask is fixed at load time.
/// </summary>
public sealed class GlqRuntimeModel : ILanguageModel
{
    private readonly GlqFile _file;
    private readonly LlamaModel _model;

    private GlqRuntimeModel(GlqFile file, GlqModel glq, byte[] mask, InferenceOptions options, bool widenHalfHead)
    {
        _file = file;
        Glq = glq;
        Mask = mask;
        _model = new LlamaModel(LoadFrame(file, glq.Config, widenHalfHead), (_, pool, chunk) => new Int4Projections(file, glq, mask, pool, chunk), options);
    }

    /// <summary>The file's metadata: units, scores, default mask, tokenizer.</summary>
    public GlqModel Glq { get; }

    /// <summary>The restoration mask in use, one entry per unit.</summary>
    public IReadOnlyList<byte> Mask { get; }

    public GlqFile File => _file;

    public ModelConfig Config => _model.Config;

    public int ContextLength => _model.ContextLength;

    public int Threads => _model.Threads;

    /// <summary>Embedding, norms and head as held in memory, plus the int4 projections and correction factors as mapped.</summary>
    public long WeightBytes => _model.WeightBytes;

    /// <param name="mask">One entry (0 or 1) per unit of the file; null uses the file's default mask.</param>
    /// <param name="widenHalfHead">
    /// Hold an fp16 embedding/head as fp32: twice its bytes in private memory (1B shape: 1.05 GB instead of 525 MB),
    /// for a head product that streams fp32 at memory speed instead of widening every fp16 value in software, which
    /// on x64 .NET is slower than reading twice the bytes. Off by default, so memory plans hold for the file as stored.
    /// </param>
    public static GlqRuntimeModel Open(string path, byte[]? mask = null, InferenceOptions? options = null, bool widenHalfHead = false)
    {
        GlqFile file = GlqFile.Open(path);
        try
        {
            return Open(file, mask, options, widenHalfHead);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Runs an open file, which the model then owns and disposes.</summary>
    public static GlqRuntimeModel Open(GlqFile file, byte[]? mask = null, InferenceOptions? options = null, bool widenHalfHead = false)
    {
        ArgumentNullException.ThrowIfNull(file);
        GlqModel glq = GlqModel.Read(file);
        return new GlqRuntimeModel(file, glq, RestorationMask.For(file, glq, mask), options ?? new InferenceOptions(), widenHalfHead);
    }

    public void Forward(ReadOnlySpan<int> tokens, int startPosition, Span<float> logits, bool allPositions = false) =>
        _model.Forward(tokens, startPosition, logits, allPositions);

    public void Dispose()
    {
        _model.Dispose();
        _file.Dispose();
    }

    /// <summary>
    /// Embedding and head stay fp16 when stored so, unless <paramref name="widenHalf"/> (the engine's fp16 product
    /// widens each value exactly and accumulates in fp32, streaming half the bytes of a widened copy); norms are tiny
    /// and widen to fp32 once.
    /// </summary>
    private static LlamaFrame LoadFrame(GlqFile file, ModelConfig c, bool widenHalf)
    {
        WeightMatrix embedding = Matrix(file, LlamaTensorNames.Embedding, c.VocabSize, c.Dim, widenHalf);
        WeightMatrix head = c.TiedEmbeddings ? embedding : Matrix(file, LlamaTensorNames.OutputHead, c.VocabSize, c.Dim, widenHalf);
        return new LlamaFrame(
            c,
            embedding,
            [.. Enumerable.Range(0, c.Layers).Select(l => Vector(file, LlamaTensorNames.AttentionNorm(l), c.Dim))],
            [.. Enumerable.Range(0, c.Layers).Select(l => Vector(file, LlamaTensorNames.FfnNorm(l), c.Dim))],
            Vector(file, LlamaTensorNames.FinalNorm, c.Dim),
            head);
    }

    private static WeightMatrix Matrix(GlqFile file, string name, int rows, int cols, bool widenHalf)
    {
        ReadOnlySpan<byte> bytes = Bytes(file, name, (long)rows * cols, out GlqDType dtype);
        if (dtype == GlqDType.F16 && widenHalf)
        {
            var widened = new float[(long)rows * cols];
            GlowQ.Runtime.Kernels.Int4Kernels.WidenHalves(GlowQ.Runtime.Kernels.Int4Kernels.Best, MemoryMarshal.Cast<byte, Half>(bytes), widened);
            return WeightMatrix.FromSingle(rows, cols, widened);
        }

        if (dtype == GlqDType.F16)
        {
            return WeightMatrix.FromHalf(rows, cols, MemoryMarshal.Cast<byte, Half>(bytes).ToArray());
        }

        return WeightMatrix.FromSingle(rows, cols, MemoryMarshal.Cast<byte, float>(bytes).ToArray());
    }

    private static float[] Vector(GlqFile file, string name, int length)
    {
        ReadOnlySpan<byte> bytes = Bytes(file, name, length, out GlqDType dtype);
        var result = new float[length];
        if (dtype == GlqDType.F16)
        {
            System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(bytes), result);
        }
        else
        {
            MemoryMarshal.Cast<byte, float>(bytes).CopyTo(result);
        }

        return result;
    }

    private static ReadOnlySpan<byte> Bytes(GlqFile file, string name, long elements, out GlqDType dtype)
    {
        GlqTensorInfo t = file.RequireTensor(name);
        if (t.DType is not (GlqDType.F16 or GlqDType.F32))
        {
            throw new ModelFormatException($"{file.Name}: tensor '{name}' is {t.DType.Name()}, expected F16 or F32");
        }

        if (t.ElementCount != elements)
        {
            throw new ModelFormatException($"{file.Name}: tensor '{name}' has {t.ElementCount} elements, expected {elements}");
        }

        dtype = t.DType;
        return file.GetBytes(t);
    }
}
