using System.Buffers.Binary;
using System.Text;

namespace GlowQ.Format.Glq;

/// <summary>
/// The typed key/value metadata of a .glq file, kept sorted by key (ordinal) so that writing is deterministic.
/// Getters check the declared type and throw one-line errors naming the key, the expected and the found type.
/// </summary>
public sealed class GlqMetadata
{
    public const int MaxKeyBytes = 256;

    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    private readonly SortedDictionary<string, GlqValue> _entries = new(StringComparer.Ordinal);

    /// <summary>Where errors say the metadata came from (a file name, or "metadata").</summary>
    public string Source { get; init; } = "metadata";

    public int Count => _entries.Count;

    public IEnumerable<KeyValuePair<string, GlqValue>> Entries => _entries;

    public bool Contains(string key) => _entries.ContainsKey(key);

    public GlqValue? Find(string key) => _entries.GetValueOrDefault(key);

    public GlqMetadata Set(string key, GlqValue value)
    {
        if (!IsValidKey(key))
        {
            throw new ArgumentException($"metadata key '{key}' must be 1..{MaxKeyBytes} characters of [a-z0-9_.-]");
        }

        _entries[key] = value;
        return this;
    }

    public static bool IsValidKey(string key) =>
        key.Length is > 0 and <= MaxKeyBytes && key.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_' or '.' or '-');

    // Typed access. Integer getters accept any integer type whose value fits, so a writer may choose a wider type.
    public string GetString(string key) => (string)Require(key, GlqValueType.String).Raw;

    public string? FindString(string key) => Find(key) is { } v ? Expect(key, v, GlqValueType.String).Raw as string : null;

    public uint GetUInt32(string key) => ToUInt32(key, Require(key, null));

    public uint? FindUInt32(string key) => Find(key) is { } v ? ToUInt32(key, v) : null;

    public int GetInt32(string key) => checked((int)ToInteger(key, Require(key, null), int.MinValue, int.MaxValue));

    public int? FindInt32(string key) => Find(key) is { } v ? checked((int)ToInteger(key, v, int.MinValue, int.MaxValue)) : null;

    public ulong GetUInt64(string key) => Require(key, null) is var v && v.Raw is ulong u ? u : throw TypeError(key, "u64", v);

    public double GetDouble(string key) => Require(key, null) is var v && v.Raw is double d && v.Type is GlqValueType.F32 or GlqValueType.F64 ? d : throw TypeError(key, "f32 or f64", v);

    public double? FindDouble(string key) => Find(key) is { } v ? (v.Raw is double d ? d : throw TypeError(key, "f32 or f64", v)) : null;

    public bool GetBool(string key) => (bool)Require(key, GlqValueType.Bool).Raw;

    public bool? FindBool(string key) => Find(key) is { } v ? (bool)Expect(key, v, GlqValueType.Bool).Raw : null;

    public T[] GetArray<T>(string key, GlqValueType elementType) => Find(key) is { } v
        ? (v.Type == GlqValueType.Array && v.ElementType == elementType ? (T[])v.Raw : throw TypeError(key, GlqValue.TypeName(GlqValueType.Array, elementType), v))
        : throw Missing(key, GlqValue.TypeName(GlqValueType.Array, elementType));

    public T[]? FindArray<T>(string key, GlqValueType elementType) => Contains(key) ? GetArray<T>(key, elementType) : null;

    private GlqValue Require(string key, GlqValueType? type) => Find(key) is { } v
        ? (type is null ? v : Expect(key, v, type.Value))
        : throw Missing(key, type is null ? "a number" : GlqValue.TypeName(type.Value));

    private GlqValue Expect(string key, GlqValue v, GlqValueType type) => v.Type == type ? v : throw TypeError(key, GlqValue.TypeName(type), v);

    private uint ToUInt32(string key, GlqValue v) => (uint)ToInteger(key, v, 0, uint.MaxValue);

    private long ToInteger(string key, GlqValue v, long min, long max)
    {
        long value = v.Raw switch
        {
            long l => l,
            ulong u when u <= long.MaxValue => (long)u,
            _ => throw TypeError(key, "an integer", v),
        };
        return value >= min && value <= max ? value : throw new ModelFormatException($"{Source}: metadata key '{key}' is {value}, outside [{min}, {max}]");
    }

