using System.Buffers.Binary;
using GlowQ.Converter.Evaluation;

namespace GlowQ.Converter.Tests.Evaluation;

public sealed class PngEncoderTests
{
    private static byte[] RandomRgb(int width, int height, int seed)
    {
        var bytes = new byte[width * height * 3];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    [Fact]
    public void Png_StartsWithTheSignature_AndHasIhdrIdatIendChunksInOrder()
    {
        byte[] png = PngEncoder.EncodeRgb(3, 2, RandomRgb(3, 2, 1));
        PngTestDecoder.Image image = PngTestDecoder.Decode(png);

        Assert.Equal(PngTestDecoder.Signature, png[..8]);
        Assert.Equal("IHDR", image.ChunkTypes[0]);
        Assert.Equal("IEND", image.ChunkTypes[^1]);
        Assert.All(image.ChunkTypes.Skip(1).SkipLast(1), t => Assert.Equal("IDAT", t));
        Assert.True(image.ChunkTypes.Count >= 3);
    }

    [Fact]
    public void Ihdr_RecordsSize_EightBitTruecolour_DeflateAdaptiveFilteringNoInterlace()
    {
        PngTestDecoder.Image image = PngTestDecoder.Decode(PngEncoder.EncodeRgb(300, 7, RandomRgb(300, 7, 2)));

        Assert.Equal(13, image.Header.Length);
        Assert.Equal(300, BinaryPrimitives.ReadInt32BigEndian(image.Header));
        Assert.Equal(7, BinaryPrimitives.ReadInt32BigEndian(image.Header.AsSpan(4)));
        Assert.Equal(new byte[] { 8, 2, 0, 0, 0 }, image.Header[8..]);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(1, 13)]
    [InlineData(13, 1)]
    [InlineData(3, 5)]
    [InlineData(33, 17)]
    [InlineData(128, 64)]
    public void DecodedPixels_EqualTheEncodedRandomImage(int width, int height)
    {
        byte[] rgb = RandomRgb(width, height, width * 1000 + height);

        PngTestDecoder.Image image = PngTestDecoder.Decode(PngEncoder.EncodeRgb(width, height, rgb));

        Assert.Equal((width, height), (image.Width, image.Height));
        Assert.Equal(rgb, image.Rgb);
    }

    [Fact]
    public void StructuredImage_RoundTrips_ThroughSeveralFilterTypes()
    {
        // Gradients, flat bands and noise make different rows prefer different filters, so the round trip covers them.
        const int width = 64, height = 96;
        var rgb = new byte[width * height * 3];
        var random = new Random(7);
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                int i = (y * width + x) * 3;
                (rgb[i], rgb[i + 1], rgb[i + 2]) = (y / 16) switch
                {
                    0 => ((byte)(x * 4), (byte)(x * 2), (byte)x),
                    1 => ((byte)(y * 5), (byte)(y * 3), (byte)y),
                    2 => ((byte)(x * 3 + y * 2), (byte)(x ^ y), (byte)(x * y)),
                    3 => ((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256)),
                    _ => ((byte)200, (byte)(x < 32 ? 10 : 250), (byte)(x + y)),
                };
            }
        }

        PngTestDecoder.Image image = PngTestDecoder.Decode(PngEncoder.EncodeRgb(width, height, rgb));

        Assert.Equal(rgb, image.Rgb);
        Assert.True(image.FilterTypes.Count >= 3, $"filters used: {string.Join(",", image.FilterTypes)}");
    }

    [Fact]
    public void Encoding_IsDeterministic()
    {
        byte[] rgb = RandomRgb(40, 30, 9);

        Assert.Equal(PngEncoder.EncodeRgb(40, 30, rgb), PngEncoder.EncodeRgb(40, 30, rgb));
    }

    [Theory]
    [InlineData(2, 2, 11)]
    [InlineData(2, 2, 13)]
    [InlineData(0, 2, 0)]
    [InlineData(2, -1, 0)]
    public void MismatchedOrNonPositiveSizes_AreRejected(int width, int height, int length)
    {
        Assert.ThrowsAny<ArgumentException>(() => PngEncoder.EncodeRgb(width, height, new byte[length]));
    }
}
