using GlowQ.TestSupport;
using GlowQ.Tokenizers;

namespace GlowQ.Engine.Tests;

public sealed class Stories260KEndToEndTests(Stories260KFixture model) : IClassFixture<Stories260KFixture>
{
    // llama2.c's greedy continuation of "Once upon a time" (temperature 0), from the model's documentation.
    private const string Llama2cGreedyContinuation =
        ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball."
        + " She wanted to play with it, but it was too high.";

    private static readonly Llama2cTokenizer Tokenizer = Llama2cTokenizer.Load(SharedData.Stories260KTokenizer);

    private static string Greedy(LlamaModel m, int maxTokens)
    {
        var output = new StringWriter();
        int[] prompt = Tokenizer.Encode("Once upon a time", addBos: true);
        new TextGenerator(m, Tokenizer).Generate(prompt, maxTokens, new SamplingOptions { Temperature = 0 }, output);
        return output.ToString();
    }

    [Fact]
    public void GreedyGeneration_FromLlama2cCheckpoint_ReproducesLlama2c()
    {
        Assert.StartsWith(Llama2cGreedyContinuation, Greedy(model.Llama2c, 60));
    }

    [Fact]
    public void GreedyGeneration_FromHfCheckpoint_ReproducesLlama2c()
    {
        Assert.StartsWith(Llama2cGreedyContinuation, Greedy(model.Hf, 60));
    }

    [Fact]
    public void Generation_StopsAtTheTokenLimitAndReportsIt()
    {
        var output = new StringWriter();
        var result = new TextGenerator(model.Llama2c, Tokenizer).Generate(
            Stories260KFixture.OnceUponATime, 7, new SamplingOptions { Temperature = 1, Seed = 11 }, output);
        Assert.Equal(7, result.GeneratedTokens);
        Assert.Equal("max-tokens", result.StopReason);
        Assert.NotEmpty(output.ToString());
    }

    [Fact]
    public void Generation_SameSeed_SameText_DifferentSeed_DifferentText()
    {
        string Sample(ulong seed)
        {
            var output = new StringWriter();
            new TextGenerator(model.Llama2c, Tokenizer).Generate(
                Stories260KFixture.OnceUponATime, 40, new SamplingOptions { Temperature = 1, TopK = 0, TopP = 1, MinP = 0, Seed = seed }, output);
            return output.ToString();
        }

        Assert.Equal(Sample(1), Sample(1));
        Assert.NotEqual(Sample(1), Sample(2));
    }

    [Fact]
    public void Generation_PromptFillingTheContext_IsRefused()
    {
        int[] prompt = new int[model.Llama2c.ContextLength];
        Array.Fill(prompt, 300);
        var e = Assert.Throws<ArgumentException>(() => new TextGenerator(model.Llama2c, Tokenizer).Generate(prompt, 1, new SamplingOptions(), TextWriter.Null));
        Assert.Contains("context holds", e.Message);
    }

    [Fact]
    public void PerLinePerplexity_OnTinyStories_MatchesFloat64Recomputation()
    {
        string text = File.ReadAllText(SharedData.TinyStoriesSample);
        List<int[]> windows = Perplexity.PerLineWindows(Tokenizer, text, 512);
        Assert.Equal(19, windows.Count);

        PerplexityResult engine = Perplexity.Evaluate(model.Llama2c, windows);

        double nll = 0;
        long count = 0;
        foreach (int[] w in windows)
        {
            (double n, int c) = model.Reference.NegativeLogLikelihood(w);
            nll += n;
            count += c;
        }

        double reference = Math.Exp(nll / count);
        Assert.Equal(count, engine.Tokens);
        Assert.True(Math.Abs(engine.Perplexity - reference) / reference < 1e-5, $"engine {engine.Perplexity:F6}, float64 {reference:F6}");
        // The published float64 figure for this protocol (peer figures): 5.1747.
        Assert.Equal(5.1747, reference, 3);
    }

    [Fact]
    public void ContiguousWindows_CoverTheStreamWithoutOverlap()
    {
        string text = File.ReadAllText(SharedData.TinyStoriesSample);
        int[] stream = Tokenizer.Encode(Perplexity.NormaliseLineEnds(text), addBos: true);
        List<int[]> windows = Perplexity.ContiguousWindows(Tokenizer, text, 100);
        Assert.Equal(stream, windows.SelectMany(w => w));
        Assert.All(windows.SkipLast(1), w => Assert.Equal(100, w.Length));
        Assert.Equal(1, windows[0][0]);
    }
}
