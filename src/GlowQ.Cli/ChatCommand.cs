using System.CommandLine;
using System.Text;
using GlowQ.Engine;
using GlowQ.Format.Glq;
using GlowQ.Tokenizers;

namespace GlowQ.Cli;

/// <summary>
/// <c>glowq chat</c>: an interactive conversation. User turns come from stdin one line at a time; each reply streams to
/// stdout and ends with a newline. Everything else (the prompt marker, notices, /stats) goes to stderr.
/// </summary>
internal static class ChatCommand
{
    /// <param name="stdin">The user's input; null reads the console (and shows a "> " prompt when it is a terminal).</param>
    public static Command Create(TextWriter stdout, TextWriter stderr, TextReader? stdin, CliDefaults defaults)
    {
        var common = new CommonOptions(defaults);
        var generation = new SamplingCliOptions(
            defaults.Settings.Generation,
            defaults.Settings.Chat.MaxTokens,
            "Most tokens per reply.",
            "Context length in tokens (default: the model's, at most 4096). When full, the oldest turns are dropped.");
        var system = new Option<string?>("--system")
        {
            Description = "System prompt (default: the model's, if it has one). Ignored by the plain format unless given.",
            DefaultValueFactory = _ => defaults.Settings.Chat.System,
        };
        var chatFormat = new Option<string?>("--chat-format")
        {
            Description = "plain, llama2, llama3 or chatml (default: the model's; plain for base models).",
            DefaultValueFactory = _ => defaults.Settings.Chat.Format,
        };

        var command = new Command("chat", "Chat with a model: one user turn per line on stdin, each reply streams to stdout; /reset, /stats, /quit.");
        common.AddTo(command);
        command.Options.Add(system);
        command.Options.Add(chatFormat);
        generation.AddTo(command);

        command.SetAction(parse =>
        {
            (int limit, int contextLength, SamplingOptions sampling) = generation.Parse(parse);
            string? format = parse.GetValue(chatFormat);
            if (format is not null && !ChatPrompt.IsKnown(format))
            {
                throw new CliUsageException($"--chat-format must be plain, llama2, llama3 or chatml, got '{format}'");
            }

            bool quiet = parse.GetValue(common.Quiet);
            using LoadedModel loaded = common.Load(parse, contextLength);
            format ??= loaded.ChatFormat;
            string? systemPrompt = parse.GetValue(system) ?? (format == ChatTemplates.Plain ? null : loaded.DefaultSystemPrompt);
            bool terminal = stdin is null && !Console.IsInputRedirected;
            TextReader input = stdin ?? (Console.IsInputRedirected
                ? new StreamReader(Console.OpenStandardInput(), new UTF8Encoding(false, throwOnInvalidBytes: false))
                : Console.In);
            if (!quiet)
            {
                stderr.WriteLine($"glowq: chat format {format}{(systemPrompt is null ? "" : ", with a system prompt")}"
                    + (sampling.Temperature > 0 ? $"; seed {sampling.Seed}" : "") + "; commands: /reset, /stats, /quit");
            }

            var session = new ChatSession(loaded.Model, loaded.Tokenizer, new ChatPrompt(format, loaded.Tokenizer), systemPrompt, sampling, limit, stdout, stderr);
            using var interrupt = InterruptCancellation.ForSession(stdout, stderr, "glowq: reply interrupted (Ctrl+C again to quit)");
            while (true)
            {
                if (terminal)
                {
                    stderr.Write("> ");
                    stderr.Flush();
                }

                string? line = input.ReadLine();
                if (line is null)
                {
                    return GlowQCommandLine.ExitOk;
                }

                line = line.TrimEnd('\r');
                if (line.Trim().Length == 0)
                {
                    continue;
                }

                switch (line.Trim())
                {
                    case "/quit" or "/exit":
                        return GlowQCommandLine.ExitOk;
                    case "/reset":
                        session.Reset();
                        stderr.WriteLine("glowq: conversation cleared");
                        continue;
                    case "/stats":
                        stderr.WriteLine(session.Stats());
                        continue;
                    case var other when other.StartsWith('/') && !other.Contains(' ', StringComparison.Ordinal):
                        stderr.WriteLine($"glowq: unknown command '{other}' (commands: /reset, /stats, /quit)");
                        continue;
                }

                session.Reply(line, interrupt.BeginStep());
                interrupt.EndStep();
            }
        });
        return command;
    }
}

