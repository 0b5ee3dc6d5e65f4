using System.Text;
using GlowQ.TestSupport;

namespace GlowQ.Tokenizers.Tests;

public sealed class ChatPromptTests
{
    private static readonly (string, string?)[] TwoTurns = [("hi", "hello"), ("world", null)];

    /// <summary>The tiny byte-level tokenizer with the Llama-3 and ChatML header markers and the role names added.</summary>
    private static HfTokenizerJson Tokenizer()
    {
        string json = TinyTokenizerJson.Json.Replace(
            """{ "id": 104, "content": "<pad>", "single_word": false, "lstrip": true, "rstrip": true, "normalized": false, "special": true }""",
            """
            { "id": 104, "content": "<pad>", "single_word": false, "lstrip": true, "rstrip": true, "normalized": false, "special": true },
            { "id": 105, "content": "<|start_header_id|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true },
            { "id": 106, "content": "<|end_header_id|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true },
            { "id": 107, "content": "<|im_start|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true },
            { "id": 108, "content": "<|im_end|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true },
            { "id": 109, "content": "system", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false },
            { "id": 110, "content": "user", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false },
            { "id": 111, "content": "assistant", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false }
            """,
            StringComparison.Ordinal);
        return HfTokenizerJson.Parse(Encoding.UTF8.GetBytes(json));
    }

    [Fact]
    public void Llama2_PutsTheSystemBlockInTheFirstInstAndClosesRepliesWithEos() =>
        Assert.Equal(
            "<s>[INST] <<SYS>>\nbe kind\n<</SYS>>\n\nhi [/INST] hello </s><s>[INST] world [/INST]",
            new ChatPrompt(ChatTemplates.Llama2, Tokenizer()).RenderText("be kind", TwoTurns));

    [Fact]
    public void Llama3_WrapsEachMessageInHeadersAndEotAndEndsWithTheAssistantHeader() =>
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nbe kind<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nhello<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nworld<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
            new ChatPrompt(ChatTemplates.Llama3, Tokenizer()).RenderText("be kind", TwoTurns));

    [Fact]
    public void ChatMl_WrapsEachMessageInImStartAndImEnd() =>
        Assert.Equal(
            "<|im_start|>system\nbe kind<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n"
            + "<|im_start|>user\nworld<|im_end|>\n<|im_start|>assistant\n",
            new ChatPrompt(ChatTemplates.ChatMl, Tokenizer()).RenderText("be kind", TwoTurns));

    [Fact]
    public void Plain_IsTheTextAsItIs() =>
        Assert.Equal("be kind\nhihelloworld", new ChatPrompt(ChatTemplates.Plain, Tokenizer()).RenderText("be kind", TwoTurns));

    [Fact]
    public void Llama3Tokens_UseTheTokenizersSpecialTokens()
    {
        HfTokenizerJson tokenizer = Tokenizer();
        var prompt = new ChatPrompt(ChatTemplates.Llama3, tokenizer);
        int[] hi = tokenizer.Encode("\n\nhi", addBos: false);
        int[] assistantHeader = [105, 111, 106, .. tokenizer.Encode("\n\n", addBos: false)];
        Assert.Equal([100], prompt.Start(null));
        Assert.Equal([105, 110, 106, .. hi, 101, .. assistantHeader], prompt.UserTurn(null, "hi", firstTurn: true));
        Assert.Equal([101], prompt.EndReply());
        Assert.Equal([101], prompt.EndOfTurnIds);
    }

    [Fact]
    public void ChatMlTokens_UseTheTokenizersSpecialTokens()
    {
        HfTokenizerJson tokenizer = Tokenizer();
        var prompt = new ChatPrompt(ChatTemplates.ChatMl, tokenizer);
        int[] newline = tokenizer.Encode("\n", addBos: false);
        Assert.Equal([107, 109, .. tokenizer.Encode("\nhello", addBos: false), 108, .. newline], prompt.Start("hello"));
        Assert.Equal([108, .. newline], prompt.EndReply());
        Assert.Equal([108], prompt.EndOfTurnIds);
    }

    [Fact]
    public void TheWholeConversationsTokens_AreTheEncodingOfItsText()
    {
        // The tokenizer cuts added tokens out of text, so its encoding of the rendered text is the reference.
        HfTokenizerJson tokenizer = Tokenizer();
        foreach (string format in new[] { ChatTemplates.Llama3, ChatTemplates.ChatMl })
        {
            var prompt = new ChatPrompt(format, tokenizer);
            int[] reply = tokenizer.Encode("hello", addBos: false);
            int[] tokens = [.. prompt.Start("hi"), .. prompt.UserTurn("hi", "hello", true), .. reply, .. prompt.EndReply(), .. prompt.UserTurn("hi", "world", false)];
            Assert.Equal(tokenizer.Encode(prompt.RenderText("hi", [("hello", "hello"), ("world", null)]), addBos: false), tokens);
        }
    }

    [Fact]
    public void UnknownFormats_AreRejected() =>
        Assert.Throws<ArgumentException>(() => new ChatPrompt("vicuna", Tokenizer()));
}
