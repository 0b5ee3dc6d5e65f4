namespace GlowQ.Format;

/// <summary>
/// A model or checkpoint file is malformed or unsupported. The message is one line that names the file and the
/// problem (field, expected versus found), fit to show a user as it is.
/// </summary>
public sealed class ModelFormatException : IOException
{
    public ModelFormatException(string message) : base(message) { }

    public ModelFormatException(string message, Exception inner) : base(message, inner) { }

    public static ModelFormatException For(string path, string problem) =>
        new($"{Path.GetFileName(path)}: {problem}");
}