    private ModelFormatException Missing(string key, string type) => new($"{Source}: required metadata key '{key}' ({type}) is missing");

    private ModelFormatException TypeError(string key, string expected, GlqValue found) =>
        new($"{Source}: metadata key '{key}' should be {expected}, found {found.TypeName()}");

    // ---- Binary encoding (formats/glq-v1.md §4) ----

    /// <summary>The encoded metadata section: entries in ordinal key order.</summary>
    public byte[] Encode()
    {
        var buffer = new LittleEndianWriter();
        foreach ((string key, GlqValue value) in _entries)
        {
            byte[] keyBytes = Encoding.ASCII.GetBytes(key);
            buffer.U16((ushort)keyBytes.Length);
            buffer.Bytes(keyBytes);
            buffer.U8((byte)value.Type);
            if (value.Type == GlqValueType.Array)
            {
                var array = (Array)value.Raw;
                buffer.U8((byte)value.ElementType!.Value);
                buffer.U64((ulong)array.Length);
                WriteArray(buffer, value.ElementType.Value, array);
            }
            else
            {
                WriteScalar(buffer, value.Type, value.Raw);
            }
        }

        return buffer.ToArray();
    }

    // Typed loops, never boxed elements: floats go out as their exact bits (a boxed float passed through a
    // float/double conversion loses a signalling NaN's payload in optimised code).
    private static void WriteArray(LittleEndianWriter b, GlqValueType type, Array array)
    {
        switch (array)
        {
            case float[] floats when type == GlqValueType.F32:
                foreach (float f in floats)
                {
                    b.U32(BitConverter.SingleToUInt32Bits(f));
                }

                break;
            case double[] doubles when type == GlqValueType.F64:
                foreach (double d in doubles)
                {
                    b.U64(BitConverter.DoubleToUInt64Bits(d));
                }

                break;
            default:
                foreach (object element in array)
                {
                    WriteScalar(b, type, element);
                }

                break;
        }
    }

    private static void WriteScalar(LittleEndianWriter b, GlqValueType type, object v)
    {
        switch (type)
        {
            case GlqValueType.U8: b.U8((byte)Convert.ToUInt64(v, null)); break;
            case GlqValueType.I8: b.U8((byte)(sbyte)Convert.ToInt64(v, null)); break;
            case GlqValueType.U16: b.U16((ushort)Convert.ToUInt64(v, null)); break;
            case GlqValueType.I16: b.U16((ushort)(short)Convert.ToInt64(v, null)); break;
            case GlqValueType.U32: b.U32((uint)Convert.ToUInt64(v, null)); break;
            case GlqValueType.I32: b.U32((uint)(int)Convert.ToInt64(v, null)); break;
            case GlqValueType.U64: b.U64(Convert.ToUInt64(v, null)); break;
            case GlqValueType.I64: b.U64((ulong)Convert.ToInt64(v, null)); break;
            case GlqValueType.F32: b.U32(BitConverter.SingleToUInt32Bits((float)Convert.ToDouble(v, null))); break;
            case GlqValueType.F64: b.U64(BitConverter.DoubleToUInt64Bits(Convert.ToDouble(v, null))); break;
            case GlqValueType.Bool: b.U8((bool)v ? (byte)1 : (byte)0); break;
            case GlqValueType.String:
                byte[] s = Encoding.UTF8.GetBytes((string)v);
                b.U32((uint)s.Length);
                b.Bytes(s);
                break;
            default: throw new ArgumentOutOfRangeException(nameof(type), type, null);
        }
    }

