// Decode GEMV speed of the int4 runtime kernels at Llama-3.2-1B shapes, against the engine's fp32 and fp16 MatMul.
// Usage: dotnet run -c Release --project benchmarks/GlowQ.Benchmarks.Int4 -- [--threads 1,2] [--group 128]
//        [--rank 64] [--samples 200] [--path v256|v128|scalar]
// Each shape's weights are replicated until one sweep over the copies exceeds 160 MB, and calls rotate through
// them, so every call streams its weights from DRAM rather than from the last-level cache.
using System.Diagnostics;
using System.Globalization;
using GlowQ.Engine;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Kernels;

var options = Int4BenchmarkOptions.Parse(args);
(string Name, int Rows, int Cols, int Members)[] shapes =
[
    ("o_proj 2048→2048", 2048, 2048, 1),
    ("gate/up 2048→8192 ×2 (SwiGLU)", 8192, 2048, 2),
    ("down 8192→2048", 2048, 8192, 1),
];

Console.WriteLine($"group {options.Group}, rank {options.Rank}, {options.Samples} calls per figure after warm-up, median µs; "
                  + $"GB/s counts the bytes each call streams (int4: codes+scales+zeros, plus fp16 A and B when corrected)");
Console.WriteLine($"path {options.Path}, {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture}");
Console.WriteLine();
Console.WriteLine("| shape | threads | kernel | µs | GB/s | fp32 MatMul µs | fp16 MatMul µs | speed-up vs fp32 | vs fp16 |");
Console.WriteLine("|---|---:|---|---:|---:|---:|---:|---:|---:|");
foreach ((string name, int rows, int cols, int members) in shapes)
{
    var rng = new Random(1);
    float[] x = [.. Enumerable.Range(0, cols).Select(_ => (float)(rng.NextDouble() * 2 - 1))];
    Int4Unit[] units = Copies(rows * (long)cols * members / 2, () => RandomUnit(rng, rows, cols, members, options.Group, options.Rank));
    WeightMatrix[] f32 = Copies(4L * rows * cols * members, () => WeightMatrix.FromSingle(rows, cols, RandomFloats(rng, rows * cols)));
    WeightMatrix[] f16 = Copies(2L * rows * cols * members, () => WeightMatrix.FromHalf(rows, cols, [.. RandomFloats(rng, rows * cols).Select(v => (Half)v)]));
    float[][] outputs = [.. Enumerable.Range(0, Int4Unit.MaxMembers).Select(_ => new float[rows])];
    foreach (int threads in options.Threads)
    {
        using var pool = new WorkerPool(threads);
        var fused = new W4GemvWithCorrection(pool, cols, options.Rank) { Path = options.Path };
        var matMul = new MatMul(pool, cols);
        double fp32 = Time(i =>
        {
            for (int m = 0; m < members; m++)
            {
                matMul.Run(f32[(i * members + m) % f32.Length], x, outputs[m], 1);
            }
        });
        double fp16 = Time(i =>
        {
            for (int m = 0; m < members; m++)
            {
                matMul.Run(f16[(i * members + m) % f16.Length], x, outputs[m], 1);
            }
        });
        foreach (bool restore in (bool[])[false, true])
        {
            double int4 = Time(i =>
            {
                Int4Unit unit = units[i % units.Length];
                if (members == 2)
                {
                    fused.RunSwiGlu(unit, restore, x, outputs[0], 1);
                }
                else
                {
                    fused.Run(unit, restore, x, 1, outputs[0]);
                }
            });
            long bytes = units[0].WeightBytes + (restore ? units[0].CorrectionBytes : 0);
            string kernel = restore ? $"int4 + rank-{options.Rank} correction" : "int4 (mask 0)";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {threads} | {kernel} | {int4:F0} | {bytes / int4 / 1e3:F1} | {fp32:F0} | {fp16:F0} | {fp32 / int4:F2}× | {fp16 / int4:F2}× |"));
        }
    }
}

double Time(Action<int> call)
{
    for (int i = 0; i < 20; i++)
    {
        call(i);
    }

    var samples = new double[options.Samples];
    var clock = new Stopwatch();
    for (int i = 0; i < samples.Length; i++)
    {
        clock.Restart();
        call(i);
        samples[i] = clock.Elapsed.TotalMicroseconds;
    }

    Array.Sort(samples);
    return samples[samples.Length / 2];
}

static T[] Copies<T>(long bytesEach, Func<T> create) =>
    [.. Enumerable.Range(0, (int)Math.Clamp((160L << 20) / bytesEach + 1, 2, 64)).Select(_ => create())];

static float[] RandomFloats(Random rng, int count) => [.. Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() - 0.5) * 0.05f)];

static Int4Unit RandomUnit(Random rng, int rows, int cols, int members, int groupSize, int rank)
{
    int groups = (cols + groupSize - 1) / groupSize;
    var matrices = new Int4Matrix[members];
    for (int m = 0; m < members; m++)
    {
        var codes = new byte[rows * Int4Encoding.PackedRowBytes(groups * groupSize)];
        var zeros = new byte[rows * Int4Encoding.PackedRowBytes(groups)];
        rng.NextBytes(codes);
        rng.NextBytes(zeros);
        Half[] scales = [.. Enumerable.Range(0, rows * groups).Select(_ => (Half)(rng.NextDouble() * 0.01))];
        matrices[m] = Int4Matrix.FromQuantized(rows, cols, groupSize, codes, scales, zeros);
    }

    Half[] b = [.. RandomFloats(rng, rank * cols).Select(v => (Half)v)];
    return new Int4Unit(matrices, rank, b, [.. matrices.Select(m => (ReadOnlyMemory<Half>)RandomFloats(rng, m.Rows * rank).Select(v => (Half)v).ToArray())]);
}

internal sealed record Int4BenchmarkOptions(int[] Threads, int Group, int Rank, int Samples, Int4Path Path)
{
    public static Int4BenchmarkOptions Parse(string[] args)
    {
        var o = new Int4BenchmarkOptions([1, Environment.ProcessorCount], 128, 64, 200, Int4Kernels.Best);
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            string v = args[i + 1];
            o = args[i] switch
            {
                "--threads" => o with { Threads = [.. v.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).Distinct()] },
                "--group" => o with { Group = int.Parse(v, CultureInfo.InvariantCulture) },
                "--rank" => o with { Rank = int.Parse(v, CultureInfo.InvariantCulture) },
                "--samples" => o with { Samples = int.Parse(v, CultureInfo.InvariantCulture) },
                "--path" => o with { Path = v switch { "v256" => Int4Path.Vector256, "v128" => Int4Path.Vector128, "scalar" => Int4Path.Scalar, _ => throw new ArgumentException($"unknown path {v}") } },
                _ => throw new ArgumentException($"unknown option {args[i]}"),
            };
        }

        return o;
    }
}
