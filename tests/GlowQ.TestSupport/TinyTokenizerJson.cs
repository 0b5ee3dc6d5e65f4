namespace GlowQ.TestSupport;

/// <summary>
/// A small hand-written byte-level BPE tokenizer.json (vocabulary of 105: 27 pieces and 5 added tokens at 100..104) whose
/// expected ids are worked out by hand in the tokenizer tests; also the tokenizer of small synthetic HF checkpoints.
/// </summary>
public static class TinyTokenizerJson
{
    // Byte-level pieces: 'Ġ' is a space, 'Ċ' a newline, "Ã©" the UTF-8 bytes C3 A9 of 'é'.
    public const string Json = """
        {
          "version": "1.0",
          "added_tokens": [
            { "id": 100, "content": "<|begin_of_text|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true },
            { "id": 101, "content": "<|eot_id|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true },
            { "id": 102, "content": "<|end_of_text|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true },
            { "id": 103, "content": "[sep]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false },
            { "id": 104, "content": "<pad>", "single_word": false, "lstrip": true, "rstrip": true, "normalized": false, "special": true }
          ],
          "normalizer": null,
          "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
              { "type": "Split", "pattern": { "Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" }, "behavior": "Isolated", "invert": false },
              { "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false }
            ]
          },
          "post_processor": {
            "type": "Sequence",
            "processors": [
              { "type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true },
              {
                "type": "TemplateProcessing",
                "single": [ { "SpecialToken": { "id": "<|begin_of_text|>", "type_id": 0 } }, { "Sequence": { "id": "A", "type_id": 0 } } ],
                "pair": [ { "SpecialToken": { "id": "<|begin_of_text|>", "type_id": 0 } }, { "Sequence": { "id": "A", "type_id": 0 } }, { "Sequence": { "id": "B", "type_id": 1 } } ],
                "special_tokens": { "<|begin_of_text|>": { "id": "<|begin_of_text|>", "ids": [ 100 ], "tokens": [ "<|begin_of_text|>" ] } }
              }
            ]
          },
          "decoder": { "type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true },
          "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": true,
            "vocab": {
              "h": 0, "e": 1, "l": 2, "o": 3, "Ġ": 4, "w": 5, "r": 6, "d": 7, "he": 8, "ll": 9, "hell": 10, "hello": 11,
              "Ġw": 12, "or": 13, "Ġwor": 14, "Ġworl": 15, "Ġworld": 16, "i": 17, "Ġhi": 18, "!": 19, "Ċ": 20,
              "1": 21, "2": 22, "12": 23, "Ã": 24, "©": 25, "Ã©": 26
            },
            "merges": [ "h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "Ġwor l", "Ġworl d", "1 2", "Ã ©" ]
          }
        }
        """;
}
