// How long GlqFile.Open takes on a ~4 GB .glq file, and how much memory an open file costs.
// Writes each file with GlqWriter (streaming, 16 MiB zero chunks: the data is never held in memory), measures fresh
// Open+Dispose cycles, then deletes the file. Two files, one after the other:
//   single   one F16 tensor [65536, 32768] (4 GiB) and a few metadata keys;
//   llama7b  Llama-2-7B shapes (dim 4096, hidden 11008, 32 layers, vocab 32000) as GlowQ writes them: int4 qweight,
//            f16 scales, u4 zeros (group 128), rank-64 A/B factors per unit, f16 embedding/head/norms: 1,092 tensors,
//            ~3.9 GB, with the full metadata (units, ranks, scores, mask), so GlqModel.Read is timed too.
// Usage: dotnet run -c Release --project benchmarks/GlowQ.Benchmarks.GlqOpen -- [--dir DIR] [--repeats N] [--only single|llama7b]
using System.Diagnostics;
using System.Globalization;
using GlowQ.Format;
using GlowQ.Format.Glq;

string directory = Path.GetTempPath();
int repeats = 9;
string? only = null;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--dir": directory = args[++i]; break;
        case "--repeats": repeats = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--only": only = args[++i]; break;
        default: throw new ArgumentException($"unknown argument '{args[i]}' (--dir DIR, --repeats N, --only single|llama7b)");
    }
}

if (repeats < 5)
{
    throw new ArgumentException("--repeats must be at least 5");
}

directory = Path.GetFullPath(directory);
const long GiB = 1L << 30;
long free = new DriveInfo(directory).AvailableFreeSpace;
double scale = 1;
if (free < 10 * GiB)
{
    scale = Math.Max(0.05, free / 4.0 / (4 * GiB));
    Console.Error.WriteLine($"note: only {free / (double)GiB:F1} GiB free in {directory} (< 10 GiB): files are scaled to {scale:P0} of 4 GiB");
}

Console.Error.WriteLine($"{free / (double)GiB:F1} GiB free in {directory}; {repeats} timed opens per file after one warm-up open");
var rows = new List<string>();
var notes = new List<string>();
foreach ((string name, Func<double, (GlqMetadata, List<GlqTensorSpec>)> build) in new (string, Func<double, (GlqMetadata, List<GlqTensorSpec>)>)[]
         {
             ("single", SingleTensor),
             ("llama7b", Llama7bLike),
         })
{
    if (only is not null && only != name)
    {
        continue;
    }

    string path = Path.Combine(directory, $"glowq-bench-open-{name}-{Environment.ProcessId}.glq");
    try
    {
        (GlqMetadata metadata, List<GlqTensorSpec> specs) = build(scale);
        var clock = Stopwatch.StartNew();
        WriteZeros(path, metadata, specs);
        double writeSeconds = clock.Elapsed.TotalSeconds;
        long fileBytes = new FileInfo(path).Length;
        Console.Error.WriteLine($"{name}: wrote {fileBytes / 1e9:F2} GB, {specs.Count} tensors, {metadata.Count} metadata entries in {writeSeconds:F1} s");

        // Warm-up: JIT, and the header pages into the page cache.
        using (GlqFile warm = GlqFile.Open(path))
        {
            _ = GlqModelOrNull(warm);
        }

        var open = new List<double>();
        var dispose = new List<double>();
        var withModel = new List<double>();
        var workingSet = new List<long>();
        var privateBytes = new List<long>();
        var rssAnon = new List<long>();
        var rssFile = new List<long>();
        var virtualBytes = new List<long>();
        var managed = new List<long>();
        for (int r = 0; r < repeats; r++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            Memory before = Memory.Now();
            long allocated = GC.GetAllocatedBytesForCurrentThread();
            clock.Restart();
            GlqFile file = GlqFile.Open(path);
            open.Add(clock.Elapsed.TotalMilliseconds);
            managed.Add(GC.GetAllocatedBytesForCurrentThread() - allocated);
            Memory after = Memory.Now();
            workingSet.Add(after.WorkingSet - before.WorkingSet);
            privateBytes.Add(after.Private - before.Private);
            rssAnon.Add(after.RssAnon - before.RssAnon);
            rssFile.Add(after.RssFile - before.RssFile);
            virtualBytes.Add(after.Virtual - before.Virtual);
            clock.Restart();
            file.Dispose();
            dispose.Add(clock.Elapsed.TotalMilliseconds);

            clock.Restart();
            using (GlqFile again = GlqFile.Open(path))
            {
                _ = GlqModelOrNull(again);
            }

            withModel.Add(clock.Elapsed.TotalMilliseconds);
        }

        // Hash every tensor once (what `glowq verify` does), to show the cost Open avoids.
        double verifySeconds;
        long rssFileAfterVerify, rssAnonAfterVerify;
        using (GlqFile file = GlqFile.Open(path))
        {
            Memory before = Memory.Now();
            clock.Restart();
            foreach (GlqTensorInfo t in file.Tensors)
            {
                file.VerifyTensor(t);
            }

            verifySeconds = clock.Elapsed.TotalSeconds;
            Memory after = Memory.Now();
            rssFileAfterVerify = after.RssFile - before.RssFile;
            rssAnonAfterVerify = after.RssAnon - before.RssAnon;
        }

        long tensorBytes = specs.Sum(s => s.ByteLength);
        rows.Add(string.Create(CultureInfo.InvariantCulture,
            $"| {name} | {fileBytes / 1e9:F2} GB | {specs.Count} | {metadata.Count} | {writeSeconds:F1} s | "
            + $"**{Median(open):F3}** | {open.Min():F3}–{open.Max():F3} | {Median(dispose):F3} | {Median(withModel):F3} | "
            + $"{Kb(MedianOf(workingSet))} | {Kb(MedianOf(privateBytes))} | {Kb(MedianOf(rssAnon))} | {Kb(MedianOf(rssFile))} | {MedianOf(virtualBytes) / 1e9:F2} GB | "
            + $"{Kb(MedianOf(managed))} | {tensorBytes / 1e9 / verifySeconds:F2} GB/s |"));
        notes.Add(string.Create(CultureInfo.InvariantCulture,
            $"- {name}: hashing all {tensorBytes / 1e9:F2} GB took {verifySeconds:F2} s; file-backed resident pages grew by {rssFileAfterVerify / 1e9:F2} GB "
            + $"and anonymous memory by {Kb(rssAnonAfterVerify)} during it (mapped pages are page cache, shared and reclaimable, not process memory)."));
    }
    finally
    {
        File.Delete(path);
    }
}

