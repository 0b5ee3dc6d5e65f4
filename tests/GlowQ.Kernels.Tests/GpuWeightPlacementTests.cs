using GlowQ.Engine;
using GlowQ.Format;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Gpu;
using GlowQ.Runtime.Model;
using GlowQ.TestSupport;

namespace GlowQ.Kernels.Tests;

/// <summary>
/// Weights mapped from the file (integrated GPUs) against weights copied to the device: the mapped model must give the
/// CPU runtime's logits (same 1e-4 relative bound as <see cref="GpuGlqModelTests"/>) while allocating nothing for the
/// weights it reads in place, and it runs gate/up unfused, one launch per member, since its members are not stacked.
/// </summary>
[Collection(CpuAcceleratorCollectionDefinition.Name)]
public sealed class GpuWeightPlacementTests(CpuAcceleratorFixture accelerators) : IDisposable
{
    private readonly TempDirectory _directory = new();

    [Theory]
    [InlineData("glowq", 64)]
    [InlineData("layerwise", 3)]
    public void MappedWeights_GiveTheCpuRuntimesLogits_InPrefillAndDecode(string method, int prefillBlock)
    {
        string path = TinyGlqModel.WriteFile(_directory.File($"{method}.glq"), new TinyGlqOptions { Method = method, QkvBias = true, TiedEmbeddings = false });
        var options = new InferenceOptions { ContextLength = 32, Threads = 1, PrefillChunk = prefillBlock };
        using var device = new IlgpuCpuDevice(accelerators.WithWarpSize(4));
        using GpuGlqModel gpu = GpuGlqModel.Open(GlqFile.Open(path), device, mask: null, options, GpuWeightPlacement.MappedFile);
        using GlqRuntimeModel cpu = GlqRuntimeModel.Open(path, mask: null, options);
        const int Vocab = TinyGlqModel.VocabSize, Prompt = 6;
        int[] tokens = [3, 7, 1, 30, 12, 5, 9, 22, 0];

        Assert.True(gpu.WeightsMapped);
        var actual = new float[Prompt * Vocab];
        var expected = new float[Prompt * Vocab];
        gpu.Forward(tokens.AsSpan(0, Prompt), 0, actual, allPositions: true);
        cpu.Forward(tokens.AsSpan(0, Prompt), 0, expected, allPositions: true);
        for (int position = 0; position < Prompt; position++)
        {
            GpuGlqModelTests.AssertClose(actual.AsSpan(position * Vocab, Vocab), expected.AsSpan(position * Vocab, Vocab), 1e-4, $"prompt position {position}");
        }

        for (int position = Prompt; position < tokens.Length; position++)
        {
            gpu.Forward(tokens.AsSpan(position, 1), position, actual);
            cpu.Forward(tokens.AsSpan(position, 1), position, expected);
            GpuGlqModelTests.AssertClose(actual.AsSpan(0, Vocab), expected.AsSpan(0, Vocab), 1e-4, $"decode position {position}");
        }
    }

    [Fact]
    public void MappedWeights_AllocateNoDeviceCopyOfTheWeights_AndReadTheSameBytes()
    {
        string path = TinyGlqModel.WriteFile(_directory.File("glowq.glq"), new TinyGlqOptions { Method = "glowq", QkvBias = true, TiedEmbeddings = false });
        var options = new InferenceOptions { ContextLength = 16, Threads = 1 };
        using var copyDevice = new IlgpuCpuDevice(accelerators.WithWarpSize(4));
        using var mapDevice = new IlgpuCpuDevice(accelerators.WithWarpSize(4));
        using GpuGlqModel copied = GpuGlqModel.Open(GlqFile.Open(path), copyDevice, mask: null, options, GpuWeightPlacement.DeviceCopy);
        using GpuGlqModel mapped = GpuGlqModel.Open(GlqFile.Open(path), mapDevice, mask: null, options, GpuWeightPlacement.MappedFile);
        ModelConfig c = mapped.Config;
        // Norms are converted to fp32 at load, so they are the only weights a mapped model still allocates.
        long normBytes = ((2L * c.Layers) + 1) * c.Dim * sizeof(float);

        Assert.False(copied.WeightsMapped);
        Assert.Equal(0, copyDevice.MappedBytes);
        Assert.True(mapDevice.MappedBytes >= mapped.WeightBytes - normBytes, $"{mapDevice.MappedBytes} bytes mapped for {mapped.WeightBytes} bytes of weights");
        Assert.Equal(copied.WeightBytes, mapped.WeightBytes);
        Assert.Equal(copied.WeightBytes - normBytes, copied.DeviceBytes - mapped.DeviceBytes);
    }

    [Fact]
    public void AutoPlacement_MapsOnAnIntegratedDevice_AndCopiesOnADiscreteOne()
    {
        string path = TinyGlqModel.WriteFile(_directory.File("rtn.glq"), new TinyGlqOptions { Method = "rtn" });
        var options = new InferenceOptions { ContextLength = 16, Threads = 1 };
        using var discrete = new IlgpuCpuDevice(accelerators.WithWarpSize(4));
        using var integrated = new IlgpuCpuDevice(accelerators.WithWarpSize(4)) { IsIntegrated = true };

        using GpuGlqModel onDiscrete = GpuGlqModel.Open(GlqFile.Open(path), discrete, mask: null, options);
        using GpuGlqModel onIntegrated = GpuGlqModel.Open(GlqFile.Open(path), integrated, mask: null, options);

        Assert.False(onDiscrete.WeightsMapped);
        Assert.True(onIntegrated.WeightsMapped);
        Assert.True(integrated.MappedBytes > 0);
    }

    [Fact]
    public void DisposingAMappedModel_UnmapsTheFile()
    {
        string path = TinyGlqModel.WriteFile(_directory.File("rtn.glq"), new TinyGlqOptions { Method = "rtn" });
        using var device = new IlgpuCpuDevice(accelerators.WithWarpSize(4));
        GpuGlqModel model = GpuGlqModel.Open(GlqFile.Open(path), device, mask: null, new InferenceOptions { ContextLength = 16, Threads = 1 }, GpuWeightPlacement.MappedFile);
        Assert.True(device.MappedBytes > 0);

        model.Dispose();

        Assert.Equal(0, device.MappedBytes);
    }

    public void Dispose() => _directory.Dispose();
}
