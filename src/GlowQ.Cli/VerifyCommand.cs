using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using GlowQ.Format;
using GlowQ.Format.Glq;
using Microsoft.Win32.SafeHandles;

namespace GlowQ.Cli;

/// <summary>
/// <c>glowq verify FILE</c>: checks a .glq file completely: structure (<see cref="GlqFile.Open"/>), model
/// (<see cref="GlqModel.Read"/>), every tensor's checksum, and that the padding between sections and tensors is
/// zero and the data section ends at the last tensor (formats/glq-v1.md §3). Prints "ok: N tensors, M bytes
/// verified" and exits 0 only when all of it holds; otherwise one error line, exit 1.
/// </summary>
internal static class VerifyCommand
{
    private const long ProgressThreshold = 256L << 20;
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(2);

    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var file = new Argument<string>("FILE") { Description = "The .glq model file." };
        var command = new Command(
            "verify",
            "Check a .glq file completely: header, metadata, directory, model keys and tensor shapes, every tensor's checksum "
            + "and the zero padding. Prints 'ok: N tensors, M bytes verified' (exit 0) or one error line (exit 1). "
            + "Progress goes to stderr for files over 256 MiB.");
        command.Arguments.Add(file);
        command.SetAction(parse =>
        {
            using GlqFile glq = GlqFile.Open(parse.GetValue(file)!);
            GlqModel.Read(glq);

            GlqTensorInfo[] byOffset = [.. glq.Tensors.OrderBy(t => t.Offset)];
            long total = byOffset.Sum(t => (long)t.Length);
            bool progress = total >= ProgressThreshold;
            var clock = Stopwatch.StartNew();
            TimeSpan lastReport = TimeSpan.Zero;
            long done = 0;
            var corrupt = new List<(string Tensor, string Message)>();
            foreach (GlqTensorInfo t in byOffset)
            {
                try
                {
                    glq.VerifyTensor(t);
                }
                catch (ModelFormatException e)
                {
                    corrupt.Add((t.Name, e.Message));
                }

                done += (long)t.Length;
                if (progress && (clock.Elapsed - lastReport >= ProgressInterval || done == total))
                {
                    lastReport = clock.Elapsed;
                    stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"glowq: verify: {done / 1e9:F2} of {total / 1e9:F2} GB ({100.0 * done / total:F0}%), {done / 1e9 / Math.Max(clock.Elapsed.TotalSeconds, 1e-9):F2} GB/s"));
                }
            }

            if (corrupt.Count > 0)
            {
                string more = corrupt.Count == 1 ? ""
                    : $" ({corrupt.Count - 1} more corrupt: {string.Join(", ", corrupt.Skip(1).Take(5).Select(c => $"'{c.Tensor}'"))}{(corrupt.Count > 6 ? ", …" : "")})";
                throw new ModelFormatException(corrupt[0].Message + more);
            }

            CheckPadding(glq, byOffset);
            stdout.WriteLine($"ok: {byOffset.Length} tensors, {total} bytes verified");
            return GlowQCommandLine.ExitOk;
        });
        return command;
    }

    /// <summary>The gaps the spec fills with zeros: after the metadata, after the directory, and between tensors.</summary>
    private static void CheckPadding(GlqFile glq, GlqTensorInfo[] byOffset)
    {
        GlqHeader h = glq.Header;
        ulong lastEnd = byOffset.Length == 0 ? 0 : byOffset[^1].Offset + byOffset[^1].Length;
        if (lastEnd != h.DataLength)
        {
            throw new ModelFormatException(
                $"{glq.Name}: header.data_length is {h.DataLength} but the last tensor ends at {lastEnd} (the data section must end at the last tensor)");
        }

        using SafeFileHandle handle = File.OpenHandle(glq.Path);
        CheckZero(handle, glq.Name, (long)(h.MetadataOffset + h.MetadataLength), (long)h.DirectoryOffset, "between the metadata and the directory");
        CheckZero(handle, glq.Name, (long)(h.DirectoryOffset + h.DirectoryLength), (long)h.DataOffset, "between the directory and the data section");
        ulong at = 0;
        string previous = "the start of the data section";
        foreach (GlqTensorInfo t in byOffset)
        {
            CheckZero(handle, glq.Name, (long)(h.DataOffset + at), (long)(h.DataOffset + t.Offset), $"between {previous} and tensor '{t.Name}'");
            at = t.Offset + t.Length;
            previous = $"tensor '{t.Name}'";
        }
    }

    private static void CheckZero(SafeFileHandle handle, string name, long start, long end, string where)
    {
        var buffer = new byte[(int)Math.Min(Math.Max(end - start, 0), 1 << 20)];
        for (long at = start; at < end;)
        {
            int read = RandomAccess.Read(handle, buffer.AsSpan(0, (int)Math.Min(buffer.Length, end - at)), at);
            if (read <= 0)
            {
                throw new ModelFormatException($"{name}: could not read bytes [{at}, {end}) {where}");
            }

            int nonZero = buffer.AsSpan(0, read).IndexOfAnyExcept((byte)0);
            if (nonZero >= 0)
            {
                throw new ModelFormatException($"{name}: byte {at + nonZero} {where} is 0x{buffer[nonZero]:x2}; padding must be zero");
            }

            at += read;
        }
    }
}
