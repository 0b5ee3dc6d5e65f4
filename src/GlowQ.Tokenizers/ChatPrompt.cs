using System.Text;

namespace GlowQ.Tokenizers;

/// <summary>
/// Renders a conversation in one of the <see cref="ChatTemplates"/> formats, piece by piece so a chat session can
/// prefill only what is new: <see cref="Start"/> (BOS and, where the format has one, the system block),
/// <see cref="UserTurn"/> (the user's message and the assistant header the reply continues) and <see cref="EndReply"/>
/// (what closes the assistant's reply). The template's own markers such as &lt;|eot_id|&gt; become the tokenizer's
/// special tokens where it has them (else they are text); all other text, the user's and the system prompt included, is
/// encoded as plain text in one piece per stretch between special markers, without BOS, so a user who types
/// "&lt;|eot_id|&gt;" or "&lt;/s&gt;" gets those characters, not a forged end of turn (HF's split_special_tokens).
/// <list type="bullet">
/// <item><c>plain</c>: BOS, then the system text and each user turn as they are (completion; replies add nothing).</item>
/// <item><c>llama2</c>: <c>&lt;s&gt;[INST] &lt;&lt;SYS&gt;&gt;\nS\n&lt;&lt;/SYS&gt;&gt;\n\nU [/INST]</c> … reply … <c>&lt;/s&gt;</c>, the system block inside the first turn.</item>
/// <item><c>llama3</c>: <c>&lt;|begin_of_text|&gt;</c>, <c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\n…&lt;|eot_id|&gt;</c> per message.</item>
/// <item><c>chatml</c>: <c>&lt;|im_start|&gt;role\n…&lt;|im_end|&gt;\n</c> per message, no BOS.</item>
/// </list>
/// </summary>
public sealed class ChatPrompt
{
    private static readonly Piece Bos = new("\0bos", IsMarker: true);
    private static readonly Piece Eos = new("\0eos", IsMarker: true);

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
        void Add(IEnumerable<Piece> pieces)
        {
            foreach (Piece piece in pieces)
            {
                text.Append(piece == Bos ? Format switch { ChatTemplates.Llama3 => "<|begin_of_text|>", ChatTemplates.Plain => "", _ => "<s>" }
                    : piece == Eos ? "</s>"
                    : piece.Value);
            }
        }

        Add(StartPieces(system));
        for (int i = 0; i < turns.Count; i++)
        {
            Add(UserPieces(system, turns[i].User, i == 0));
            if (turns[i].Assistant is string reply)
            {
                Add([Text(AssistantText(reply))]);
                Add(EndReplyPieces());
            }
        }

