using System.Reflection;
using System.Text.Json;

namespace GlowQ.Runtime.Profiles;

/// <summary>A device profile that cannot be used: the file, the field, what was expected and what was found.</summary>
public sealed class DeviceProfileException(string message) : IOException(message);

/// <summary>
/// The device profiles built into the binary (every file of device-profiles/, embedded as resources), profile files
/// given by path, and detection of the Jetson the runtime is running on.
/// </summary>
public static class DeviceProfiles
{
    private const string ResourcePrefix = "GlowQ.Runtime.DeviceProfiles.";
    private const string DeviceTreeModel = "/proc/device-tree/model";

    private static readonly Lazy<IReadOnlyList<DeviceProfile>> s_builtin = new(LoadBuiltin);

    /// <summary>Every embedded profile, by name.</summary>
    public static IReadOnlyList<DeviceProfile> Builtin => s_builtin.Value;

    /// <summary>
    /// A profile by name (embedded) or path (a .json file); with none given, the detected device's, else "cpu".
    /// </summary>
    public static DeviceProfile Resolve(string? nameOrPath, Func<string?>? readDeviceModel = null)
    {
        if (string.IsNullOrEmpty(nameOrPath))
        {
            return Detect((readDeviceModel ?? ReadDeviceModel)()) ?? Named("cpu");
        }

        if (nameOrPath.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || nameOrPath.Contains('/', StringComparison.Ordinal) || File.Exists(nameOrPath))
        {
            if (!File.Exists(nameOrPath))
            {
                throw new FileNotFoundException($"{nameOrPath}: device profile not found", nameOrPath);
            }

            return Parse(File.ReadAllBytes(nameOrPath), nameOrPath);
        }

        return Named(nameOrPath);
    }

    /// <summary>The embedded profile named <paramref name="name"/>.</summary>
    public static DeviceProfile Named(string name) =>
        Builtin.FirstOrDefault(p => p.Name == name)
        ?? throw new DeviceProfileException($"unknown device profile '{name}' (built in: {string.Join(", ", Builtin.Select(p => p.Name))}; or give a .json path)");

    /// <summary>The embedded profile whose detect strings occur in the device-tree model string, if any.</summary>
    public static DeviceProfile? Detect(string? deviceModel)
    {
        if (string.IsNullOrEmpty(deviceModel))
        {
            return null;
        }

        // The longest matching marker wins, so "AGX Orin" is not taken for a shorter, more generic marker.
        return Builtin
            .SelectMany(p => p.Detect.Select(marker => (Profile: p, Marker: marker)))
            .Where(m => deviceModel.Contains(m.Marker, StringComparison.OrdinalIgnoreCase))
            .OrderByDescending(m => m.Marker.Length)
            .Select(m => m.Profile)
            .FirstOrDefault();
    }

    /// <summary>Reads and checks one profile; throws <see cref="DeviceProfileException"/> naming the source and field.</summary>
    public static DeviceProfile Parse(byte[] json, string source)
    {
        DeviceProfile? profile;
        try
        {
            profile = JsonSerializer.Deserialize(json, DeviceProfileJsonContext.Default.DeviceProfile);
        }
        catch (JsonException e)
        {
            throw new DeviceProfileException($"{source}: not a valid device profile ({e.Message})");
        }

        if (profile is null)
        {
            throw new DeviceProfileException($"{source}: not a valid device profile (null)");
        }

        Validate(profile, source);
        return profile;
    }

    private static void Validate(DeviceProfile p, string source)
    {
        DeviceProfileException Field(string field, string expected, object? found) =>
            new($"{source}: field '{field}' must be {expected}, got {found ?? "null"}");

        if (string.IsNullOrWhiteSpace(p.Name))
        {
            throw Field("name", "a non-empty string", $"'{p.Name}'");
        }

        if (!DeviceProfile.Backends.Contains(p.Backend))
        {
            throw Field("backend", string.Join(" or ", DeviceProfile.Backends), $"'{p.Backend}'");
        }

        if (p.Backend == "cuda" && (p.ComputeCapability is null || !System.Text.RegularExpressions.Regex.IsMatch(p.ComputeCapability, @"^\d+\.\d$")))
        {
            throw Field("compute_capability", "MAJOR.MINOR (e.g. \"8.7\") for a cuda profile", p.ComputeCapability is null ? null : $"'{p.ComputeCapability}'");
        }

        if (p.MemoryGib is double memory && !(memory > 0 && memory < 1 << 20))
        {
            throw Field("memory_gib", "positive (or null to read it from the machine)", memory);
        }

        if (!(p.ReservedGib >= 0) || (p.MemoryGib is double total && p.ReservedGib >= total))
        {
            throw Field("reserved_gib", "at least 0 and below memory_gib", p.ReservedGib);
        }

        if (p.Threads < 0)
        {
            throw Field("threads", "0 (one per core) or more", p.Threads);
        }

        if (p.ContextLength < 1)
        {
            throw Field("context_length", "at least 1", p.ContextLength);
        }

        if (!(p.RestoreFraction >= 0 && p.RestoreFraction <= 1))
        {
            throw Field("restore_fraction", "in [0, 1]", p.RestoreFraction);
        }

        if (!DeviceProfile.KvCacheDtypes.Contains(p.KvCacheDtype))
        {
            throw Field("kv_cache_dtype", string.Join(" or ", DeviceProfile.KvCacheDtypes), $"'{p.KvCacheDtype}'");
        }
    }

    private static List<DeviceProfile> LoadBuiltin()
    {
        Assembly assembly = typeof(DeviceProfiles).Assembly;
        var profiles = new List<DeviceProfile>();
        foreach (string resource in assembly.GetManifestResourceNames().Where(r => r.StartsWith(ResourcePrefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            using Stream stream = assembly.GetManifestResourceStream(resource)!;
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            string file = resource[ResourcePrefix.Length..];
            DeviceProfile profile = Parse(buffer.ToArray(), $"device-profiles/{file}");
            if (profile.Name + ".json" != file)
            {
                throw new DeviceProfileException($"device-profiles/{file}: field 'name' must match the file name, got '{profile.Name}'");
            }

            profiles.Add(profile);
        }

        return [.. profiles.OrderBy(p => p.Name, StringComparer.Ordinal)];
    }

    private static string? ReadDeviceModel()
    {
        try
        {
            // The device-tree string ends in a NUL.
            return File.Exists(DeviceTreeModel) ? File.ReadAllText(DeviceTreeModel).TrimEnd('\0', '\n') : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
