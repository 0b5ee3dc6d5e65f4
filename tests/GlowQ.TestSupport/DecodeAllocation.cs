using GlowQ.Engine;

namespace GlowQ.TestSupport;

/// <summary>Bytes a model allocates while it samples and decodes, measured after a warm-up.</summary>
public static class DecodeAllocation
{
    /// <summary>
    /// Decodes 20 tokens to warm up (first calls may initialise statics), then counts the bytes allocated on this
    /// thread over a third of the next <paramref name="steps"/> sample-and-decode steps, taking the least of up to
    /// three such windows (see <see cref="SteadyStateAllocation"/>).
    /// </summary>
    public static long OverSteps(ILanguageModel model, SamplingOptions sampling, int steps = 130)
    {
        var logits = new float[model.Config.VocabSize];
        var sampler = new Sampler(model.Config.VocabSize, sampling);
        int[] history = new int[20 + steps];
        history[0] = 1;
        model.Forward(history.AsSpan(0, 1), 0, logits);
        for (int pos = 1; pos < 20; pos++)
        {
            history[pos] = sampler.Sample(logits, history.AsSpan(0, pos));
            model.Forward(history.AsSpan(pos, 1), pos, logits);
        }

        // Three windows of the same length, so a one-time runtime event in one of them is not taken for a leak.
        int window = steps / 3, start = 20;
        return SteadyStateAllocation.Bytes(() =>
        {
            for (int end = start + window; start < end; start++)
            {
                history[start] = sampler.Sample(logits, history.AsSpan(0, start));
                model.Forward(history.AsSpan(start, 1), start, logits);
            }
        });
    }
}