        return text.ToString();
    }

    /// <summary>The text of a reply as the formats' templates place it after the assistant header.</summary>
    private string AssistantText(string reply) => Format == ChatTemplates.Llama2 ? " " + reply + " " : reply;

    private IEnumerable<Piece> StartPieces(string? system)
    {
        bool hasSystem = !string.IsNullOrEmpty(system);
        switch (Format)
        {
            case ChatTemplates.Plain:
                yield return Bos;
                if (hasSystem)
                {
                    yield return Text(system + "\n");
                }

                break;
            case ChatTemplates.Llama2:
                yield return Bos;
                break;
            case ChatTemplates.Llama3:
                yield return Bos;
                if (hasSystem)
                {
                    yield return Marker("<|start_header_id|>");
                    yield return Text("system");
                    yield return Marker("<|end_header_id|>");
                    yield return Text("\n\n" + system);
                    yield return Marker("<|eot_id|>");
                }

                break;
            case ChatTemplates.ChatMl:
                if (hasSystem)
                {
                    yield return Marker("<|im_start|>");
                    yield return Text("system\n" + system);
                    yield return Marker("<|im_end|>");
                    yield return Text("\n");
                }

                break;
        }
    }

    private IEnumerable<Piece> UserPieces(string? system, string user, bool firstTurn)
    {
        switch (Format)
        {
            case ChatTemplates.Plain:
                yield return Text(user);
                break;
            case ChatTemplates.Llama2:
                if (!firstTurn)
                {
                    yield return Bos;
                }

                // [INST] and [/INST] are plain text to Llama-2's tokenizer, special tokens to some later ones (Mistral's).
                yield return Marker("[INST]");
                yield return Text(firstTurn && !string.IsNullOrEmpty(system)
                    ? $" <<SYS>>\n{system}\n<</SYS>>\n\n{user} "
                    : $" {user} ");
                yield return Marker("[/INST]");
                break;
            case ChatTemplates.Llama3:
                yield return Marker("<|start_header_id|>");
                yield return Text("user");
                yield return Marker("<|end_header_id|>");
                yield return Text("\n\n" + user);
                yield return Marker("<|eot_id|>");
                yield return Marker("<|start_header_id|>");
                yield return Text("assistant");
                yield return Marker("<|end_header_id|>");
                yield return Text("\n\n");
                break;
            case ChatTemplates.ChatMl:
                yield return Marker("<|im_start|>");
                yield return Text("user\n" + user);
                yield return Marker("<|im_end|>");
                yield return Text("\n");
                yield return Marker("<|im_start|>");
                yield return Text("assistant\n");
                break;
        }
    }

    private IEnumerable<Piece> EndReplyPieces()
    {
        switch (Format)
        {
            case ChatTemplates.Llama2:
                yield return Eos;
                break;
            case ChatTemplates.Llama3:
                yield return Marker("<|eot_id|>");
                break;
            case ChatTemplates.ChatMl:
                yield return Marker("<|im_end|>");
                yield return Text("\n");
                break;
        }
    }

    /// <summary>
    /// Merges consecutive text pieces, and markers the tokenizer has no special token for, so that text between special
    /// tokens is encoded as one string (a SentencePiece tokenizer would otherwise put a dummy prefix before every piece).
    /// </summary>
    private List<Piece> Pieces(IEnumerable<Piece> pieces)
    {
        var merged = new List<Piece>();
        var text = new StringBuilder();
        foreach (Piece piece in pieces)
        {
            if (piece == Bos || piece == Eos || (piece.IsMarker && TrySpecialId(piece.Value, out _)))
            {
                if (text.Length > 0)
                {
                    merged.Add(Text(text.ToString()));
                    text.Clear();
                }

                merged.Add(piece);
            }
            else
            {
                text.Append(piece.Value);
            }
        }

        if (text.Length > 0)
        {
            merged.Add(Text(text.ToString()));
        }

        return merged;
    }

    private int[] Tokens(List<Piece> pieces)
    {
        var tokens = new List<int>();
        foreach (Piece piece in pieces)
        {
            if (piece == Bos)
            {
                if (_tokenizer.BosId is int bos)
                {
                    tokens.Add(bos);
                }
            }
            else if (piece == Eos)
            {
                if (TrySpecialId("</s>", out int eos))
                {
                    tokens.Add(eos);
                }
                else if (_tokenizer.EosIds.Count > 0)
                {
                    tokens.Add(_tokenizer.EosIds[0]);
                }
            }
            else if (piece.IsMarker && TrySpecialId(piece.Value, out int id))
            {
                tokens.Add(id);
            }
            else
            {
                tokens.AddRange(EncodePlainText(piece.Value));
            }
        }

        return [.. tokens];
    }

    /// <summary>
    /// Text as text: special tokens written in it stay characters. SentencePiece and llama2.c tokenizers never turn text
    /// into control tokens (&lt;s&gt;, &lt;/s&gt;); a SentencePiece USER_DEFINED piece is matched in text as
    /// SentencePiece itself matches it.
    /// </summary>
    private int[] EncodePlainText(string text) => _tokenizer is HfTokenizerJson hf
        ? hf.Encode(text, addBos: false, splitSpecialTokens: true)
        : _tokenizer.Encode(text, addBos: false);

    /// <summary>The id of a special/control token given by its text, when the tokenizer has one.</summary>
    private bool TrySpecialId(string content, out int id)
    {
        switch (_tokenizer)
        {
            case HfTokenizerJson hf:
                // [INST] counts only where it is declared special: as a vocabulary piece it is text like any other.
                return hf.SpecialTokens.TryGetValue(content, out id)
                    || (content is not ("[INST]" or "[/INST]") && hf.TryGetTokenId(content, out id));
            case SentencePieceTokenizer sp when sp.TryGetId(content, out id):
                return sp.GetPieceType(id) is SentencePieceType.Control or SentencePieceType.UserDefined;
            default:
                id = -1;
                return false;
        }
    }

    private static Piece Text(string text) => new(text, IsMarker: false);

    private static Piece Marker(string marker) => new(marker, IsMarker: true);

    /// <summary>
    /// A stretch of the rendered conversation: one of the template's own markers, or text (the user's included), which
    /// is never turned into a special token even when it spells one.
    /// </summary>
    private readonly record struct Piece(string Value, bool IsMarker);
}
