using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;

namespace GlowQ.Converter.Evaluation;

/// <summary>
/// Minimal PNG writer (8-bit truecolour, no interlace): enough for evaluation plots without a native imaging library,
/// which the Native-AOT build cannot carry.
/// </summary>
public static class PngEncoder
{
    private const int BytesPerPixel = 3;

    private static ReadOnlySpan<byte> Signature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>Encodes 8-bit RGB pixels, rows top to bottom, <c>rgb.Length == width * height * 3</c>.</summary>
    public static byte[] EncodeRgb(int width, int height, ReadOnlySpan<byte> rgb)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        long stride = (long)width * BytesPerPixel;
        if (stride * height != rgb.Length)
        {
            throw new ArgumentException($"{width}x{height} RGB needs {stride * height} bytes, got {rgb.Length}", nameof(rgb));
        }

        using var output = new MemoryStream();
        output.Write(Signature);

        Span<byte> header = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header[4..], height);
        header[8] = 8; // bit depth
        header[9] = 2; // colour type: truecolour
        header[10] = 0; // compression: deflate
        header[11] = 0; // filter method: adaptive
        header[12] = 0; // no interlace
        WriteChunk(output, "IHDR"u8, header);
        WriteChunk(output, "IDAT"u8, CompressRows(rgb, (int)stride, height));
        WriteChunk(output, "IEND"u8, []);
        return output.ToArray();
    }

    private static byte[] CompressRows(ReadOnlySpan<byte> rgb, int stride, int height)
    {
        using var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            // One buffer per filter type, each prefixed with its type byte so the winner is written as is.
            var candidates = new byte[5][];
            for (int t = 0; t < candidates.Length; t++)
            {
                candidates[t] = new byte[stride + 1];
                candidates[t][0] = (byte)t;
            }

            var zeros = new byte[stride];
            for (int y = 0; y < height; y++)
            {
                ReadOnlySpan<byte> row = rgb.Slice(y * stride, stride);
                ReadOnlySpan<byte> prior = y == 0 ? zeros : rgb.Slice((y - 1) * stride, stride);
                int best = 0;
                long bestCost = long.MaxValue;
                for (int t = 0; t < candidates.Length; t++)
                {
                    long cost = Filter(t, row, prior, candidates[t].AsSpan(1));
                    if (cost < bestCost)
                    {
                        best = t;
                        bestCost = cost;
                    }
                }

                zlib.Write(candidates[best]);
            }
        }

        return compressed.ToArray();
    }

    /// <summary>
    /// Applies one PNG filter and returns the sum of |filtered byte| read as signed, libpng's heuristic for the
    /// filter that deflate will compress best; flat chart areas then become runs of zeros.
    /// </summary>
    private static long Filter(int type, ReadOnlySpan<byte> row, ReadOnlySpan<byte> prior, Span<byte> destination)
    {
        long cost = 0;
        for (int i = 0; i < row.Length; i++)
        {
            int a = i >= BytesPerPixel ? row[i - BytesPerPixel] : 0;
            int b = prior[i];
            int c = i >= BytesPerPixel ? prior[i - BytesPerPixel] : 0;
            int predictor = type switch
            {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) >> 1,
                _ => Paeth(a, b, c),
            };
            byte filtered = (byte)(row[i] - predictor);
            destination[i] = filtered;
            cost += Math.Abs((int)(sbyte)filtered);
        }

        return cost;
    }

    internal static int Paeth(int a, int b, int c)
    {
        int p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    private static void WriteChunk(Stream output, ReadOnlySpan<byte> type, ReadOnlySpan<byte> data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        output.Write(word);
        output.Write(type);
        output.Write(data);

        var crc = new Crc32();
        crc.Append(type);
        crc.Append(data);
        BinaryPrimitives.WriteUInt32BigEndian(word, crc.GetCurrentHashAsUInt32());
        output.Write(word);
    }
}
