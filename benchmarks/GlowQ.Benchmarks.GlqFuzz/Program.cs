// Long-run mutation fuzzer for the .glq reader (formats/glq-v1.md). Same mutators and checks as the CI test
// tests/GlowQ.Format.Tests/GlqFuzzTests.cs, without its time box:
//   dotnet run -c Release --project benchmarks/GlowQ.Benchmarks.GlqFuzz -- --inputs 1000000 --seed 1
//   dotnet run -c Release --project benchmarks/GlowQ.Benchmarks.GlqFuzz -- --seed 1 --replay 4711 --mode Resigned
// Exit code 0: no input produced anything but ModelFormatException; 1: failures (each printed with its replay
// command); 2: bad arguments.
using System.Globalization;
using GlowQ.GlqFuzz;

long inputs = 100_000;
ulong seed = 1;
long? replay = null;
var mode = GlqFuzzMode.Mixed;
double seconds = double.PositiveInfinity;
try
{
    for (int i = 0; i < args.Length; i++)
    {
        string value = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"{args[i]} needs a value");
        switch (args[i])
        {
            case "--inputs": inputs = long.Parse(value, CultureInfo.InvariantCulture); break;
            case "--seed": seed = ulong.Parse(value, CultureInfo.InvariantCulture); break;
            case "--replay": replay = long.Parse(value, CultureInfo.InvariantCulture); break;
            case "--mode": mode = Enum.Parse<GlqFuzzMode>(value, ignoreCase: true); break;
            case "--seconds": seconds = double.Parse(value, CultureInfo.InvariantCulture); break;
            default: throw new ArgumentException($"unknown option {args[i]}");
        }

        i++;
    }
}
catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
{
    Console.Error.WriteLine($"glq-fuzz: {e.Message}");
    Console.Error.WriteLine("usage: glq-fuzz [--inputs N] [--seed S] [--mode raw|resigned|mixed] [--seconds T] [--replay ITERATION]");
    return 2;
}

string folder = Path.Combine(Path.GetTempPath(), "glq-fuzz-" + Guid.NewGuid().ToString("N")[..12]);
Directory.CreateDirectory(folder);
try
{
    byte[][] seeds = [GlqSamples.WriteSample(Path.Combine(folder, "sample.glq")), GlqSamples.WriteMinimal(Path.Combine(folder, "minimal.glq"))];
    var fuzzer = new GlqFuzzer(seeds, Path.Combine(folder, "input.glq"));
    if (replay is { } iteration)
    {
        (byte[] input, List<string> log, GlqFuzzMode actual) = fuzzer.Input(seed, iteration, mode);
        string saved = Path.Combine(Environment.CurrentDirectory, $"glq-fuzz-{seed}-{iteration}.glq");
        File.WriteAllBytes(saved, input);
        Console.WriteLine($"seed {seed} iteration {iteration} mode {actual}: {string.Join("; ", log)}");
        Console.WriteLine($"input written to {saved}");
        (bool opened, GlqFuzzFailure? failure) = fuzzer.RunOne(seed, iteration, mode);
        Console.WriteLine(failure?.ToString() ?? (opened ? "opened and exercised without error" : "refused with a one-line ModelFormatException"));
        return failure is null ? 0 : 1;
    }

    using var stop = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) =>
    {
        e.Cancel = true; // finish the current input, report, and clean up
        stop.Cancel();
    };
    Console.WriteLine($"glq-fuzz: seed {seed}, mode {mode}, up to {inputs} inputs, {Environment.ProcessorCount} processors, .NET {Environment.Version}");
    GlqFuzzResult result = fuzzer.Run(seed, inputs, double.IsFinite(seconds) ? TimeSpan.FromSeconds(seconds) : TimeSpan.MaxValue, mode, maxFailures: 100, stop.Token);
    Console.WriteLine(GlqFuzzer.Summary(result));
    foreach (GlqFuzzFailure failure in result.Failures)
    {
        Console.WriteLine(failure);
    }

    return result.Failures.Count == 0 ? 0 : 1;
}
finally
{
    Directory.Delete(folder, recursive: true);
}