Console.WriteLine($"{repeats} fresh Open+Dispose cycles per file after one warm-up; open times in ms, medians (min–max); memory = growth across one Open (median)");
Console.WriteLine();
Console.WriteLine("| file | size | tensors | metadata entries | write | Open ms | Open range | Dispose ms | Open + GlqModel.Read ms | working set Δ | private Δ | RssAnon Δ | RssFile Δ | address space Δ | managed alloc | verify (hash all) |");
Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
rows.ForEach(Console.WriteLine);
Console.WriteLine();
notes.ForEach(Console.WriteLine);
return 0;

static string Kb(double bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024:F0} KiB");

static double Median(IEnumerable<double> values)
{
    double[] sorted = [.. values.Order()];
    return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
}

static double MedianOf(IEnumerable<long> values) => Median(values.Select(v => (double)v));

static GlqModel? GlqModelOrNull(GlqFile file) => file.Metadata.Contains("glowq.method") ? GlqModel.Read(file) : null;

// Streams zeros through GlqWriter.Append in 16 MiB chunks.
static void WriteZeros(string path, GlqMetadata metadata, List<GlqTensorSpec> specs)
{
    var chunk = new byte[16 << 20];
    using var writer = GlqWriter.Create(path, metadata, specs);
    long remaining = specs.Sum(s => s.ByteLength);
    while (remaining > 0)
    {
        int take = (int)Math.Min(chunk.Length, remaining);
        writer.Append(chunk.AsSpan(0, take));
        remaining -= take;
    }

    writer.Commit();
}

static (GlqMetadata, List<GlqTensorSpec>) SingleTensor(double scale)
{
    long rows = Math.Max(1, (long)(65536 * scale));
    var metadata = new GlqMetadata()
        .Set("general.name", GlqValue.String("glq-open benchmark: one big tensor"))
        .Set("general.converter", GlqValue.String("GlowQ.Benchmarks.GlqOpen"));
    return (metadata, [new GlqTensorSpec("big.weight", GlqDType.F16, rows, 32768)]);
}

