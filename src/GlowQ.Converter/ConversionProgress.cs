namespace GlowQ.Converter;

/// <summary>
/// What a long conversion reports while it runs: stages of counted steps (which a terminal shows as a progress bar
/// with an ETA) and notices (one line each).
/// </summary>
public interface IConversionProgress
{
    /// <summary>A new stage of <paramref name="total"/> steps begins (the previous one, if any, is finished).</summary>
    void BeginStage(string name, int total);

    /// <summary><paramref name="done"/> of the current stage's steps are complete.</summary>
    void Advance(int done, string? detail = null);

    /// <summary>Something the user should know (a clamped rank, a fallback taken).</summary>
    void Notice(string message);
}

/// <summary>Progress that goes nowhere.</summary>
public sealed class SilentProgress : IConversionProgress
{
    public static readonly SilentProgress Instance = new();

    public void BeginStage(string name, int total)
    {
    }

    public void Advance(int done, string? detail = null)
    {
    }

    public void Notice(string message)
    {
    }
}
