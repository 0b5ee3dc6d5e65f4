// Speed of the converter's dense fp64 kernels (GlowQ.Converter.LinearAlgebra.DenseKernels) and of the shared low-rank
// factorisation built on them, at Llama-3.2-1B shapes (d 2048, hidden 8192), against the MathNet.Numerics managed
// path they replace.
// Usage: dotnet run -c Release --project benchmarks/GlowQ.Benchmarks.LinearAlgebra -- [--repeats N]
//        [--only gemm,cholesky,whitening,lower,gram,factorize] [--old]
//   By default the old MathNet path is timed where it takes seconds (GEMM 2048³, Cholesky and Σ → L at 2048, a
//   64-token Σ accumulation, the qkv factorisation); --old adds the ones that take minutes (Σ → L at 8192, B·L at
//   2048×8192², the down factorisation).
using System.Diagnostics;
using System.Globalization;
using System.Runtime.Intrinsics.X86;
using GlowQ.Benchmarks.LinearAlgebra;
using GlowQ.Converter;
using GlowQ.Converter.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra.Double;

var options = BenchmarkOptions.Parse(args);
Console.WriteLine($"{Environment.ProcessorCount} cores, FMA {(Fma.IsSupported ? "yes" : "no")}, {options.Repeats} repeats after one warm-up "
                  + "(old MathNet paths: one run); medians (min–max)");
Console.WriteLine();
Console.WriteLine("| operation | shape | path | median s | range s | GFLOP/s |");
Console.WriteLine("|---|---|---|---:|---:|---:|");

if (options.Runs("gemm"))
{
    const int n = 2048;
    double[] a = Data.Uniform(n * n, 1), b = Data.Uniform(n * n, 2), c = new double[n * n];
    double flops = 2.0 * n * n * n;
    Report("Gemm C = A·B", "2048³", "new", flops, Time(options.Repeats, () => DenseKernels.Gemm(MatrixOp.None, MatrixOp.None, n, n, n, 1, a, 0, n, b, 0, n, 0, c, 0, n)));
    Report("Gemm C = A·Bᵀ", "2048³", "new", flops, Time(options.Repeats, () => DenseKernels.Gemm(MatrixOp.None, MatrixOp.Transpose, n, n, n, 1, a, 0, n, b, 0, n, 0, c, 0, n)));
    Matrix<double> ma = Data.Matrix(n, n, a), mb = Data.Matrix(n, n, b);
    Report("Gemm C = A·B", "2048³", "MathNet", flops, Time(0, () => _ = ma * mb));
}

if (options.Runs("cholesky"))
{
    foreach (int n in new[] { 2048, 8192 })
    {
        double[] spd = Data.Spd(n, 3);
        var work = new double[spd.Length];
        double flops = (double)n * n * n / 3;
        Report("CholeskyLower", $"{n}", "new", flops, Time(n > 4096 ? Math.Min(3, options.Repeats) : options.Repeats,
            () => DenseKernels.CholeskyLower(work, n), before: () => spd.CopyTo(work)));
        if (n <= 2048)
        {
            Matrix<double> m = Data.Matrix(n, n, spd);
            Report("CholeskyLower", $"{n}", "MathNet", flops, Time(0, () => _ = m.Cholesky()));
        }
    }
}

if (options.Runs("whitening"))
{
    // What the converter calls once per unit input: Σ from the fp64 sums, shrunk, and its Cholesky factor.
    foreach (int d in new[] { 2048, 8192 })
    {
        var stats = new CovarianceWhitening(d);
        stats.Accumulate(Data.Activations(2 * d, d, 9), 2 * d);
        Report("CovarianceWhitening.WhiteningArray", $"{d}", "new", (double)d * d * d / 3, Time(d > 4096 ? Math.Min(3, options.Repeats) : options.Repeats, () => _ = stats.WhiteningArray(0.05)));
        if (d <= 2048 || options.Old)
        {
            Report("CovarianceWhitening.Whitening", $"{d}", "MathNet (old)", (double)d * d * d / 3, Time(0, () => _ = MathNetReference.Whitening(stats.Covariance(0.05))));
        }
    }
}

if (options.Runs("lower"))
{
    const int m = 2048, n = 8192;
    double[] b = Data.Uniform(m * n, 4);
    double[] l = Data.Spd(n, 5);
    DenseKernels.CholeskyLower(l, n);
    double flops = (double)m * n * n; // the lower triangle only: half a dense product's 2·m·n²
    Report("MultiplyLower B·L", "2048×8192 · 8192²", "new", flops, Time(options.Repeats, () => _ = DenseKernels.MultiplyLower(b, m, n, l)));
    if (options.Old)
    {
        Matrix<double> mb = Data.Matrix(m, n, b), ml = Data.Matrix(n, n, l);
        Report("dense B·L", "2048×8192 · 8192²", "MathNet", 2 * flops, Time(0, () => _ = mb * ml));
    }
}