static (GlqMetadata, List<GlqTensorSpec>) Llama7bLike(double scale)
{
    var config = new ModelConfig
    {
        Architecture = "LlamaForCausalLM",
        Dim = 4096,
        HiddenDim = 11008,
        Layers = Math.Max(1, (int)Math.Round(32 * scale)),
        Heads = 32,
        KvHeads = 32,
        HeadDim = 128,
        VocabSize = 32000,
        MaxSequenceLength = 4096,
        NormEps = 1e-5f,
        RopeTheta = 10000,
        RopeLayout = RopeLayout.RotateHalf,
        TiedEmbeddings = false,
        BosTokenId = 1,
        EosTokenIds = [2],
    };
    const int Group = 128;
    const int Rank = 64;
    IReadOnlyList<GlqUnit> units = GlqModel.CanonicalUnits(config, "glowq", Rank);
    var specs = new List<GlqTensorSpec> { new(LlamaTensorNames.Embedding, GlqDType.F16, config.VocabSize, config.Dim) };
    for (int l = 0; l < config.Layers; l++)
    {
        specs.Add(new(LlamaTensorNames.AttentionNorm(l), GlqDType.F16, config.Dim));
        specs.Add(new(LlamaTensorNames.FfnNorm(l), GlqDType.F16, config.Dim));
        IReadOnlyList<GlqLinear> linears = GlqModel.LayerLinears(config, l);
        foreach (GlqLinear linear in linears)
        {
            int groups = (linear.Cols + Group - 1) / Group;
            specs.Add(new(linear.QWeight, GlqDType.U4, linear.Rows, groups * Group));
            specs.Add(new(linear.Scales, GlqDType.F16, linear.Rows, groups));
            specs.Add(new(linear.Zeros, GlqDType.U4, linear.Rows, groups));
        }

        foreach (GlqUnit unit in units.Where(u => u.Name.StartsWith($"l{l}.", StringComparison.Ordinal)))
        {
            specs.Add(new(unit.BName, GlqDType.F16, unit.Rank, linears.First(x => x.Module == unit.Members[0]).Cols));
            specs.AddRange(unit.Members.Select(m => new GlqTensorSpec(unit.AName(m), GlqDType.F16, linears.First(x => x.Module == m).Rows, unit.Rank)));
        }
    }

    specs.Add(new(LlamaTensorNames.FinalNorm, GlqDType.F16, config.Dim));
    specs.Add(new(LlamaTensorNames.OutputHead, GlqDType.F16, config.VocabSize, config.Dim));
    specs.Add(new("tokenizer.file", GlqDType.U8, 499_723)); // the size of Llama 2's tokenizer.model

    var metadata = new GlqMetadata()
        .Set("general.name", GlqValue.String("glq-open benchmark: Llama-2-7B shapes"))
        .Set("general.converter", GlqValue.String("GlowQ.Benchmarks.GlqOpen"));
    GlqModel.WriteConfig(metadata, config);
    metadata.Set("quant.bits", GlqValue.U8(4))
        .Set("quant.group_size", GlqValue.U32(Group))
        .Set("quant.scheme", GlqValue.String("asymmetric"))
        .Set("quant.scale_dtype", GlqValue.String("f16"))
        .Set("quant.base", GlqValue.String("gptq"))
        .Set("glowq.method", GlqValue.String("glowq"))
        .Set("glowq.rank", GlqValue.U32(Rank))
        .Set("glowq.units", GlqValue.Strings(units.Select(u => u.Name)))
        .Set("glowq.metrics", GlqValue.Strings(["gsvd", "norm_error"]))
        .Set("glowq.score.gsvd", GlqValue.Floats(units.Select((_, i) => 1f / (i + 1))))
        .Set("glowq.score.norm_error", GlqValue.Floats(units.Select((_, i) => 0.5f / (i + 1))))
        .Set("glowq.mask.default", GlqValue.Bytes(units.Select((_, i) => (byte)(i % 2))))
        .Set("tokenizer.type", GlqValue.String("sentencepiece"))
        .Set("tokenizer.file", GlqValue.String("tokenizer.file"))
        .Set("chat.format", GlqValue.String("llama2"));
    foreach (GlqUnit unit in units)
    {
        metadata.Set($"glowq.unit.{unit.Name}.members", GlqValue.Strings(unit.Members))
            .Set($"glowq.unit.{unit.Name}.rank", GlqValue.U32((uint)unit.Rank));
    }

    return (metadata, specs);
}

/// <summary>Process memory: .NET's working set and private bytes, and Linux's anonymous/file-backed resident split.</summary>
internal readonly record struct Memory(long WorkingSet, long Private, long Virtual, long RssAnon, long RssFile)
{
    public static Memory Now()
    {
        using var process = Process.GetCurrentProcess();
        long anon = -1, file = -1;
        if (File.Exists("/proc/self/status"))
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("RssAnon:", StringComparison.Ordinal))
                {
                    anon = Kilobytes(line);
                }
                else if (line.StartsWith("RssFile:", StringComparison.Ordinal))
                {
                    file = Kilobytes(line);
                }
            }
        }

        return new Memory(process.WorkingSet64, process.PrivateMemorySize64, process.VirtualMemorySize64, anon, file);
    }

    private static long Kilobytes(string line) =>
        1024 * long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
}
