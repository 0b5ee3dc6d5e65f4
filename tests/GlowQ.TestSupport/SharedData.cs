namespace GlowQ.TestSupport;

/// <summary>
/// Finds the project's shared data folder (models, evaluation text), which sits beside the repository root as
/// <c>../shared</c> both on developer machines and in CI (GLOWQ_SHARED may point at it instead). Tests that need it
/// fail loudly when it is missing; they never pass silently.
/// </summary>
public static class SharedData
{
    private static readonly Lazy<string?> Root = new(Locate);

    public static string Path(params string[] parts)
    {
        string root = Root.Value ?? throw new InvalidOperationException(
            "shared data folder not found: expected a folder 'shared' with 'models/' beside the repository root (../shared)");
        string full = System.IO.Path.Combine([root, .. parts]);
        if (!File.Exists(full) && !Directory.Exists(full))
        {
            throw new FileNotFoundException($"shared data file missing: {full}", full);
        }

        return full;
    }

    public static string Stories260KBin => Path("models", "stories260K", "stories260K.bin");

    public static string Stories260KTokenizer => Path("models", "stories260K", "tok512.bin");

    public static string Stories260KHf => Path("models", "stories260K", "hf");

    public static string TinyStoriesSample => Path("data", "tinystories-valid-sample", "TinyStories-valid-sample.txt");

    public static string WikiText2Test => Path("data", "wikitext-2-raw-test", "wiki.test.raw");

    public static string Llama2TokenizerBin => Path("models", "llama2-tokenizer", "tokenizer.bin");

    public static string Llama2TokenizerModel => Path("models", "llama2-tokenizer", "tokenizer.model");

    /// <summary>The non-empty lines of WikiText-2 raw test, CRLF normalised to LF.</summary>
    public static IReadOnlyList<string> WikiTextLines => WikiLines.Value;

    private static readonly Lazy<IReadOnlyList<string>> WikiLines = new(() =>
        File.ReadAllText(WikiText2Test, System.Text.Encoding.UTF8)
            .Replace("\r\n", "\n", StringComparison.Ordinal)
            .Split('\n')
            .Where(l => l.Length > 0)
            .ToArray());

    private static string? Locate()
    {
        string? fromEnvironment = Environment.GetEnvironmentVariable("GLOWQ_SHARED");
        if (!string.IsNullOrEmpty(fromEnvironment))
        {
            return Directory.Exists(System.IO.Path.Combine(fromEnvironment, "models"))
                ? fromEnvironment
                : throw new DirectoryNotFoundException($"GLOWQ_SHARED is {fromEnvironment}, which has no models/ folder");
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = System.IO.Path.Combine(dir.FullName, "shared");
            if (Directory.Exists(System.IO.Path.Combine(candidate, "models")))
            {
                return candidate;
            }
        }

        return null;
    }
}