    /// <summary>Decodes <paramref name="count"/> entries that must fill <paramref name="section"/> exactly.</summary>
    public static GlqMetadata Decode(ReadOnlySpan<byte> section, uint count, string source)
    {
        var metadata = new GlqMetadata { Source = source };
        var reader = new SectionReader(section, source, "metadata");
        for (uint i = 0; i < count; i++)
        {
            int keyLength = reader.U16($"entry {i} key length");
            if (keyLength is 0 or > MaxKeyBytes)
            {
                throw reader.Error($"entry {i} key length {keyLength}, expected 1..{MaxKeyBytes}");
            }

            string key = Encoding.ASCII.GetString(reader.Bytes(keyLength, $"entry {i} key"));
            if (!IsValidKey(key))
            {
                throw reader.Error($"entry {i} key '{Printable(key)}' has characters outside [a-z0-9_.-]");
            }

            if (metadata.Contains(key))
            {
                throw reader.Error($"key '{key}' appears twice");
            }

            byte typeCode = reader.U8($"'{key}' type");
            if (typeCode > (byte)GlqValueType.Array)
            {
                throw reader.Error($"key '{key}' has unknown value type {typeCode}");
            }

            var type = (GlqValueType)typeCode;
            GlqValue value;
            if (type == GlqValueType.Array)
            {
                byte elementCode = reader.U8($"'{key}' element type");
                if (elementCode >= (byte)GlqValueType.Array)
                {
                    throw reader.Error($"key '{key}' has array element type {elementCode}, expected 0..11 (arrays do not nest)");
                }

                var elementType = (GlqValueType)elementCode;
                ulong length = reader.U64($"'{key}' array length");
                int minimumElementBytes = ElementSize(elementType) ?? 4;
                if (length > (ulong)reader.Remaining / (ulong)minimumElementBytes)
                {
                    throw reader.Error($"key '{key}' declares {length} elements, more than the {reader.Remaining} bytes left can hold");
                }

                value = GlqValue.FromRaw(type, elementType, ReadArray(ref reader, elementType, (int)length, key));
            }
            else
            {
                value = GlqValue.FromRaw(type, null, ReadScalar(ref reader, type, key));
            }

            metadata._entries[key] = value;
        }

        if (reader.Remaining != 0)
        {
            throw reader.Error($"{reader.Remaining} bytes left after the {count} declared entries");
        }

        return metadata;
    }

    private static int? ElementSize(GlqValueType t) => t switch
    {
        GlqValueType.U8 or GlqValueType.I8 or GlqValueType.Bool => 1,
        GlqValueType.U16 or GlqValueType.I16 => 2,
        GlqValueType.U32 or GlqValueType.I32 or GlqValueType.F32 => 4,
        GlqValueType.U64 or GlqValueType.I64 or GlqValueType.F64 => 8,
        _ => null,
    };

    private static object ReadScalar(ref SectionReader r, GlqValueType type, string key) => type switch
    {
        GlqValueType.U8 => (ulong)r.U8(key),
        GlqValueType.I8 => (long)(sbyte)r.U8(key),
        GlqValueType.U16 => (ulong)r.U16(key),
        GlqValueType.I16 => (long)(short)r.U16(key),
        GlqValueType.U32 => (ulong)r.U32(key),
        GlqValueType.I32 => (long)(int)r.U32(key),
        GlqValueType.U64 => r.U64(key),
        GlqValueType.I64 => (long)r.U64(key),
        GlqValueType.F32 => (double)BitConverter.UInt32BitsToSingle(r.U32(key)),
        GlqValueType.F64 => BitConverter.UInt64BitsToDouble(r.U64(key)),
        GlqValueType.Bool => r.U8(key) switch
        {
            0 => false,
            1 => true,
            var b => throw r.Error($"key '{key}' bool byte is {b}, expected 0 or 1"),
        },
        GlqValueType.String => ReadString(ref r, key),
        _ => throw r.Error($"key '{key}' has unknown type {type}"),
    };

