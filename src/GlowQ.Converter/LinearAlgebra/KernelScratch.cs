namespace GlowQ.Converter.LinearAlgebra;

/// <summary>
/// One thread's packing buffers. Each thread keeps one instance for its lifetime, so repeated kernel calls (the solves
/// and Cholesky call the GEMM many times) allocate nothing; a nested call on a thread whose buffers are taken gets a
/// fresh instance instead of sharing.
/// </summary>
internal sealed class KernelScratch
{
    [ThreadStatic]
    private static KernelScratch? t_idle;

    private double[]? _packedA;
    private double[]? _packedB;
    private float[]? _gramA;
    private float[]? _gramB;

    /// <summary>Room for one Mr × Nr register tile whose result must be merged into C element by element.</summary>
    public double[] Edge { get; } = new double[MicroKernels.Mr * MicroKernels.GramNr];

    public double[] PackedA => _packedA ??= new double[DenseKernels.BlockRows * DenseKernels.BlockDepth];

    public double[] PackedB => _packedB ??= new double[DenseKernels.BlockDepth * DenseKernels.BlockColumns];

    public float[] GramA => _gramA ??= new float[DenseKernels.GramTile * DenseKernels.GramTokens];

    public float[] GramB => _gramB ??= new float[DenseKernels.GramTile * DenseKernels.GramTokens];

    public static KernelScratch Rent()
    {
        KernelScratch? idle = t_idle;
        t_idle = null;
        return idle ?? new KernelScratch();
    }

    public static void Return(KernelScratch scratch) => t_idle ??= scratch;
}
