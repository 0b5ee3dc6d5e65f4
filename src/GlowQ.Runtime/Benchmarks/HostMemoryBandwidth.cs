using System.Diagnostics;
using System.Numerics.Tensors;

namespace GlowQ.Runtime.Benchmarks;

/// <summary>
/// The host's memory read bandwidth as the product sees it: worker threads each sum their slice of a buffer far larger
/// than the caches, which is the access pattern of a decode step (every weight byte streamed once). The roofline of a
/// CPU run is this measured figure, not a datasheet number.
/// </summary>
public static class HostMemoryBandwidth
{
    /// <summary>The best of <paramref name="passes"/> full reads of a <paramref name="bytes"/>-byte buffer, GB/s.</summary>
    /// <param name="threads">Reading threads; 0 is one per core.</param>
    public static double MeasureGbs(int threads = 0, long bytes = 256L << 20, int passes = 5)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        ArgumentOutOfRangeException.ThrowIfLessThan(bytes, 1L << 20);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(passes);
        int workers = threads == 0 ? Environment.ProcessorCount : threads;
        var data = new float[bytes / sizeof(float)];
        data.AsSpan().Fill(1f); // touch every page, so the first pass does not time page faults
        var partial = new float[workers];
        long slice = (data.Length + workers - 1) / workers;
        double best = 0;
        for (int pass = 0; pass < passes; pass++)
        {
            long start = Stopwatch.GetTimestamp();
            Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w =>
            {
                long from = w * slice;
                int count = (int)Math.Max(0, Math.Min(slice, data.Length - from));
                // Stored, so the reads cannot be optimised away.
                partial[w] = TensorPrimitives.Sum(data.AsSpan((int)from, count));
            });
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            best = Math.Max(best, data.LongLength * sizeof(float) / seconds / 1e9);
        }

        return best;
    }
}
