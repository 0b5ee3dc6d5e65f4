namespace GlowQ.TestSupport;

/// <summary>Bytes a piece of work allocates on the calling thread once the runtime has settled.</summary>
public static class SteadyStateAllocation
{
    /// <summary>
    /// Runs <paramref name="work"/> up to <paramref name="attempts"/> times and returns the fewest bytes any run
    /// allocated on this thread. One-time runtime events (a method moving to its optimised tier, on-stack
    /// replacement) can allocate during any single run, but not in every run, while an allocation in the code under
    /// test shows up in all of them. Counted on the calling thread because the test runner's threads allocate
    /// concurrently.
    /// </summary>
    public static long Bytes(Action work, int attempts = 3)
    {
        long fewest = long.MaxValue;
        for (int i = 0; i < attempts && fewest > 0; i++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            work();
            fewest = Math.Min(fewest, GC.GetAllocatedBytesForCurrentThread() - before);
        }

        return fewest;
    }
}
