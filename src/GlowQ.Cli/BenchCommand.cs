using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using GlowQ.Converter;
using GlowQ.Engine;
using GlowQ.Format.Glq;
using GlowQ.Runtime.Benchmarks;
using GlowQ.Runtime.Cuda;
using GlowQ.Runtime.Gpu;
using GlowQ.Runtime.Model;
using GlowQ.Runtime.Profiles;

namespace GlowQ.Cli;

/// <summary>
/// <c>glowq bench</c>: on-device latency of one or more .glq files at several restoration fractions and prompt
/// lengths, in one process so every ratio is taken on the same machine state. Prints a markdown table; with --out,
/// writes it, the JSON report and PNG plots (decode tokens/s, TTFB and % of roofline against the restored fraction) there.
/// </summary>
internal static class BenchCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr, CliDefaults defaults)
    {
        var models = new Option<string[]>("--model", "-m")
        {
            Description = "A .glq file to measure; repeat for several (rtn, layerwise and glowq conversions of one model are compared). Default: the bundled stories260K.glq.",
            AllowMultipleArgumentsPerToken = false,
        };
        var backend = new Option<string>("--backend")
        {
            Description = "cuda, cpu, or auto (cuda when a device answers, else cpu).",
            DefaultValueFactory = _ => defaults.Settings.Model.Backend,
        };
        var promptLengths = new Option<string>("--prompt-lengths")
        {
            Description = "Comma-separated prompt lengths in tokens; lengths that do not fit a model's context with --gen are skipped with a notice.",
            DefaultValueFactory = _ => "16,128,512,2048",
        };
        var generated = new Option<int>("--gen") { Description = "Tokens generated after each prompt (≥ 2): the first is timed as TTFB, the rest as decoding.", DefaultValueFactory = _ => 128 };
        var repeats = new Option<int>("--repeats")
        {
            Description = "Rounds: each loads every configuration in turn and runs each prompt length once, so machine drift spreads over all of them; median, min and max are over the rounds.",
            DefaultValueFactory = _ => 5,
        };
        var warmup = new Option<int>("--warmup") { Description = "Unmeasured runs per configuration and prompt length, in the first round.", DefaultValueFactory = _ => 1 };
        var restore = new Option<string>("--restore")
        {
            Description = "Comma-separated restoration settings to measure per file: none, all, or fractions of units ranked by --metric. Files without units run once (none).",
            DefaultValueFactory = _ => "none,all,0.25,0.5,0.75",
        };
        var metric = new Option<string?>("--metric") { Description = "Stored importance score ranking units for fractions (default: gsvd, or the file's first)." };
        var profile = new Option<string?>("--profile")
        {
            Description = "Device profile (name or .json path): its memory bandwidth is the roofline on a GPU, its KV cache dtype the default. Default: the detected Jetson, else cpu.",
            DefaultValueFactory = _ => defaults.Settings.Model.Profile,
        };
        var threads = new Option<int>("--threads", "-t") { Description = "CPU worker threads (0: one per core).", DefaultValueFactory = _ => defaults.Settings.Model.Threads };
        var kvCache = new Option<string?>("--kv-cache") { Description = "KV cache element type, f16 or f32 (default: the profile's)." };
        var cudaGraphs = new Option<bool>("--cuda-graphs") { Description = "On the GPU, launch each decoded token's kernels as one CUDA graph." };
        var bandwidth = new Option<double?>("--bandwidth-gbs")
        {
            Description = "Memory bandwidth for the roofline, GB/s. Default: measured on the host for cpu, the profile's figure for cuda.",
        };
        var output = new Option<string?>("--out") { Description = "Directory for report.md, report.json and the plots decode.png, ttfb.png, roofline.png (created if missing)." };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "No progress lines." };

        var command = new Command("bench", "On-device latency: TTFB, prefill and decode tokens/s, memory and % of the memory-bandwidth roofline, per file, restoration and prompt length.");
        foreach (Option option in new Option[] { models, backend, promptLengths, generated, repeats, warmup, restore, metric, profile, threads, kvCache, cudaGraphs, bandwidth, output, quiet })
        {
            command.Options.Add(option);
        }

        command.SetAction(parse =>
        {
            int[] lengths = [.. ParseList(parse.GetValue(promptLengths)!, "--prompt-lengths", s => int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v >= 1)
                .Select(s => int.Parse(s, CultureInfo.InvariantCulture))];
            string[] restores = ParseList(parse.GetValue(restore)!, "--restore", s => s is "all" or "none" || (double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double f) && f is >= 0 and <= 1));
            var settings = new LatencySettings(lengths, parse.GetValue(generated), parse.GetValue(repeats), parse.GetValue(warmup));
            if (settings.Problem(new LatencySettingNames("--prompt-lengths", "--gen", "--repeats", "--warmup")) is string problem)
            {
                throw new CliUsageException(problem);
            }

            int threadCount = CommonOptions.CheckThreads(parse.GetValue(threads));
            string? profileName = parse.GetValue(profile);
            DeviceProfile deviceProfile = DeviceProfiles.Resolve(profileName);
            KvCacheDtype kvDtype = CommonOptions.ParseKvCache(parse.GetValue(kvCache) ?? deviceProfile.KvCacheDtype);
            string backendName = BackendOption.Parse(parse.GetValue(backend));
            CudaProbeResult? cuda = BackendOption.Probe(backendName);
            bool onGpu = cuda is { IsAvailable: true };
            using var interrupt = new InterruptCancellation(stderr);
            CancellationToken cancellation = interrupt.Token;
            bool showProgress = !parse.GetValue(quiet);
            if (showProgress && backendName == "auto" && !onGpu)
            {
                stderr.WriteLine($"bench: no GPU ({cuda!.Describe()}): measuring the CPU backend");
            }

            (double? bandwidthGbs, string bandwidthSource) = Bandwidth(parse.GetValue(bandwidth), onGpu, deviceProfile, threadCount, showProgress ? stderr : null);
            string[] paths = parse.GetValue(models) is { Length: > 0 } given ? given : [""];
            var progress = new ProgressDisplay(stderr, "bench", ProgressDisplay.IsTerminal(stderr), !showProgress);
            // Every configuration first, so a bad file or an unfitting model fails before anything is measured.
            var plans = new List<ConfigurationPlan>();
            foreach (string path in paths)
            {
                using GlqFile probe = Open(path);
                GlqModel glq = GlqModel.Read(probe);
                int[] fitting = [.. lengths.Where(l => l + settings.GeneratedTokens <= glq.Config.MaxSequenceLength)];
                if (fitting.Length < lengths.Length && showProgress)
                {
                    progress.Notice($"{probe.Name}: skipping prompt lengths {string.Join(',', lengths.Except(fitting))} (with --gen {settings.GeneratedTokens} they exceed its context of {glq.Config.MaxSequenceLength})");
                }

                if (fitting.Length == 0)
                {
                    throw new CliUsageException($"{probe.Name}: no prompt length fits its context of {glq.Config.MaxSequenceLength} tokens with --gen {settings.GeneratedTokens}");
                }

                foreach (string restoreSetting in glq.Units.Count == 0 ? ["none"] : restores)
                {
                    byte[] mask = Mask(glq, restoreSetting, parse.GetValue(metric));
                    var options = new InferenceOptions { ContextLength = fitting.Max() + settings.GeneratedTokens, Threads = threadCount, KvCacheDtype = kvDtype, DecodeGraphs = parse.GetValue(cudaGraphs) };
                    // As every verb that loads a model: refuse before allocating rather than be killed for memory.
                    MemoryPlan.For(probe, glq, mask, options.ContextLength, kvDtype.ElementBytes())
                        .EnsureFits(deviceProfile, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes);
                    plans.Add(new ConfigurationPlan(path, probe.Name, glq, restoreSetting, mask, options, fitting,
                        DecodeTraffic.WeightBytes(probe, glq, mask), glq.CorrectionBytes(probe, mask)));
                }
            }

            // In rounds (every configuration once per round), so a shared machine's drift does not skew the ratios.
            var deviceBytes = new long?[plans.Count];
            var peakHost = new long[plans.Count];
            int totalRuns = plans.Sum(p => p.PromptLengths.Length) * (settings.WarmupRuns + settings.Repeats);
            int done = 0;
            progress.BeginStage("runs", totalRuns);
            IReadOnlyList<PromptLengthResult>[] measured = new LatencyBenchmark().MeasureInRounds(
                [.. plans.Select(plan => new BenchmarkSubject(() => OpenModel(plan, onGpu), plan.PromptLengths))],
                settings,
                run => progress.Advance(done++,
                    $"round {run.Round + 1}/{settings.Repeats}: {plans[run.Subject].Label}, prompt {run.PromptLength}{(run.Warmup ? ", warm-up" : "")}"),
                (c, model) =>
                {
                    deviceBytes[c] = model is GpuGlqModel gpu ? gpu.DeviceBytes : null;
                    peakHost[c] = Process.GetCurrentProcess().PeakWorkingSet64;
                },
                cancellation);
            progress.Advance(totalRuns);
            var configurations = new List<BenchmarkConfiguration>();
            for (int c = 0; c < plans.Count; c++)
            {
                ConfigurationPlan plan = plans[c];
                IReadOnlyList<PromptLengthResult> results = measured[c];
                PromptLengthResult longest = results.MaxBy(r => r.PromptTokens)!;
                long kvBytes = DecodeTraffic.KvBytes(plan.Glq.Config, kvDtype.ElementBytes(), longest.PromptTokens + (settings.GeneratedTokens / 2));
                double achieved = (plan.WeightBytes + kvBytes) * longest.DecodeTokensPerSecond.Median / 1e9;
                configurations.Add(new BenchmarkConfiguration(
                    plan.Name, plan.Glq.Method, plan.Restore, plan.Mask.Count(m => m != 0), plan.Mask.Length, onGpu ? "cuda" : "cpu",
                    plan.WeightBytes, plan.CorrectionBytes, kvBytes, achieved, bandwidthGbs is double b ? achieved / b : null,
                    peakHost[c], deviceBytes[c], results));
            }

            var report = new BenchmarkReport(
                DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture),
                "glowq " + string.Join(' ', parse.Tokens.Select(t => t.Value)),
                typeof(BenchCommand).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown",
                CpuModel(),
                Environment.ProcessorCount,
                $"{RuntimeInformation.OSDescription} {RuntimeInformation.OSArchitecture}",
                onGpu ? cuda!.Describe() : $"CPU, {(threadCount == 0 ? Environment.ProcessorCount : threadCount)} threads",
                onGpu ? cuda!.Device!.DriverVersionText : null,
                deviceProfile.Name,
                bandwidthGbs,
                bandwidthSource,
                settings.GeneratedTokens,
                settings.Repeats,
                settings.WarmupRuns,
                kvDtype.Name(),
                configurations,
                BenchmarkReport.Compare(configurations));

            string markdown = report.ToMarkdown();
            stdout.Write(markdown);
            if (parse.GetValue(output) is string directory)
            {
                Directory.CreateDirectory(directory);
                File.WriteAllText(Path.Combine(directory, "report.md"), markdown);
                File.WriteAllText(Path.Combine(directory, "report.json"), report.ToJson());
                IReadOnlyList<(string FileName, byte[] Png)> charts = BenchCharts.Render(report);
                foreach ((string fileName, byte[] png) in charts)
                {
                    File.WriteAllBytes(Path.Combine(directory, fileName), png);
                }

                if (showProgress)
                {
                    stderr.WriteLine($"bench: wrote report.md, report.json and {string.Join(", ", charts.Select(c => c.FileName))} to {directory}");
                }
            }

            return GlowQCommandLine.ExitOk;
        });
        return command;
    }

    /// <summary>One configuration to measure: a file, a restoration setting and what follows from them.</summary>
    private sealed record ConfigurationPlan(
        string Path, string Name, GlqModel Glq, string Restore, byte[] Mask, InferenceOptions Options, int[] PromptLengths, long WeightBytes, long CorrectionBytes)
    {
        public string Label => $"{Name} {Glq.Method} restore {Restore}";
    }

    private static GlqFile Open(string path) => path.Length == 0 ? BundledModel.Open() : GlqFile.Open(path);

    /// <summary>A configuration's model on the GPU or the CPU; it owns its file, which a failed open closes.</summary>
    private static ILanguageModel OpenModel(ConfigurationPlan plan, bool onGpu)
    {
        GlqFile file = Open(plan.Path);
        try
        {
            return onGpu ? BackendOption.OpenGpu(file, plan.Mask, plan.Options) : GlqRuntimeModel.Open(file, plan.Mask, plan.Options);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>The mask of one --restore entry: all, none, or the top fraction of units by the metric's stored scores.</summary>
    private static byte[] Mask(GlqModel glq, string restore, string? metric) => restore is "all" or "none"
        ? [.. Enumerable.Repeat(restore == "all" ? (byte)1 : (byte)0, glq.Units.Count)]
        : RestoreOption.TopFraction(glq, RestoreOption.Parse(restore), metric);

    /// <summary>The roofline's bandwidth and where it came from: the option, a measurement of the host, or the profile.</summary>
    private static (double? Gbs, string Source) Bandwidth(double? given, bool onGpu, DeviceProfile profile, int threads, TextWriter? log)
    {
        if (given is double value)
        {
            return value > 0 && double.IsFinite(value) ? (value, "--bandwidth-gbs") : throw new CliUsageException($"--bandwidth-gbs must be > 0, got {value}");
        }

        if (onGpu)
        {
            return profile.MemoryBandwidthGbs is double nominal ? (nominal, $"profile {profile.Name}, nominal") : (null, "unknown: the profile has none; pass --bandwidth-gbs");
        }

        log?.WriteLine("bench: measuring host memory bandwidth");
        double measured = HostMemoryBandwidth.MeasureGbs(threads);
        return (measured, $"measured: host read, {(threads == 0 ? Environment.ProcessorCount : threads)} threads, best of 5 passes over 256 MiB");
    }

    private static string[] ParseList(string text, string option, Func<string, bool> valid)
    {
        string[] items = text.Split(',', StringSplitOptions.TrimEntries);
        return items.FirstOrDefault(item => !valid(item)) is string bad
            ? throw new CliUsageException($"{option}: '{bad}' is not a valid entry (in '{text}')")
            : items;
    }

    /// <summary>The CPU's model name from /proc/cpuinfo, or the architecture where there is none.</summary>
    private static string CpuModel()
    {
        try
        {
            string? line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            if (line is not null)
            {
                return line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
            }
        }
        catch (IOException)
        {
            // Not Linux, or no procfs: the architecture still says something.
        }
        catch (UnauthorizedAccessException)
        {
        }

        return RuntimeInformation.ProcessArchitecture.ToString();
    }
}
