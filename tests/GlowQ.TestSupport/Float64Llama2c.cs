namespace GlowQ.TestSupport;

/// <summary>
/// An independent float64 re-computation of a llama2.c checkpoint, written from llama2.c's run.c arithmetic and
/// sharing no code with the product: its own file reader, scalar loops, double precision throughout. Tests use it
/// as the numerical reference for logits and perplexity.
/// </summary>
public sealed class Float64Llama2c
{
    private readonly int _dim, _hidden, _layers, _heads, _kvHeads, _vocab, _headSize;
    private readonly double[] _embedding, _rmsAtt, _wq, _wk, _wv, _wo, _rmsFfn, _w1, _w2, _w3, _rmsFinal, _classifier;

    public Float64Llama2c(string path)
    {
        using var reader = new BinaryReader(System.IO.File.OpenRead(path));
        _dim = reader.ReadInt32();
        _hidden = reader.ReadInt32();
        _layers = reader.ReadInt32();
        _heads = reader.ReadInt32();
        _kvHeads = reader.ReadInt32();
        int vocab = reader.ReadInt32();
        int seqLen = reader.ReadInt32();
        _vocab = Math.Abs(vocab);
        _headSize = _dim / _heads;
        int kvDim = _kvHeads * _headSize;

        double[] Read(long count)
        {
            var result = new double[count];
            for (long i = 0; i < count; i++)
            {
                result[i] = reader.ReadSingle();
            }

            return result;
        }

        _embedding = Read((long)_vocab * _dim);
        _rmsAtt = Read((long)_layers * _dim);
        _wq = Read((long)_layers * _dim * _dim);
        _wk = Read((long)_layers * kvDim * _dim);
        _wv = Read((long)_layers * kvDim * _dim);
        _wo = Read((long)_layers * _dim * _dim);
        _rmsFfn = Read((long)_layers * _dim);
        _w1 = Read((long)_layers * _hidden * _dim);
        _w2 = Read((long)_layers * _dim * _hidden);
        _w3 = Read((long)_layers * _hidden * _dim);
        _rmsFinal = Read(_dim);
        Read((long)seqLen * _headSize); // RoPE tables
        _classifier = vocab > 0 ? _embedding : Read((long)_vocab * _dim);
    }

    public int VocabSize => _vocab;

    /// <summary>Logits after each token of <paramref name="tokens"/> (row t predicts token t+1).</summary>
    public double[][] Logits(IReadOnlyList<int> tokens)
    {
        int kvDim = _kvHeads * _headSize;
        int n = tokens.Count;
        var keyCache = new double[_layers, n, kvDim];
        var valueCache = new double[_layers, n, kvDim];
        var result = new double[n][];
        for (int pos = 0; pos < n; pos++)
        {
            var x = new double[_dim];
            Array.Copy(_embedding, (long)tokens[pos] * _dim, x, 0, _dim);
            for (int l = 0; l < _layers; l++)
            {
                double[] xb = RmsNorm(x, _rmsAtt, l * _dim);
                double[] q = MatVec(_wq, (long)l * _dim * _dim, xb, _dim, _dim);
                double[] k = MatVec(_wk, (long)l * kvDim * _dim, xb, kvDim, _dim);
                double[] v = MatVec(_wv, (long)l * kvDim * _dim, xb, kvDim, _dim);
                for (int i = 0; i < _dim; i += 2)
                {
                    double frequency = 1.0 / Math.Pow(10000.0, (i % _headSize) / (double)_headSize);
                    double angle = pos * frequency;
                    Rotate(q, i, angle);
                    if (i < kvDim)
                    {
                        Rotate(k, i, angle);
                    }
                }

                for (int i = 0; i < kvDim; i++)
                {
                    keyCache[l, pos, i] = k[i];
                    valueCache[l, pos, i] = v[i];
                }

                var attention = new double[_dim];
                int groups = _heads / _kvHeads;
                for (int h = 0; h < _heads; h++)
                {
                    int kvOffset = h / groups * _headSize;
                    var scores = new double[pos + 1];
                    for (int t = 0; t <= pos; t++)
                    {
                        double s = 0;
                        for (int i = 0; i < _headSize; i++)
                        {
                            s += q[h * _headSize + i] * keyCache[l, t, kvOffset + i];
                        }

                        scores[t] = s / Math.Sqrt(_headSize);
                    }

                    Softmax(scores);
                    for (int t = 0; t <= pos; t++)
                    {
                        for (int i = 0; i < _headSize; i++)
                        {
                            attention[h * _headSize + i] += scores[t] * valueCache[l, t, kvOffset + i];
                        }
                    }
                }

                double[] o = MatVec(_wo, (long)l * _dim * _dim, attention, _dim, _dim);
                for (int i = 0; i < _dim; i++)
                {
                    x[i] += o[i];
                }

                xb = RmsNorm(x, _rmsFfn, l * _dim);
                double[] gate = MatVec(_w1, (long)l * _hidden * _dim, xb, _hidden, _dim);
                double[] up = MatVec(_w3, (long)l * _hidden * _dim, xb, _hidden, _dim);
                for (int i = 0; i < _hidden; i++)
                {
                    gate[i] = gate[i] / (1 + Math.Exp(-gate[i])) * up[i];
                }

                double[] down = MatVec(_w2, (long)l * _dim * _hidden, gate, _dim, _hidden);
                for (int i = 0; i < _dim; i++)
                {
                    x[i] += down[i];
                }
            }

            result[pos] = MatVec(_classifier, 0, RmsNorm(x, _rmsFinal, 0), _vocab, _dim);
        }

        return result;
    }

    /// <summary>Σ over t of −log softmax(logits[t])[tokens[t+1]], and the number of predictions.</summary>
    public (double Nll, int Count) NegativeLogLikelihood(IReadOnlyList<int> tokens)
    {
        double[][] logits = Logits(tokens);
        double nll = 0;
        for (int t = 0; t + 1 < tokens.Count; t++)
        {
            double max = logits[t].Max();
            double sum = logits[t].Sum(z => Math.Exp(z - max));
            nll += max + Math.Log(sum) - logits[t][tokens[t + 1]];
        }

        return (nll, Math.Max(0, tokens.Count - 1));
    }

    private static void Rotate(double[] v, int i, double angle)
    {
        double c = Math.Cos(angle), s = Math.Sin(angle);
        double a = v[i], b = v[i + 1];
        v[i] = a * c - b * s;
        v[i + 1] = a * s + b * c;
    }

    private double[] RmsNorm(double[] x, double[] weight, int offset)
    {
        double ss = 0;
        foreach (double value in x)
        {
            ss += value * value;
        }

        double scale = 1.0 / Math.Sqrt(ss / x.Length + 1e-5);
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            y[i] = weight[offset + i] * (scale * x[i]);
        }

        return y;
    }

    private static double[] MatVec(double[] w, long offset, double[] x, int rows, int cols)
    {
        var y = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double s = 0;
            long row = offset + (long)r * cols;
            for (int c = 0; c < cols; c++)
            {
                s += w[row + c] * x[c];
            }

            y[r] = s;
        }

        return y;
    }

    private static void Softmax(double[] x)
    {
        double max = x.Max();
        double sum = 0;
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = Math.Exp(x[i] - max);
            sum += x[i];
        }

        for (int i = 0; i < x.Length; i++)
        {
            x[i] /= sum;
        }
    }
}
