using System.Buffers.Binary;
using GlowQ.TestSupport;

namespace GlowQ.Format.Tests;

public sealed class SafetensorsFileTests
{
    [Fact]
    public void Open_ReadsF32F16AndBF16TensorsAsFloat()
    {
        using var dir = new TempDirectory();
        var f16 = new byte[6];
        var bf16 = new byte[6];
        float[] values = [1.5f, -2.25f, 3072f]; // exact in F32, F16 and BF16
        for (int i = 0; i < 3; i++)
        {
            BinaryPrimitives.WriteHalfLittleEndian(f16.AsSpan(i * 2), (Half)values[i]);
            BinaryPrimitives.WriteUInt16LittleEndian(bf16.AsSpan(i * 2), (ushort)(BitConverter.SingleToUInt32Bits(values[i]) >> 16));
        }

        SafetensorsWriter.Write(dir.File("m.safetensors"), [
            SafetensorsWriter.F32("a", [3], values),
            new("b", "F16", [3], f16),
            new("c", "BF16", [1, 3], bf16),
        ]);
        using var file = SafetensorsFile.Open(dir.File("m.safetensors"));
        Assert.Equal("pt", file.Metadata["format"]);
        foreach (string name in new[] { "a", "b", "c" })
        {
            var read = new float[3];
            file.Tensors[name].CopyTo(read);
            Assert.Equal(values, read);
        }

        Assert.Equal(new long[] { 1, 3 }, file.Tensors["c"].Shape);
        var half = new Half[3];
        file.Tensors["a"].CopyTo(half);
        Assert.Equal(values.Select(v => (Half)v), half);
    }

    [Fact]
    public void Open_HeaderLengthPastEndOfFile_NamesTheProblem()
    {
        using var dir = new TempDirectory();
        string path = dir.File("short.safetensors");
        var bytes = new byte[20];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 1000);
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains("short.safetensors", e.Message);
        Assert.Contains("header length", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    [Fact]
    public void Open_TruncatedData_ReportsTheTensorOutsideTheFile()
    {
        using var dir = new TempDirectory();
        string path = dir.File("t.safetensors");
        SafetensorsWriter.Write(path, [SafetensorsWriter.F32("w", [4], 1, 2, 3, 4)], truncateBy: 4);
        var e = Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains("'w'", e.Message);
        Assert.Contains("outside the data section", e.Message);
    }

    [Theory]
    [InlineData("\"shape\":[4]", "\"shape\":[5]", "needs 20 bytes")]
    [InlineData("\"dtype\":\"F32\"", "\"dtype\":\"I8\"", "dtype I8")]
    [InlineData("\"shape\":[4]", "\"shape\":[-4]", "not a non-negative integer")]
    [InlineData("\"data_offsets\":[0,16]", "\"data_offsets\":[8,4]", "outside the data section")]
    [InlineData("{\"__metadata__\"", "[{\"__metadata__\"", "not valid JSON")]
    public void Open_InconsistentHeader_IsRejectedWithOneLine(string find, string replace, string expected)
    {
        using var dir = new TempDirectory();
        string path = dir.File("bad.safetensors");
        SafetensorsWriter.Write(path, [SafetensorsWriter.F32("w", [4], 1, 2, 3, 4)], h => h.Replace(find, replace));
        var e = Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(path));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("bad.safetensors: ", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    [Fact]
    public void Open_MissingOrEmptyFile_IsReported()
    {
        using var dir = new TempDirectory();
        Assert.Throws<FileNotFoundException>(() => SafetensorsFile.Open(dir.File("none.safetensors")));
        File.WriteAllBytes(dir.File("empty.safetensors"), []);
        Assert.Contains("empty", Assert.Throws<ModelFormatException>(() => SafetensorsFile.Open(dir.File("empty.safetensors"))).Message);
    }
}
