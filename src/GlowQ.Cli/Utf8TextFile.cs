using System.Text;

namespace GlowQ.Cli;

/// <summary>A text file the user names (evaluation or calibration text), read strictly as UTF-8.</summary>
internal static class Utf8TextFile
{
    /// <param name="what">What the file is, for the error line ("text file", "calibration text").</param>
    /// <returns>The decoded text and the file's bytes (the converter records their hash).</returns>
    public static (string Text, byte[] Bytes) Read(string path, string what)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: {what} not found", path);
        }

        byte[] bytes = File.ReadAllBytes(path);
        try
        {
            return (new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes), bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new CliUsageException($"{path}: {what} is not valid UTF-8");
        }
    }
}
