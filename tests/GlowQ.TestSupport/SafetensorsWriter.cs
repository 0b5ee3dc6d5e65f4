using System.Buffers.Binary;
using System.Text;

namespace GlowQ.TestSupport;

/// <summary>Writes small safetensors files for tests, including deliberately broken ones.</summary>
public static class SafetensorsWriter
{
    public sealed record Entry(string Name, string DType, long[] Shape, byte[] Data);

    public static Entry F32(string name, long[] shape, params float[] values)
    {
        var data = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * 4), values[i]);
        }

        return new Entry(name, "F32", shape, data);
    }

    public static Entry F16(string name, long[] shape, params float[] values)
    {
        var data = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteHalfLittleEndian(data.AsSpan(i * 2), (Half)values[i]);
        }

        return new Entry(name, "F16", shape, data);
    }

    /// <summary>BF16 by truncation of the fp32 bits (what a reader widens back exactly).</summary>
    public static Entry BF16(string name, long[] shape, params float[] values)
    {
        var data = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(i * 2), (ushort)(BitConverter.SingleToUInt32Bits(values[i]) >> 16));
        }

        return new Entry(name, "BF16", shape, data);
    }

    public static void Write(string path, IEnumerable<Entry> entries, Func<string, string>? editHeader = null, int truncateBy = 0)
    {
        var header = new StringBuilder("{\"__metadata__\":{\"format\":\"pt\"}");
        long offset = 0;
        var data = new MemoryStream();
        foreach (Entry e in entries)
        {
            header.Append($",\"{e.Name}\":{{\"dtype\":\"{e.DType}\",\"shape\":[{string.Join(",", e.Shape)}],\"data_offsets\":[{offset},{offset + e.Data.Length}]}}");
            data.Write(e.Data);
            offset += e.Data.Length;
        }

        header.Append('}');
        string headerText = editHeader is null ? header.ToString() : editHeader(header.ToString());
        byte[] headerBytes = Encoding.UTF8.GetBytes(headerText);
        var file = new MemoryStream();
        var length = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)headerBytes.Length);
        file.Write(length);
        file.Write(headerBytes);
        file.Write(data.ToArray());
        byte[] bytes = file.ToArray();
        File.WriteAllBytes(path, bytes[..(bytes.Length - truncateBy)]);
    }
}
