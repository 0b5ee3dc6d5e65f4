namespace GlowQ.Engine.Tests;

public sealed class WorkerPoolTests
{
    private sealed class CountingWork : IPartitionedWork
    {
        public int[] Hits = new int[1000];
        public int Parts;

        public void Execute(int part, int parts)
        {
            Parts = parts;
            (int start, int end) = WorkerPool.Range(Hits.Length, part, parts);
            for (int i = start; i < end; i++)
            {
                Interlocked.Increment(ref Hits[i]);
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(5)]
    public void Run_CoversEveryItemExactlyOnce_AcrossManyDispatches(int threads)
    {
        using var pool = new WorkerPool(threads);
        var work = new CountingWork();
        for (int round = 0; round < 2000; round++)
        {
            // Alternate large and small jobs so participant counts change between dispatches.
            pool.Run(work, round % 3 == 0 ? 1 : WorkerPool.MinParallelWork * (1 + round % 7));
        }

        Assert.All(work.Hits, h => Assert.Equal(2000, h));
    }

    [Fact]
    public void Run_SmallWork_StaysOnTheCallingThread()
    {
        using var pool = new WorkerPool(4);
        var work = new CountingWork();
        pool.Run(work, WorkerPool.MinParallelWork - 1);
        Assert.Equal(1, work.Parts);
    }

    [Fact]
    public void Run_WorkerException_SurfacesOnTheCaller()
    {
        using var pool = new WorkerPool(2);
        var e = Assert.Throws<AggregateException>(() => pool.Run(new Failing(), WorkerPool.MinParallelWork * 8));
        Assert.IsType<InvalidOperationException>(e.InnerException);
    }

    private sealed class Failing : IPartitionedWork
    {
        public void Execute(int part, int parts)
        {
            if (part == 1)
            {
                throw new InvalidOperationException("boom");
            }
        }
    }
}
