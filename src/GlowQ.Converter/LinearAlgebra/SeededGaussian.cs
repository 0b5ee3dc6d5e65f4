namespace GlowQ.Converter.LinearAlgebra;

/// <summary>Seeded standard normals (xorshift64* + Box–Muller): reproducible on every platform and runtime.</summary>
public sealed class SeededGaussian(ulong seed)
{
    private ulong _state = seed == 0 ? 0x9E3779B97F4A7C15UL : seed;
    private double? _spare;

    public double Next()
    {
        if (_spare is double spare)
        {
            _spare = null;
            return spare;
        }

        double u1 = Uniform(), u2 = Uniform();
        double radius = Math.Sqrt(-2 * Math.Log(u1));
        _spare = radius * Math.Sin(2 * Math.PI * u2);
        return radius * Math.Cos(2 * Math.PI * u2);
    }

    private double Uniform()
    {
        _state ^= _state >> 12;
        _state ^= _state << 25;
        _state ^= _state >> 27;
        return (((_state * 0x2545F4914F6CDD1DUL) >> 11) + 0.5) / 9007199254740992.0;
    }
}
