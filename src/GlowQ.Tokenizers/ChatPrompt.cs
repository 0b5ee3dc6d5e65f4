using System.Text;

namespace GlowQ.Tokenizers;

/// <summary>
/// Renders a conversation in one of the <see cref="ChatTemplates"/> formats, piece by piece so a chat session can
/// prefill only what is new: <see cref="Start"/> (BOS and, where the format has one, the system block),
/// <see cref="UserTurn"/> (the user's message and the assistant header the reply continues) and <see cref="EndReply"/>
/// (what closes the assistant's reply). Markers such as &lt;|eot_id|&gt; become the tokenizer's special tokens where it
/// has them (else they are encoded as text); the text between markers is encoded as one piece, without BOS.
/// <list type="bullet">
/// <item><c>plain</c>: BOS, then the system text and each user turn as they are (completion; replies add nothing).</item>
/// <item><c>llama2</c>: <c>&lt;s&gt;[INST] &lt;&lt;SYS&gt;&gt;\nS\n&lt;&lt;/SYS&gt;&gt;\n\nU [/INST]</c> … reply … <c>&lt;/s&gt;</c>, the system block inside the first turn.</item>
/// <item><c>llama3</c>: <c>&lt;|begin_of_text|&gt;</c>, <c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\n…&lt;|eot_id|&gt;</c> per message.</item>
/// <item><c>chatml</c>: <c>&lt;|im_start|&gt;role\n…&lt;|im_end|&gt;\n</c> per message, no BOS.</item>
/// </list>
/// </summary>
public sealed class ChatPrompt
{
    private const string Bos = "\0bos";
    private const string Eos = "\0eos";

    private readonly ITextTokenizer _tokenizer;

    public ChatPrompt(string format, ITextTokenizer tokenizer)
    {
        if (!IsKnown(format))
        {
            throw new ArgumentException($"unknown chat format '{format}'; expected plain, llama2, llama3 or chatml", nameof(format));
        }

        Format = format;
        _tokenizer = tokenizer;
        var stops = new List<int>();
        string? endOfTurn = format switch
        {
            ChatTemplates.Llama3 => "<|eot_id|>",
            ChatTemplates.ChatMl => "<|im_end|>",
            _ => null,
        };
        if (endOfTurn is not null && TrySpecialId(endOfTurn, out int id))
        {
            stops.Add(id);
        }

        EndOfTurnIds = stops;
    }

    public string Format { get; }

    /// <summary>Tokens that end an assistant reply besides the tokenizer's EOS (Llama-3's &lt;|eot_id|&gt;, ChatML's &lt;|im_end|&gt;).</summary>
    public IReadOnlyList<int> EndOfTurnIds { get; }

    public static bool IsKnown(string format) =>
        format is ChatTemplates.Plain or ChatTemplates.Llama2 or ChatTemplates.Llama3 or ChatTemplates.ChatMl;

    /// <summary>The start of a conversation: BOS and the system block (llama3, chatml; plain: the system text).</summary>
    public int[] Start(string? system) => Tokens(Pieces(StartPieces(system)));

    /// <summary>A user turn and the assistant header; llama2 puts the system block into the first turn.</summary>
    public int[] UserTurn(string? system, string user, bool firstTurn) => Tokens(Pieces(UserPieces(system, user, firstTurn)));

    /// <summary>What closes an assistant reply (empty for plain).</summary>
    public int[] EndReply() => Tokens(Pieces(EndReplyPieces()));

    /// <summary>
    /// The whole conversation as text (markers written literally), ending with the assistant header for the next reply
    /// when the last turn has no reply. For documentation and tests; a session works on tokens.
    /// </summary>
    public string RenderText(string? system, IReadOnlyList<(string User, string? Assistant)> turns)
    {
        var text = new StringBuilder();
        void Add(IEnumerable<string> pieces)
        {
            foreach (string piece in pieces)
            {
                text.Append(piece switch
                {
                    Bos => Format switch { ChatTemplates.Llama3 => "<|begin_of_text|>", ChatTemplates.Plain => "", _ => "<s>" },
                    Eos => "</s>",
                    _ => piece,
                });
            }
        }

        Add(StartPieces(system));
        for (int i = 0; i < turns.Count; i++)
        {
            Add(UserPieces(system, turns[i].User, i == 0));
            if (turns[i].Assistant is string reply)
            {
                Add([AssistantText(reply)]);
                Add(EndReplyPieces());
            }
        }

        return text.ToString();
    }

    /// <summary>The text of a reply as the formats' templates place it after the assistant header.</summary>
    private string AssistantText(string reply) => Format == ChatTemplates.Llama2 ? " " + reply + " " : reply;

