using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;

namespace GlowQ.Converter.Tests.Evaluation;

/// <summary>An independent reader for the PNGs under test: 8-bit RGB, non-interlaced, every filter type.</summary>
internal static class PngTestDecoder
{
    public static readonly byte[] Signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    public sealed record Image(int Width, int Height, byte[] Rgb, IReadOnlyList<string> ChunkTypes, byte[] Header, IReadOnlySet<int> FilterTypes)
    {
        public (byte R, byte G, byte B) this[int x, int y]
        {
            get
            {
                int i = (y * Width + x) * 3;
                return (Rgb[i], Rgb[i + 1], Rgb[i + 2]);
            }
        }
    }

    public static Image Decode(byte[] png)
    {
        Assert.Equal(Signature, png[..8]);
        var types = new List<string>();
        byte[]? header = null;
        using var idat = new MemoryStream();
        int offset = 8;
        while (offset < png.Length)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(offset));
            ReadOnlySpan<byte> typeAndData = png.AsSpan(offset + 4, 4 + length);
            uint stored = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(offset + 8 + length));
            string type = System.Text.Encoding.ASCII.GetString(typeAndData[..4]);
            Assert.True(Crc32.HashToUInt32(typeAndData) == stored, $"CRC mismatch in {type}");
            types.Add(type);
            ReadOnlySpan<byte> data = typeAndData[4..];
            if (type == "IHDR")
            {
                header = data.ToArray();
            }
            else if (type == "IDAT")
            {
                idat.Write(data);
            }

            offset += 12 + length;
        }

        Assert.Equal(png.Length, offset);
        Assert.NotNull(header);
        int width = BinaryPrimitives.ReadInt32BigEndian(header);
        int height = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4));
        Assert.Equal(new byte[] { 8, 2, 0, 0, 0 }, header[8..]);

        idat.Position = 0;
        using var raw = new MemoryStream();
        using (var zlib = new ZLibStream(idat, CompressionMode.Decompress))
        {
            zlib.CopyTo(raw);
        }

        byte[] filtered = raw.ToArray();
        var filters = Enumerable.Range(0, height).Select(y => (int)filtered[y * (width * 3 + 1)]).ToHashSet();
        return new Image(width, height, Unfilter(filtered, width, height), types, header, filters);
    }

    private static byte[] Unfilter(byte[] filtered, int width, int height)
    {
        int stride = width * 3;
        Assert.Equal((stride + 1) * height, filtered.Length);
        var rgb = new byte[stride * height];
        for (int y = 0; y < height; y++)
        {
            byte filter = filtered[y * (stride + 1)];
            for (int i = 0; i < stride; i++)
            {
                int a = i >= 3 ? rgb[y * stride + i - 3] : 0;
                int b = y > 0 ? rgb[(y - 1) * stride + i] : 0;
                int c = i >= 3 && y > 0 ? rgb[(y - 1) * stride + i - 3] : 0;
                int predictor = filter switch
                {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => (a + b) / 2,
                    4 => Paeth(a, b, c),
                    _ => throw new InvalidDataException($"row {y}: filter type {filter}"),
                };
                rgb[y * stride + i] = (byte)(filtered[y * (stride + 1) + 1 + i] + predictor);
            }
        }

        return rgb;
    }

    // Written from the PNG specification's pseudo-code rather than shared with the encoder.
    private static int Paeth(int a, int b, int c)
    {
        int p = a + b - c;
        int pa = Math.Abs(p - a);
        int pb = Math.Abs(p - b);
        int pc = Math.Abs(p - c);
        if (pa <= pb && pa <= pc)
        {
            return a;
        }

        return pb <= pc ? b : c;
    }
}
