using GlowQ.Engine;
using GlowQ.Runtime.Kernels;
using GlowQ.TestSupport;

namespace GlowQ.Runtime.Tests;

public sealed class AllocationTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void DecodeAndPrefillCalls_AllocateNothingAfterWarmUp(int threads)
    {
        var rng = new Random(1);
        Int4Unit qkv = Int4TestData.Unit(rng, [512, 128, 128], 512, 32, 16, bias: true);
        Int4Unit mlp = Int4TestData.Unit(rng, [1024, 1024], 512, 32, 16);
        float[] x = Int4TestData.Floats(rng, 9 * 512, 1);
        float[] q = new float[9 * 512], k = new float[9 * 128], v = new float[9 * 128], hidden = new float[9 * 1024];
        using var pool = new WorkerPool(threads);
        var fused = new W4GemvWithCorrection(pool, 512, 16, 9);
        var plain = new W4Gemv(pool, 512, 9);
        void Step(int tokens)
        {
            fused.Run(qkv, true, x, tokens, q, k, v);
            fused.Run(qkv, false, x, tokens, q, k, v);
            fused.RunSwiGlu(mlp, true, x, hidden, tokens);
            plain.Run(mlp.Members[0], x, hidden, tokens);
        }

        // 1 and 3 tokens multiply packed codes; 9 runs the blocked prefill product (a full and a partial token block).
        Step(1);
        Step(3);
        Step(9);

        long allocated = SteadyStateAllocation.Bytes(() =>
        {
            for (int i = 0; i < 50; i++)
            {
                Step(1);
                Step(3);
                Step(9);
            }
        });
        Assert.Equal(0, allocated);
    }
}
