using GlowQ.Format;
using GlowQ.TestSupport;

namespace GlowQ.Engine.Tests;

public sealed class AllocationTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void DecodeStepsAndSampling_AllocateNothing(int threads)
    {
        using ICheckpoint bin = CheckpointExtensions.Open(SharedData.Stories260KBin);
        using var model = new LlamaModel(LlamaWeights.Load(bin), new InferenceOptions { Threads = threads });
        var logits = new float[model.Config.VocabSize];
        var sampler = new Sampler(model.Config.VocabSize, new SamplingOptions { Temperature = 0.9f, TopK = 40, TopP = 0.9f, MinP = 0.01f, RepeatPenalty = 1.1f, Seed = 3 });
        int[] history = new int[200];
        history[0] = 1;
        model.Forward(history.AsSpan(0, 1), 0, logits);
        for (int pos = 1; pos < 20; pos++) // warm up: first calls may initialise statics
        {
            history[pos] = sampler.Sample(logits, history.AsSpan(0, pos));
            model.Forward(history.AsSpan(pos, 1), pos, logits);
        }

        // Counted on the decoding thread: the test runner's own threads allocate concurrently.
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int pos = 20; pos < 150; pos++)
        {
            history[pos] = sampler.Sample(logits, history.AsSpan(0, pos));
            model.Forward(history.AsSpan(pos, 1), pos, logits);
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated == 0, $"130 decode steps allocated {allocated} bytes");
    }

    [Fact]
    public void ParallelDispatch_AllocatesNothingOnTheCaller()
    {
        using var pool = new WorkerPool(2);
        var mm = new MatMul(pool, 512);
        var w = WeightMatrix.FromHalf(512, 512, new Half[512 * 512]);
        var x = new float[512];
        var y = new float[512];
        mm.Run(w, x, y, 1);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 500; i++)
        {
            mm.Run(w, x, y, 1); // 262,144 multiply-adds: above the parallel threshold
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
