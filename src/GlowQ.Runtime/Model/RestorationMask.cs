using GlowQ.Format.Glq;

namespace GlowQ.Runtime.Model;

/// <summary>The restoration mask a model runs with: one 0/1 entry per unit of its file, fixed at load time.</summary>
internal static class RestorationMask
{
    /// <summary>A private copy of <paramref name="mask"/> (null: the file's default mask), checked against the file's units.</summary>
    public static byte[] For(GlqFile file, GlqModel glq, byte[]? mask)
    {
        mask ??= glq.DefaultMask;
        if (mask.Length != glq.Units.Count)
        {
            throw new ArgumentException($"{file.Name}: the restoration mask has {mask.Length} entries, the file has {glq.Units.Count} units");
        }

        if (mask.Any(m => m > 1))
        {
            throw new ArgumentException($"{file.Name}: restoration mask entries must be 0 or 1");
        }

        return [.. mask];
    }
}
