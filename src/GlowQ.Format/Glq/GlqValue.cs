using System.Globalization;

namespace GlowQ.Format.Glq;

/// <summary>Value types of .glq metadata (formats/glq-v1.md §4).</summary>
public enum GlqValueType : byte
{
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    U64 = 6,
    I64 = 7,
    F32 = 8,
    F64 = 9,
    Bool = 10,
    String = 11,
    Array = 12,
}

/// <summary>
/// One typed metadata value. Scalars are held widened (integers as long or ulong, floats as double) with their
/// declared type, so a value writes back exactly as it was read; arrays hold one CLR array of the element type.
/// </summary>
public sealed class GlqValue : IEquatable<GlqValue>
{
    private GlqValue(GlqValueType type, GlqValueType? elementType, object value)
    {
        Type = type;
        ElementType = elementType;
        Raw = value;
    }

    public GlqValueType Type { get; }

    /// <summary>Element type of an array value; null for scalars.</summary>
    public GlqValueType? ElementType { get; }

    /// <summary>long (signed), ulong (unsigned), double (f32/f64), bool, string, or a CLR array for arrays.</summary>
    public object Raw { get; }

    public static GlqValue U8(byte v) => new(GlqValueType.U8, null, (ulong)v);

    public static GlqValue U32(uint v) => new(GlqValueType.U32, null, (ulong)v);

    public static GlqValue U64(ulong v) => new(GlqValueType.U64, null, v);

    public static GlqValue I32(int v) => new(GlqValueType.I32, null, (long)v);

    public static GlqValue I64(long v) => new(GlqValueType.I64, null, v);

    public static GlqValue F32(float v) => new(GlqValueType.F32, null, (double)v);

    public static GlqValue F64(double v) => new(GlqValueType.F64, null, v);

    public static GlqValue Bool(bool v) => new(GlqValueType.Bool, null, v);

    public static GlqValue String(string v) => new(GlqValueType.String, null, v);

    public static GlqValue Strings(IEnumerable<string> v) => new(GlqValueType.Array, GlqValueType.String, v.ToArray());

    public static GlqValue Int32s(IEnumerable<int> v) => new(GlqValueType.Array, GlqValueType.I32, v.ToArray());

    public static GlqValue UInt32s(IEnumerable<uint> v) => new(GlqValueType.Array, GlqValueType.U32, v.ToArray());

    public static GlqValue Floats(IEnumerable<float> v) => new(GlqValueType.Array, GlqValueType.F32, v.ToArray());

    public static GlqValue Bytes(IEnumerable<byte> v) => new(GlqValueType.Array, GlqValueType.U8, v.ToArray());

    /// <summary>Any scalar or array from its raw representation (used by the reader).</summary>
    internal static GlqValue FromRaw(GlqValueType type, GlqValueType? elementType, object raw) => new(type, elementType, raw);

    public static string TypeName(GlqValueType type, GlqValueType? elementType = null) =>
        type == GlqValueType.Array ? $"array of {TypeName(elementType ?? GlqValueType.U8)}" : type.ToString().ToLowerInvariant();

    public string TypeName() => TypeName(Type, ElementType);

    public override string ToString() => Raw switch
    {
        string s => s,
        bool b => b ? "true" : "false",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        Array a => "[" + string.Join(", ", a.Cast<object>().Take(16).Select(FormatElement)) + (a.Length > 16 ? $", … ({a.Length} items)" : "") + "]",
        _ => Convert.ToString(Raw, CultureInfo.InvariantCulture) ?? "",
    };

    private static string FormatElement(object o) => o switch
    {
        string s => "\"" + s + "\"",
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        _ => Convert.ToString(o, CultureInfo.InvariantCulture) ?? "",
    };

    public bool Equals(GlqValue? other)
    {
        if (other is null || other.Type != Type || other.ElementType != ElementType)
        {
            return false;
        }

        if (Raw is Array a && other.Raw is Array b)
        {
            return a.Length == b.Length && Enumerable.Range(0, a.Length).All(i => Equals(a.GetValue(i), b.GetValue(i)));
        }

        return Equals(Raw, other.Raw);
    }

    public override bool Equals(object? obj) => Equals(obj as GlqValue);

    public override int GetHashCode() => HashCode.Combine(Type, ElementType, Raw is Array a ? a.Length : Raw.GetHashCode());
}