/// <summary>
/// One conversation against a model's KV cache. The cache keeps every earlier turn, so a turn prefills only its own
/// tokens (plus the previous reply's last token, which was sampled but not yet run). When a turn does not fit, the
/// oldest turns are dropped (the system prompt stays) and what remains is prefilled again from position 0.
/// </summary>
internal sealed class ChatSession
{
    private readonly ILanguageModel _model;
    private readonly ChatPrompt _prompt;
    private readonly string? _system;
    private readonly SamplingOptions _sampling;
    private readonly int _maxTokens;
    private readonly TextWriter _stdout;
    private readonly TextWriter _stderr;
    private readonly TextGenerator _generator;
    private readonly int[] _tokens;
    private readonly List<(string User, List<int> Reply)> _turns = [];
    private Sampler _sampler;
    private int _length;   // tokens of the conversation so far
    private int _cached;   // of which the KV cache holds the first _cached
    private (GenerationResult Result, int TurnTokens)? _last;

    public ChatSession(ILanguageModel model, ITextTokenizer tokenizer, ChatPrompt prompt, string? system, SamplingOptions sampling, int maxTokens,
        TextWriter stdout, TextWriter stderr)
    {
        _model = model;
        _prompt = prompt;
        _system = system;
        _sampling = sampling;
        _maxTokens = maxTokens;
        _stdout = stdout;
        _stderr = stderr;
        _generator = new TextGenerator(model, tokenizer, prompt.EndOfTurnIds);
        _tokens = new int[model.ContextLength];
        _sampler = new Sampler(model.Config.VocabSize, sampling);
    }

    /// <summary>Forgets the conversation; the cache is overwritten from position 0 by the next turn.</summary>
    public void Reset()
    {
        _turns.Clear();
        _length = 0;
        _cached = 0;
        _last = null;
        _sampler = new Sampler(_model.Config.VocabSize, _sampling);
    }

    public string Stats()
    {
        string used = $"context used {_length}/{_model.ContextLength} tokens, {_turns.Count} turn(s)";
        if (_last is not { } last)
        {
            return $"glowq: no reply yet; {used}";
        }

        GenerationResult s = last.Result;
        return $"glowq: last reply: prompt tokens {s.PromptTokens} (prefilled {s.PrefilledTokens}, turn {last.TurnTokens}), generated {s.GeneratedTokens} ({s.StopReason}); "
            + $"TTFB {s.TimeToFirstToken.TotalMilliseconds:F1} ms, decode {s.DecodeTokensPerSecond:F1} tok/s; {used}";
    }

    /// <summary>Adds a user turn and streams the reply to stdout, ending it with a newline.</summary>
    /// <returns>False when the turn was skipped (too long for the context).</returns>
    public bool Reply(string user, CancellationToken cancellation)
    {
        int contextLength = _model.ContextLength;
        int[] alone = [.. _prompt.Start(_system), .. _prompt.UserTurn(_system, user, firstTurn: true)];
        if (alone.Length >= contextLength)
        {
            _stderr.WriteLine($"glowq: that message is {alone.Length} tokens with the conversation's start, but the context holds {contextLength}; skipped");
            return false;
        }

        int[] turn;
        if (_length == 0)
        {
            turn = alone;
        }
        else
        {
            turn = [.. _prompt.EndReply(), .. _prompt.UserTurn(_system, user, firstTurn: _turns.Count == 0)];
            int reserve = Math.Max(1, Math.Min(_maxTokens, contextLength / 4));
            if (_length + turn.Length + reserve > contextLength)
            {
                turn = Rebuild(user, reserve);
            }
        }

        turn.CopyTo(_tokens, _length);
        _length += turn.Length;
        int replyStart = _length;
        GenerationResult result = _generator.Continue(_tokens, ref _cached, ref _length, _maxTokens, _sampler, _stdout, cancellation);
        _stdout.WriteLine();
        _stdout.Flush();
        _turns.Add((user, [.. _tokens.AsSpan(replyStart, _length - replyStart)]));
        _last = (result, turn.Length);
        return true;
    }

    /// <summary>Drops the oldest turns until the new one fits with room to reply; returns the whole conversation to prefill.</summary>
    private int[] Rebuild(string user, int reserve)
    {
        int dropped = 0;
        List<int> tokens;
        while (true)
        {
            tokens = [.. _prompt.Start(_system)];
            for (int i = 0; i < _turns.Count; i++)
            {
                tokens.AddRange(_prompt.UserTurn(_system, _turns[i].User, firstTurn: i == 0));
                tokens.AddRange(_turns[i].Reply);
                tokens.AddRange(_prompt.EndReply());
            }

            tokens.AddRange(_prompt.UserTurn(_system, user, firstTurn: _turns.Count == 0));
            if (_turns.Count == 0 || tokens.Count + reserve <= _model.ContextLength)
            {
                break;
            }

            _turns.RemoveAt(0);
            dropped++;
        }

        _stderr.WriteLine($"glowq: context full ({_model.ContextLength} tokens): dropped the oldest {dropped} turn(s), {_turns.Count} kept; re-prefilling {tokens.Count} tokens");
        _length = 0;
        _cached = 0;
        return [.. tokens];
    }
}
