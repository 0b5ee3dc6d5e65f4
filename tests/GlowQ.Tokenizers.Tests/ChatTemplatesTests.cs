using System.Text;

namespace GlowQ.Tokenizers.Tests;

public sealed class ChatTemplatesTests
{
    // Abridged from the structure each family's template has: the markers are what matter.
    private const string Llama3Template =
        "{{- bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
        + "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

    private const string ChatMlTemplate =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
        + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    private const string Llama2Template =
        "{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + message['content'] | trim + ' [/INST]' }}"
        + "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] | trim + ' ' + eos_token }}{% endif %}{% endfor %}";

    [Theory]
    [InlineData(Llama3Template, ChatTemplates.Llama3)]
    [InlineData(ChatMlTemplate, ChatTemplates.ChatMl)]
    [InlineData(Llama2Template, ChatTemplates.Llama2)]
    [InlineData("{% for message in messages %}{{ message['content'] }}{% endfor %}", ChatTemplates.Plain)]
    [InlineData("", ChatTemplates.Plain)]
    [InlineData(null, ChatTemplates.Plain)]
    public void Detect_RecognisesEachFamilyByItsMarkers(string? template, string expected) =>
        Assert.Equal(expected, ChatTemplates.Detect(template));

    [Fact]
    public void Detect_NeedsBothMarkersOfAFamily_SoAMentionInTextIsNotEnough() =>
        Assert.Equal(ChatTemplates.Plain, ChatTemplates.Detect("{{ 'Use [INST] tags like Llama 2' }}"));

    [Fact]
    public void FromTokenizerConfig_ReadsAStringTemplate()
    {
        string json = $$"""{ "bos_token": "<s>", "chat_template": {{System.Text.Json.Nodes.JsonValue.Create(ChatMlTemplate).ToJsonString()}} }""";
        Assert.Equal(ChatMlTemplate, ChatTemplates.FromTokenizerConfig(Encoding.UTF8.GetBytes(json), "tokenizer_config.json"));
    }

    [Fact]
    public void FromTokenizerConfig_PicksTheDefaultOfNamedTemplates()
    {
        const string json = """{ "chat_template": [ { "name": "tool_use", "template": "T" }, { "name": "default", "template": "D" } ] }""";
        Assert.Equal("D", ChatTemplates.FromTokenizerConfig(Encoding.UTF8.GetBytes(json), "c.json"));
    }

    [Theory]
    [InlineData("""{ "bos_token": "<s>" }""")]
    [InlineData("""{ "chat_template": null }""")]
    public void FromTokenizerConfig_WithoutATemplate_IsNull(string json) =>
        Assert.Null(ChatTemplates.FromTokenizerConfig(Encoding.UTF8.GetBytes(json), "c.json"));

    [Theory]
    [InlineData("""{ "chat_template": 7 }""", "'chat_template' is a Number")]
    [InlineData("""{ "chat_template": """, "not valid JSON")]
    public void FromTokenizerConfig_BadInput_NamesTheFileAndTheProblem(string json, string expected)
    {
        var e = Assert.Throws<TokenizerFormatException>(() => ChatTemplates.FromTokenizerConfig(Encoding.UTF8.GetBytes(json), "dir/tokenizer_config.json"));
        Assert.StartsWith("dir/tokenizer_config.json: ", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }
}
