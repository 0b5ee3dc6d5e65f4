namespace GlowQ.Tokenizers;

/// <summary>One symbol of a <see cref="ScoreOrderedMerge"/>: a span of the text being merged and its token id.</summary>
/// <param name="Start">Offset of the symbol in the text.</param>
/// <param name="Length">Length of the symbol in the text (may be 0: a llama2.c piece can be empty).</param>
/// <param name="Id">The symbol's token id, or any value the caller likes for symbols that are no piece; a merged symbol gets the id of its piece.</param>
/// <param name="Frozen">A frozen symbol (a SentencePiece user-defined piece) never merges with its neighbours.</param>
internal readonly record struct MergeSymbol(int Start, int Length, int Id, bool Frozen = false);

/// <summary>
/// Score-ordered BPE merging as SentencePiece's <c>bpe_model.cc</c> and llama2.c's <c>run.c</c> do it: repeatedly merge the
/// adjacent pair whose concatenation is a piece with the highest score, the leftmost pair on ties, until no pair is a
/// piece. It is the one implementation behind <see cref="SentencePieceTokenizer"/> and <see cref="Llama2cTokenizer"/>.
/// </summary>
/// <remarks>
/// The symbols are consecutive spans of one text, so the concatenation of two neighbours is simply the span covering both
/// and no string is built per candidate. Candidates sit in a priority queue ordered by (score descending, position
/// ascending), which pops the same pair that run.c's full rescan or SentencePiece's heap would pick; a candidate that a
/// later merge made stale is recognised by a per-position version and dropped. A NaN score never merges: run.c's
/// <c>score &gt; best</c> is false for it, and SentencePiece's heap order is undefined with it.
/// </remarks>
internal sealed class ScoreOrderedMerge
{
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _pieces;
    private readonly float[] _scores;
    private readonly bool[]? _isTarget;

    /// <param name="pieces">Piece text → id, for the pieces a pair may merge into (more may be listed and be excluded by <paramref name="isTarget"/>).</param>
    /// <param name="scores">Merge score of every id.</param>
    /// <param name="isTarget">Per id, whether a pair may merge into it; null when every listed piece may.</param>
    public ScoreOrderedMerge(Dictionary<string, int> pieces, float[] scores, bool[]? isTarget)
    {
        _pieces = pieces.GetAlternateLookup<ReadOnlySpan<char>>();
        _scores = scores;
        _isTarget = isTarget;
    }

    /// <summary>
    /// Merges <paramref name="symbols"/> — consecutive spans that together cover <paramref name="text"/>, in order — and
    /// moves the surviving symbols to the front of the span, in order.
    /// </summary>
    /// <param name="onCandidate">
    /// Called with (merged id, left symbol's length) each time a pair is queued, whether or not it is merged later:
    /// SentencePiece takes an UNUSED piece apart again after merging, at the split of the last pair queued for it.
    /// </param>
    /// <returns>The number of surviving symbols.</returns>
    public int Merge(ReadOnlySpan<char> text, Span<MergeSymbol> symbols, Action<int, int>? onCandidate = null)
    {
        int n = symbols.Length;
        if (n < 2)
        {
            return n;
        }

        var start = new int[n];
        var length = new int[n];
        var ids = new int[n];
        var next = new int[n];
        var prev = new int[n];
        var version = new int[n];
        var frozen = new bool[n];
        for (int i = 0; i < n; i++)
        {
            start[i] = symbols[i].Start;
            length[i] = symbols[i].Length;
            ids[i] = symbols[i].Id;
            frozen[i] = symbols[i].Frozen;
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
        }

        var queue = new PriorityQueue<Candidate, Candidate>(n, CandidateOrder.Instance);

        void Consider(ReadOnlySpan<char> text, int left)
        {
            int right = next[left];
            if (right < 0 || frozen[left] || frozen[right])
            {
                return;
            }

            if (!_pieces.TryGetValue(text.Slice(start[left], length[left] + length[right]), out int mergedId)
                || (_isTarget is not null && !_isTarget[mergedId])
                || float.IsNaN(_scores[mergedId]))
            {
                return;
            }

            var candidate = new Candidate(_scores[mergedId], left, right, version[left], version[right], mergedId);
            queue.Enqueue(candidate, candidate);
            onCandidate?.Invoke(mergedId, length[left]);
        }

        for (int i = 0; i + 1 < n; i++)
        {
            Consider(text, i);
        }

        int alive = n;
        while (queue.TryDequeue(out Candidate c, out _))
        {
            if (next[c.Left] != c.Right || version[c.Left] != c.LeftVersion || version[c.Right] != c.RightVersion)
            {
                continue; // stale: one side was merged away or changed since this pair was queued
            }

            ids[c.Left] = c.MergedId;
            length[c.Left] += length[c.Right];
            version[c.Left]++;
            length[c.Right] = 0;
            version[c.Right]++;
            alive--;
            int after = next[c.Right];
            next[c.Left] = after;
            if (after >= 0)
            {
                prev[after] = c.Left;
            }

            if (prev[c.Left] >= 0)
            {
                Consider(text, prev[c.Left]);
            }

            Consider(text, c.Left);
        }

        int k = 0;
        for (int i = 0; i >= 0; i = next[i])
        {
            symbols[k++] = new MergeSymbol(start[i], length[i], ids[i], frozen[i]);
        }

        return alive;
    }

    private readonly record struct Candidate(float Score, int Left, int Right, int LeftVersion, int RightVersion, int MergedId);

    /// <summary>Dequeue order: higher score first, then the leftmost pair (both reference implementations keep the first pair on ties).</summary>
    private sealed class CandidateOrder : IComparer<Candidate>
    {
        public static readonly CandidateOrder Instance = new();

        public int Compare(Candidate x, Candidate y)
        {
            int byScore = y.Score.CompareTo(x.Score);
            return byScore != 0 ? byScore : x.Left.CompareTo(y.Left);
        }
    }
}
