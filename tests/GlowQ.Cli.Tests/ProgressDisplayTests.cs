namespace GlowQ.Cli.Tests;

public sealed class ProgressDisplayTests
{
    private sealed class FakeClock
    {
        public TimeSpan Now { get; set; }
    }

    [Fact]
    public void OnATerminal_TheBarIsRedrawnInPlace_WithAnEtaFromTheRateSoFar()
    {
        var clock = new FakeClock();
        var stderr = new StringWriter();
        var display = new ProgressDisplay(stderr, "glowq convert", interactive: true, quiet: false, () => clock.Now);
        display.BeginStage("quantise layers", 16);
        clock.Now = TimeSpan.FromSeconds(10);
        display.Advance(4, "layer 4/16");
        string text = stderr.ToString();
        // 4 of 16 done in 10 s: 12 left at 2.5 s each.
        Assert.Contains("\rglowq convert: quantise layers [#######.....................] 4/16 (layer 4/16), 10.0 s, ETA 30.0 s", text.Replace("\u001b[2K", ""));
        Assert.DoesNotContain("\n", text);

        clock.Now = TimeSpan.FromSeconds(40);
        display.Advance(16);
        Assert.EndsWith("16/16, 40.0 s" + Environment.NewLine, stderr.ToString().Replace("\u001b[2K", ""));
    }

    [Fact]
    public void Redirected_WritesOneLinePerStep_AndNoticesAsTheirOwnLines()
    {
        var clock = new FakeClock();
        var stderr = new StringWriter();
        var display = new ProgressDisplay(stderr, "glowq eval", interactive: false, quiet: false, () => clock.Now);
        display.BeginStage("evaluate variants", 2);
        clock.Now = TimeSpan.FromSeconds(3);
        display.Advance(1, "fp");
        display.Notice("something to know");
        clock.Now = TimeSpan.FromSeconds(90);
        display.Advance(2, "rtn");
        Assert.Equal(
            [
                "glowq eval: evaluate variants 1/2 (fp), 3.0 s, ETA 3.0 s",
                "glowq eval: something to know",
                "glowq eval: evaluate variants 2/2 (rtn), 1 min 30 s",
            ],
            stderr.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void Quiet_PrintsNothing()
    {
        var stderr = new StringWriter();
        var display = new ProgressDisplay(stderr, "x", interactive: true, quiet: true);
        display.BeginStage("s", 2);
        display.Advance(1);
        display.Notice("n");
        Assert.Empty(stderr.ToString());
    }
}