    private static string ReadString(ref SectionReader r, string key)
    {
        uint length = r.U32($"'{key}' string length");
        if (length > (uint)r.Remaining)
        {
            throw r.Error($"key '{key}' string of {length} bytes runs past the section ({r.Remaining} left)");
        }

        ReadOnlySpan<byte> bytes = r.Bytes((int)length, key);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw r.Error($"key '{key}' string is not valid UTF-8");
        }
    }

    private static Array ReadArray(ref SectionReader r, GlqValueType t, int n, string key)
    {
        switch (t)
        {
            case GlqValueType.String:
                var strings = new string[n];
                for (int i = 0; i < n; i++)
                {
                    strings[i] = ReadString(ref r, key);
                }

                return strings;
            case GlqValueType.Bool:
                var bools = new bool[n];
                for (int i = 0; i < n; i++)
                {
                    bools[i] = (bool)ReadScalar(ref r, t, key);
                }

                return bools;
        }

        Array result = t switch
        {
            GlqValueType.U8 => new byte[n],
            GlqValueType.I8 => new sbyte[n],
            GlqValueType.U16 => new ushort[n],
            GlqValueType.I16 => new short[n],
            GlqValueType.U32 => new uint[n],
            GlqValueType.I32 => new int[n],
            GlqValueType.U64 => new ulong[n],
            GlqValueType.I64 => new long[n],
            GlqValueType.F32 => new float[n],
            _ => new double[n],
        };
        // Switch on the element type, not on the array: the CLR lets int[] match `case uint[]` (and sbyte[] byte[],
        // short[] ushort[], long[] ulong[]). Floats are read as bits so that every NaN payload survives.
        for (int i = 0; i < n; i++)
        {
            switch (t)
            {
                case GlqValueType.U8: ((byte[])result)[i] = r.U8(key); break;
                case GlqValueType.I8: ((sbyte[])result)[i] = (sbyte)r.U8(key); break;
                case GlqValueType.U16: ((ushort[])result)[i] = r.U16(key); break;
                case GlqValueType.I16: ((short[])result)[i] = (short)r.U16(key); break;
                case GlqValueType.U32: ((uint[])result)[i] = r.U32(key); break;
                case GlqValueType.I32: ((int[])result)[i] = (int)r.U32(key); break;
                case GlqValueType.U64: ((ulong[])result)[i] = r.U64(key); break;
                case GlqValueType.I64: ((long[])result)[i] = (long)r.U64(key); break;
                case GlqValueType.F32: ((float[])result)[i] = BitConverter.UInt32BitsToSingle(r.U32(key)); break;
                default: ((double[])result)[i] = BitConverter.UInt64BitsToDouble(r.U64(key)); break;
            }
        }

        return result;
    }

    private static string Printable(string s) => new([.. s.Take(40).Select(c => c is >= ' ' and < (char)127 ? c : '?')]);
}

/// <summary>A bounds-checked little-endian cursor over one section; every read names what it was reading.</summary>
internal ref struct SectionReader(ReadOnlySpan<byte> data, string source, string section)
{
    private readonly ReadOnlySpan<byte> _data = data;
    private int _position;

    public readonly int Position => _position;

    public readonly int Remaining => _data.Length - _position;

    public ReadOnlySpan<byte> Bytes(int count, string what)
    {
        if (count < 0 || count > Remaining)
        {
            throw Error($"{what}: needs {count} bytes at offset {_position}, {Remaining} left (truncated section)");
        }

        ReadOnlySpan<byte> result = _data.Slice(_position, count);
        _position += count;
        return result;
    }

    public byte U8(string what) => Bytes(1, what)[0];

    public ushort U16(string what) => BinaryPrimitives.ReadUInt16LittleEndian(Bytes(2, what));

    public uint U32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4, what));

    public ulong U64(string what) => BinaryPrimitives.ReadUInt64LittleEndian(Bytes(8, what));

    public readonly ModelFormatException Error(string problem) => new($"{source}: {section}: {problem}");
}

/// <summary>A growable little-endian byte buffer for encoding sections.</summary>
internal sealed class LittleEndianWriter
{
    private readonly System.Buffers.ArrayBufferWriter<byte> _buffer = new();

    public int Length => _buffer.WrittenCount;

    public void U8(byte v) => Take(1)[0] = v;

    public void U16(ushort v) => BinaryPrimitives.WriteUInt16LittleEndian(Take(2), v);

    public void U32(uint v) => BinaryPrimitives.WriteUInt32LittleEndian(Take(4), v);

    public void U64(ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(Take(8), v);

    public void Bytes(ReadOnlySpan<byte> bytes) => bytes.CopyTo(Take(bytes.Length));

    public byte[] ToArray() => _buffer.WrittenSpan.ToArray();

    private Span<byte> Take(int count)
    {
        Span<byte> span = _buffer.GetSpan(count)[..count];
        _buffer.Advance(count);
        return span;
    }
}
