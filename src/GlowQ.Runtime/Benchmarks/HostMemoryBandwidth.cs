using System.Diagnostics;
using System.Numerics;
using System.Runtime.InteropServices;

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
                partial[w] = StreamingSum(data.AsSpan((int)from, count));
            });
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            best = Math.Max(best, data.LongLength * sizeof(float) / seconds / 1e9);
        }

        return best;
    }

    /// <summary>
    /// Σ values with four independent vector accumulators: one dependent chain of adds (as a plain reduction has)
    /// is bound by the add latency, not by memory, and would understate the bandwidth by half or more.
    /// </summary>
    internal static float StreamingSum(ReadOnlySpan<float> values)
    {
        int width = Vector<float>.Count, i = 0;
        Vector<float> a = default, b = default, c = default, d = default;
        ReadOnlySpan<Vector<float>> vectors = MemoryMarshal.Cast<float, Vector<float>>(values);
        for (; i + 4 <= vectors.Length; i += 4)
        {
            a += vectors[i];
            b += vectors[i + 1];
            c += vectors[i + 2];
            d += vectors[i + 3];
        }

        for (; i < vectors.Length; i++)
        {
            a += vectors[i];
        }

        float sum = Vector.Sum(a + b + c + d);
        for (int j = vectors.Length * width; j < values.Length; j++)
        {
            sum += values[j];
        }

        return sum;
    }
}
