namespace GlowQ.Engine;

/// <summary>A piece of parallel work split statically: participant <c>part</c> of <c>parts</c> does its share.</summary>
public interface IPartitionedWork
{
    void Execute(int part, int parts);
}

/// <summary>
/// Persistent worker threads for the forward pass. Unlike Parallel.For it allocates nothing per dispatch, and it
/// runs work inline when the work is too small to repay waking threads (at stories260K's size thread
/// synchronisation costs more than the arithmetic). Workers spin briefly after each job, then sleep.
/// The calling thread is participant 0; dispatches must come from one thread at a time.
/// </summary>
public sealed class WorkerPool : IDisposable
{
    /// <summary>Below this many multiply-adds a job runs on the calling thread alone.</summary>
    public const long MinParallelWork = 1 << 18;

    private const int SpinIterations = 4000;

    private readonly Thread[] _threads;
    private readonly object _gate = new();
    private IPartitionedWork? _work;

    // Generation in the high bits, participant count in the low 16: one atomic read gives a worker both, so a
    // worker that is not part of job g can never mistake job g+1's participant count for g's.
    private long _ticket;
    private int _remaining;
    private int _sleepers;
    private volatile bool _disposed;
    private Exception? _failure;

    public WorkerPool(int threadCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threadCount, 1);
        ThreadCount = threadCount;
        _threads = new Thread[threadCount - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            int part = i + 1;
            _threads[i] = new Thread(() => WorkerLoop(part)) { IsBackground = true, Name = $"glowq-worker-{part}" };
            _threads[i].Start();
        }
    }

    public int ThreadCount { get; }

    /// <summary>Default thread count: the machine's cores.</summary>
    public static int DefaultThreadCount => Environment.ProcessorCount;

    /// <summary>Runs <paramref name="work"/> over all threads, or inline when <paramref name="multiplyAdds"/> is small.</summary>
    public void Run(IPartitionedWork work, long multiplyAdds)
    {
        int parts = (int)Math.Clamp(multiplyAdds / MinParallelWork, 1, ThreadCount);
        if (parts == 1)
        {
            work.Execute(0, 1);
            return;
        }

        _work = work;
        _failure = null;
        Volatile.Write(ref _remaining, parts - 1);
        Interlocked.Exchange(ref _ticket, (((_ticket >> 16) + 1) << 16) | (uint)parts);
        if (Volatile.Read(ref _sleepers) > 0)
        {
            lock (_gate)
            {
                Monitor.PulseAll(_gate);
            }
        }

        work.Execute(0, parts);
        var spin = new SpinWait();
        while (Volatile.Read(ref _remaining) > 0)
        {
            spin.SpinOnce(sleep1Threshold: -1);
        }

        _work = null;
        if (_failure is { } failure)
        {
            throw new AggregateException("A worker thread failed", failure);
        }
    }

    private void WorkerLoop(int part)
    {
        long seen = 0;
        while (true)
        {
            long ticket = WaitForTicket(seen);
            if (_disposed)
            {
                return;
            }

            seen = ticket;
            int parts = (int)(ticket & 0xFFFF);
            if (part < parts)
            {
                try
                {
                    _work!.Execute(part, parts);
                }
                catch (Exception e)
                {
                    _failure = e;
                }

                Interlocked.Decrement(ref _remaining);
            }
        }
    }

    private long WaitForTicket(long seen)
    {
        for (int i = 0; i < SpinIterations; i++)
        {
            long g = Volatile.Read(ref _ticket);
            if (g != seen || _disposed)
            {
                return g;
            }

            Thread.SpinWait(20);
        }

        lock (_gate)
        {
            // Announce the sleep before the last look, so a dispatcher either sees us asleep or we see its job.
            Interlocked.Increment(ref _sleepers);
            try
            {
                long g;
                while ((g = Interlocked.Read(ref _ticket)) == seen && !_disposed)
                {
                    Monitor.Wait(_gate);
                }

                return g;
            }
            finally
            {
                Interlocked.Decrement(ref _sleepers);
            }
        }
    }

    /// <summary>The half-open range of <paramref name="count"/> items that participant <paramref name="part"/> owns.</summary>
    public static (int Start, int End) Range(int count, int part, int parts)
    {
        int start = (int)((long)count * part / parts);
        int end = (int)((long)count * (part + 1) / parts);
        return (start, end);
    }

    public void Dispose()
    {
        _disposed = true;
        lock (_gate)
        {
            Monitor.PulseAll(_gate);
        }

        foreach (Thread t in _threads)
        {
            t.Join();
        }
    }
}
