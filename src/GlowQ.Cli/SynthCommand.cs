using System.CommandLine;
using System.Globalization;
using GlowQ.Converter;

namespace GlowQ.Cli;

/// <summary><c>glowq synth</c>: an HF checkpoint with a real model's shapes and random, realistic weights.</summary>
internal static class SynthCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var shape = new Option<string>("--shape") { Description = $"Model shape: {string.Join(", ", SyntheticCheckpoint.Shapes.Select(s => s.Name))}.", Required = true };
        shape.AcceptOnlyFromAmong([.. SyntheticCheckpoint.Shapes.Select(s => s.Name)]);
        var output = new Option<string>("--output", "-o") { Description = "Directory to write config.json, model.safetensors (F16) and tokenizer.bin into.", Required = true };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the weights (same seed, same bytes).", DefaultValueFactory = _ => 1 };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Print nothing on stderr but errors." };
        var command = new Command("synth", "Write a synthetic HF checkpoint with real model shapes (for speed and scaling work; the weights are random).");
        foreach (Option o in new Option[] { shape, output, seed, quiet })
        {
            command.Options.Add(o);
        }

        command.SetAction(parse =>
        {
            SyntheticCheckpoint.Shape s = SyntheticCheckpoint.Find(parse.GetValue(shape)!);
            string directory = parse.GetValue(output)!;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var progress = new LayerProgress(stderr, s.Layers, parse.GetValue(quiet));
            long bytes = SyntheticCheckpoint.Write(s, directory, parse.GetValue(seed), progress);
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {directory}: {s.Name} shape, {bytes / 1e9:F2} GB of F16 weights ({clock.Elapsed.TotalSeconds:F1} s)"));
            return GlowQCommandLine.ExitOk;
        });
        return command;
    }

    /// <summary>One stderr line per finished layer, reported on the writing thread, in order.</summary>
    private sealed class LayerProgress(TextWriter stderr, int layers, bool quiet) : IProgress<string>
    {
        private int _done;

        public void Report(string value)
        {
            if (!quiet && value.EndsWith("down_proj.weight", StringComparison.Ordinal))
            {
                stderr.WriteLine($"glowq synth: layer {++_done}/{layers}");
            }
        }
    }
}
