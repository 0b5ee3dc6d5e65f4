using System.Globalization;
using GlowQ.Format;
using GlowQ.Format.Glq;

namespace GlowQ.Runtime.Profiles;

/// <summary>The memory a model will take before any of it is allocated, so a device too small is refused up front.</summary>
/// <param name="WeightBytes">Every tensor of the file but the correction factors (int4 codes, scales, zeros, embedding, norms, head, tokenizer).</param>
/// <param name="CorrectionBytes">A and B of the units the mask restores.</param>
/// <param name="KvCacheBytes">Keys and values of every layer for the whole context.</param>
/// <param name="WorkspaceBytes">Activations, attention scores and logits of one forward pass.</param>
/// <param name="KvElementBytes">Bytes of one cached key or value element: 2 for an fp16 cache, 4 for fp32.</param>
public sealed record MemoryPlan(long WeightBytes, long CorrectionBytes, long KvCacheBytes, long WorkspaceBytes, int ContextLength, long KvBytesPerToken, int KvElementBytes = 4)
{
    public long TotalBytes => WeightBytes + CorrectionBytes + KvCacheBytes + WorkspaceBytes;

    /// <param name="prefillTokens">Most tokens one forward pass processes at once (the prefill chunk).</param>
    /// <param name="kvElementBytes">Bytes of one cached element: 2 for an fp16 KV cache, 4 for fp32.</param>
    public static MemoryPlan For(GlqFile file, GlqModel model, IReadOnlyList<byte> mask, int contextLength, int kvElementBytes, int prefillTokens = 64)
    {
        if (kvElementBytes is not (2 or 4))
        {
            throw new ArgumentOutOfRangeException(nameof(kvElementBytes), kvElementBytes, "a KV cache element is 2 (fp16) or 4 (fp32) bytes");
        }

        long correction = model.CorrectionBytes(file, mask);
        var factorTensors = new HashSet<string>(model.Units.SelectMany(u => u.FactorTensorNames), StringComparer.Ordinal);
        long weights = file.Tensors.Where(t => !factorTensors.Contains(t.Name)).Sum(t => (long)t.Length);
        ModelConfig c = model.Config;
        long kvPerToken = 2L * c.Layers * c.KvHeads * c.HeadDim * kvElementBytes;
        int tokens = Math.Max(1, Math.Min(prefillTokens, contextLength));
        int maxRank = model.Units.Count == 0 ? 0 : model.Units.Max(u => u.Rank);
        // Per token in flight: residual, normed input, q, k, v, attention output, two FFN halves and the hidden, plus
        // the t = B·x of a unit; per head, one row of attention scores over the context; one row of logits.
        long perToken = 4L * ((3L * c.Dim) + c.QDim + (2L * c.KvHeads * c.HeadDim) + (3L * c.HiddenDim) + maxRank);
        long workspace = (tokens * perToken) + (4L * c.Heads * contextLength) + (4L * c.VocabSize * tokens);
        return new MemoryPlan(weights, correction, kvPerToken * contextLength, workspace, contextLength, kvPerToken, kvElementBytes);
    }

    /// <summary>
    /// Throws <see cref="MemoryBudgetException"/> when the plan does not fit the profile's budget, saying how much is
    /// needed, how much the profile allows, and which options reduce it.
    /// </summary>
    public void EnsureFits(DeviceProfile profile, long machineBytes)
    {
        long budget = profile.BudgetBytes(machineBytes);
        if (TotalBytes <= budget)
        {
            return;
        }

        long over = TotalBytes - budget;
        var remedies = new List<string>();
        long kvSaving = KvBytesPerToken > 0 ? (long)Math.Ceiling((double)over / KvBytesPerToken) : long.MaxValue;
        if (kvSaving < ContextLength)
        {
            remedies.Add(string.Create(CultureInfo.InvariantCulture, $"--context {ContextLength - kvSaving} or less (KV cache {Mib(KvBytesPerToken * 1024)} per 1k tokens)"));
        }

        if (KvElementBytes > 2 && KvCacheBytes / 2 >= over)
        {
            remedies.Add(string.Create(CultureInfo.InvariantCulture, $"--kv-cache f16 (KV cache {Size(KvCacheBytes / 2)} instead of {Size(KvCacheBytes)})"));
        }

        if (CorrectionBytes > 0)
        {
            remedies.Add($"a smaller --restore fraction (corrections take {Gib(CorrectionBytes)})");
        }

        remedies.Add("a smaller model");
        throw new MemoryBudgetException(string.Create(CultureInfo.InvariantCulture,
            $"the model needs {Gib(TotalBytes)} (weights {Gib(WeightBytes)}, corrections {Gib(CorrectionBytes)}, {(KvElementBytes == 2 ? "f16" : "f32")} KV cache {Size(KvCacheBytes)} at {ContextLength} tokens, "
            + $"workspace {Gib(WorkspaceBytes)}) but profile '{profile.Name}' allows {Gib(budget)}; try {string.Join(", or ", remedies)}"));
    }

    private static string Gib(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / DeviceProfile.Gib:F2} GiB");

    /// <summary>GiB, or MiB below 1 GiB, where two decimals of GiB would hide a KV cache's size.</summary>
    private static string Size(long bytes) =>
        bytes >= DeviceProfile.Gib ? Gib(bytes) : string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024):F2} MiB");

    private static string Mib(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024):F1} MiB");
}

/// <summary>A model that would not fit the device: refused before anything is allocated.</summary>
public sealed class MemoryBudgetException(string message) : Exception(message);
