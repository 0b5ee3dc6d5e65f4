using GlowQ.Format.Glq;
using GlowQ.Runtime.Profiles;
using GlowQ.TestSupport;

namespace GlowQ.Runtime.Tests.Profiles;

public sealed class MemoryPlanTests
{
    private static (GlqFile File, GlqModel Model, TempDirectory Dir) TinyModel()
    {
        var dir = new TempDirectory();
        string path = TinyGlqModel.WriteFile(dir.File("tiny.glq"));
        GlqFile file = GlqFile.Open(path);
        return (file, GlqModel.Read(file), dir);
    }

    [Fact]
    public void Plan_CountsEveryTensorOnce_AndTheKvCacheFromTheShape()
    {
        (GlqFile file, GlqModel model, TempDirectory dir) = TinyModel();
        using (dir)
        using (file)
        {
            byte[] all = [.. Enumerable.Repeat((byte)1, model.Units.Count)];
            MemoryPlan restored = MemoryPlan.For(file, model, all, contextLength: 100, kvElementBytes: 2);
            MemoryPlan plain = MemoryPlan.For(file, model, new byte[model.Units.Count], contextLength: 100, kvElementBytes: 2);

            long tensors = file.Tensors.Sum(t => (long)t.Length);
            Assert.Equal(tensors, restored.WeightBytes + restored.CorrectionBytes);
            Assert.Equal(0, plain.CorrectionBytes);
            Assert.True(restored.CorrectionBytes > 0);
            Assert.Equal(restored.WeightBytes, plain.WeightBytes);

            var c = model.Config;
            Assert.Equal(2L * c.Layers * c.KvHeads * c.HeadDim * 2 * 100, restored.KvCacheBytes);
            Assert.Equal(restored.KvCacheBytes * 2, MemoryPlan.For(file, model, all, 200, 2).KvCacheBytes);
            Assert.Equal(restored.KvCacheBytes * 2, MemoryPlan.For(file, model, all, 100, 4).KvCacheBytes);
        }
    }

    [Fact]
    public void TooSmallAProfile_IsRefusedWithWhatIsNeededWhatIsAllowedAndWhatHelps()
    {
        (GlqFile file, GlqModel model, TempDirectory dir) = TinyModel();
        using (dir)
        using (file)
        {
            byte[] all = [.. Enumerable.Repeat((byte)1, model.Units.Count)];
            MemoryPlan plan = MemoryPlan.For(file, model, all, contextLength: 4096, kvElementBytes: 4);
            // A budget between the weights and the whole plan: shortening the context is enough.
            double gib = (plan.WeightBytes + plan.CorrectionBytes + plan.WorkspaceBytes + (plan.KvCacheBytes / 2)) / (1024.0 * 1024 * 1024);
            var profile = new DeviceProfile { Name = "tiny-device", Backend = "cpu", MemoryGib = gib, ReservedGib = 0 };
            var e = Assert.Throws<MemoryBudgetException>(() => plan.EnsureFits(profile, machineBytes: 64L << 30));
            Assert.Contains("the model needs", e.Message);
            Assert.Contains("profile 'tiny-device' allows", e.Message);
            Assert.Contains("--context", e.Message);
            Assert.Contains("--restore", e.Message);

            plan.EnsureFits(profile with { MemoryGib = gib * 4 }, machineBytes: 64L << 30);
        }
    }

    [Fact]
    public void MaskOfTheWrongLength_IsRefused()
    {
        (GlqFile file, GlqModel model, TempDirectory dir) = TinyModel();
        using (dir)
        using (file)
        {
            var e = Assert.Throws<ArgumentException>(() => MemoryPlan.For(file, model, new byte[model.Units.Count + 1], 16, 2));
            Assert.Contains("mask has", e.Message);
        }
    }
}