if (options.Runs("gram"))
{
    const int tokens = 4096, d = 8192, oldTokens = 64;
    float[] x = Data.Activations(tokens, d, 6);
    var sum = new double[(long)d * d];
    double flops = (double)tokens * d * (d + 1);
    Report("AccumulateGram XᵀX", "4096 tok × 8192", "new", flops, Time(options.Repeats, () => DenseKernels.AccumulateGram(x, tokens, d, sum)));
    Measurement old = Time(0, () => MathNetReference.AccumulatePerToken(x.AsSpan(0, oldTokens * d), oldTokens, d, sum));
    Report("per-token Σ (old)", $"{oldTokens} tok × 8192", "old scalar", (double)oldTokens * d * (d + 1), old);
}

if (options.Runs("factorize"))
{
    // Llama-3.2-1B units, rank 64: down (one member, 2048 × 8192), qkv (q 2048 + k 512 + v 512 rows × 2048) and
    // gate/up (8192 + 8192 rows × 2048). The old path's full QR of the 16384-row gate/up stack would need a 2 GiB Q:
    // it is not run there.
    foreach ((string name, int[] rows, int cols, bool? oldIsCheap) in new (string, int[], int, bool?)[]
    {
        ("down", [2048], 8192, false), ("qkv", [2048, 512, 512], 2048, true), ("gate/up", [8192, 8192], 2048, null),
    })
    {
        var stats = new CovarianceWhitening(cols);
        stats.Accumulate(Data.Activations(2 * cols, cols, 7), 2 * cols);
        double[] whitening = stats.WhiteningArray(0.05);
        float[][] errors = [.. rows.Select((r, i) => Data.QuantizationError(r * cols, 8 + i))];
        var o = new SharedLowRankFactorization.Options(64, 42);
        string shape = $"{string.Join('+', rows)} × {cols}, r 64";
        UnitFactors? fresh = null;
        Report($"Factorize {name}", shape, "new", 0, Time(options.Repeats, () => fresh = SharedLowRankFactorization.Factorize(errors, rows, cols, whitening, o)));
        if (oldIsCheap == true || (oldIsCheap == false && options.Old))
        {
            Matrix<double> l = Data.Matrix(cols, cols, whitening);
            UnitFactors? reference = null;
            Report($"Factorize {name}", shape, "MathNet (old)", 0, Time(0, () => reference = MathNetReference.Factorize(errors, rows, cols, l, o)));
            Console.WriteLine($"|  | {name}: captured energy new {fresh!.CapturedEnergyFraction:F6}, old {reference!.CapturedEnergyFraction:F6} |  |  |  |  |");
        }
    }
}

static Measurement Time(int repeats, Action action, Action? before = null)
{
    var seconds = new List<double>();
    for (int r = repeats > 0 ? -1 : 0; r < Math.Max(1, repeats); r++) // r = -1 is the warm-up
    {
        before?.Invoke();
        var clock = Stopwatch.StartNew();
        action();
        double elapsed = clock.Elapsed.TotalSeconds;
        if (r >= 0)
        {
            seconds.Add(elapsed);
        }
    }

    seconds.Sort();
    double median = seconds.Count % 2 == 1 ? seconds[seconds.Count / 2] : (seconds[seconds.Count / 2 - 1] + seconds[seconds.Count / 2]) / 2;
    return new Measurement(median, seconds[0], seconds[^1]);
}

static void Report(string operation, string shape, string path, double flops, Measurement m)
{
    string rate = flops > 0 ? (flops / m.Median / 1e9).ToString("F1", CultureInfo.InvariantCulture) : "";
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"| {operation} | {shape} | {path} | {m.Median:F3} | {m.Min:F3}–{m.Max:F3} | {rate} |"));
}

internal readonly record struct Measurement(double Median, double Min, double Max);

internal sealed record BenchmarkOptions(int Repeats, string[] Only, bool Old)
{
    public bool Runs(string name) => Only.Length == 0 || Only.Contains(name);

    public static BenchmarkOptions Parse(string[] args)
    {
        var o = new BenchmarkOptions(5, [], false);
        for (int i = 0; i < args.Length; i++)
        {
            o = args[i] switch
            {
                "--repeats" => o with { Repeats = int.Parse(args[++i], CultureInfo.InvariantCulture) },
                "--only" => o with { Only = args[++i].Split(',') },
                "--old" => o with { Old = true },
                _ => throw new ArgumentException($"unknown argument '{args[i]}' (--repeats N, --only gemm,cholesky,whitening,lower,gram,factorize, --old)"),
            };
        }

        if (o.Repeats < 1)
        {
            throw new ArgumentException("--repeats must be at least 1");
        }

        return o;
    }
}