    private IEnumerable<string> StartPieces(string? system)
    {
        bool hasSystem = !string.IsNullOrEmpty(system);
        switch (Format)
        {
            case ChatTemplates.Plain:
                yield return Bos;
                if (hasSystem)
                {
                    yield return system + "\n";
                }

                break;
            case ChatTemplates.Llama2:
                yield return Bos;
                break;
            case ChatTemplates.Llama3:
                yield return Bos;
                if (hasSystem)
                {
                    yield return "<|start_header_id|>";
                    yield return "system";
                    yield return "<|end_header_id|>";
                    yield return "\n\n" + system;
                    yield return "<|eot_id|>";
                }

                break;
            case ChatTemplates.ChatMl:
                if (hasSystem)
                {
                    yield return "<|im_start|>";
                    yield return "system\n" + system;
                    yield return "<|im_end|>";
                    yield return "\n";
                }

                break;
        }
    }

    private IEnumerable<string> UserPieces(string? system, string user, bool firstTurn)
    {
        switch (Format)
        {
            case ChatTemplates.Plain:
                yield return user;
                break;
            case ChatTemplates.Llama2:
                if (!firstTurn)
                {
                    yield return Bos;
                }

                yield return firstTurn && !string.IsNullOrEmpty(system)
                    ? $"[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]"
                    : $"[INST] {user} [/INST]";
                break;
            case ChatTemplates.Llama3:
                yield return "<|start_header_id|>";
                yield return "user";
                yield return "<|end_header_id|>";
                yield return "\n\n" + user;
                yield return "<|eot_id|>";
                yield return "<|start_header_id|>";
                yield return "assistant";
                yield return "<|end_header_id|>";
                yield return "\n\n";
                break;
            case ChatTemplates.ChatMl:
                yield return "<|im_start|>";
                yield return "user\n" + user;
                yield return "<|im_end|>";
                yield return "\n";
                yield return "<|im_start|>";
                yield return "assistant\n";
                break;
        }
    }

    private IEnumerable<string> EndReplyPieces()
    {
        switch (Format)
        {
            case ChatTemplates.Llama2:
                yield return Eos;
                break;
            case ChatTemplates.Llama3:
                yield return "<|eot_id|>";
                break;
            case ChatTemplates.ChatMl:
                yield return "<|im_end|>";
                yield return "\n";
                break;
        }
    }

    /// <summary>Merges consecutive text pieces so text between markers is encoded as one string.</summary>
    private static List<string> Pieces(IEnumerable<string> pieces)
    {
        var merged = new List<string>();
        var text = new StringBuilder();
        foreach (string piece in pieces)
        {
            if (IsMarker(piece))
            {
                if (text.Length > 0)
                {
                    merged.Add(text.ToString());
                    text.Clear();
                }

                merged.Add(piece);
            }
            else
            {
                text.Append(piece);
            }
        }

        if (text.Length > 0)
        {
            merged.Add(text.ToString());
        }

        return merged;
    }

    private static bool IsMarker(string piece) =>
        piece is Bos or Eos or "<|start_header_id|>" or "<|end_header_id|>" or "<|eot_id|>" or "<|im_start|>" or "<|im_end|>";

    private int[] Tokens(List<string> pieces)
    {
        var tokens = new List<int>();
        foreach (string piece in pieces)
        {
            switch (piece)
            {
                case Bos:
                    if (_tokenizer.BosId is int bos)
                    {
                        tokens.Add(bos);
                    }

                    break;
                case Eos:
                    if (TrySpecialId("</s>", out int eos))
                    {
                        tokens.Add(eos);
                    }
                    else if (_tokenizer.EosIds.Count > 0)
                    {
                        tokens.Add(_tokenizer.EosIds[0]);
                    }

                    break;
                case var marker when IsMarker(marker) && TrySpecialId(marker, out int id):
                    tokens.Add(id);
                    break;
                default:
                    tokens.AddRange(_tokenizer.Encode(piece, addBos: false));
                    break;
            }
        }

        return [.. tokens];
    }

    /// <summary>The id of a special/control token given by its text, when the tokenizer has one.</summary>
    private bool TrySpecialId(string content, out int id)
    {
        switch (_tokenizer)
        {
            case HfTokenizerJson hf:
                return hf.SpecialTokens.TryGetValue(content, out id) || hf.TryGetTokenId(content, out id);
            case SentencePieceTokenizer sp when sp.TryGetId(content, out id):
                return sp.GetPieceType(id) is SentencePieceType.Control or SentencePieceType.UserDefined;
            default:
                id = -1;
                return false;
        }
    }
}
