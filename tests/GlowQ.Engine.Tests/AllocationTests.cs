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
        long allocated = DecodeAllocation.OverSteps(model,
            new SamplingOptions { Temperature = 0.9f, TopK = 40, TopP = 0.9f, MinP = 0.01f, RepeatPenalty = 1.1f, Seed = 3 });
        Assert.True(allocated == 0, $"decode steps allocated {allocated} bytes in steady state");
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
        long allocated = SteadyStateAllocation.Bytes(() =>
        {
            for (int i = 0; i < 500; i++)
            {
                mm.Run(w, x, y, 1); // 262,144 multiply-adds: above the parallel threshold
            }
        });
        Assert.Equal(0, allocated);
    }
}
