using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace GlowQ.Cli.Hosting;

/// <summary>
/// The process's host: configuration from <c>appsettings.json</c> beside the binary and <c>GLOWQ_</c> environment
/// variables (the command line overrides both, through the options' defaults), and logging to stderr with levels
/// (<c>Logging:LogLevel:Default</c>, e.g. <c>GLOWQ_LOGGING__LOGLEVEL__DEFAULT=Debug</c>). The empty builder is used
/// because the default one adds user secrets, file watchers and a console lifetime that would take over Ctrl+C, which
/// the verbs own (<see cref="InterruptCancellation"/>).
/// </summary>
public static class GlowQHost
{
    /// <param name="baseDirectory">Where <c>appsettings.json</c> is looked for: the binary's folder.</param>
    public static IHost Build(string baseDirectory, TextWriter stderr)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings
        {
            ContentRootPath = baseDirectory,
            DisableDefaults = true,
        });
        builder.Configuration.AddJsonFile(Path.Combine(baseDirectory, GlowQSettings.FileName), optional: true, reloadOnChange: false);
        builder.Configuration.AddEnvironmentVariables(GlowQSettings.EnvironmentPrefix);
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddConfiguration(builder.Configuration.GetSection("Logging"));
        var logOutput = new StderrLoggerProvider(stderr);
        builder.Logging.AddProvider(logOutput);
        builder.Services.AddSingleton(logOutput);
        builder.Services.AddSingleton(ReadSettings(builder.Configuration));
        return builder.Build();
    }

    /// <summary>
    /// Binds and checks the settings; a value that cannot be read (not a number, out of range, malformed JSON) is a
    /// <see cref="ConfigurationProblemException"/> naming the key and where keys come from.
    /// </summary>
    public static GlowQSettings ReadSettings(IConfiguration configuration)
    {
        var settings = new GlowQSettings();
        try
        {
            configuration.Bind(settings);
        }
        catch (InvalidOperationException e)
        {
            throw new ConfigurationProblemException($"configuration ({GlowQSettings.FileName} or {GlowQSettings.EnvironmentPrefix}* environment): {Describe(e, configuration)}");
        }

        return settings.Problem() is string problem
            ? throw new ConfigurationProblemException($"configuration ({GlowQSettings.FileName} or {GlowQSettings.EnvironmentPrefix}* environment): {problem}")
            : settings;
    }

    /// <summary>Turns a settings file that cannot be read into one line naming the file and the JSON problem, or null for other failures.</summary>
    public static string? DescribeLoadFailure(Exception e)
    {
        if (e is not InvalidDataException)
        {
            return null;
        }

        Exception cause = e;
        while (cause.InnerException is not null)
        {
            cause = cause.InnerException;
        }

        string where = e.Message.Split('\'', 3) is [_, string path, _] ? path : GlowQSettings.FileName;
        return cause == e ? $"{where}: {e.Message}" : $"{where}: not valid settings JSON: {cause.Message.ReplaceLineEndings(" ")}";
    }

    // The binder says "Failed to convert configuration value at 'Generation:Temperature' to type 'System.Single'."
    private static string Describe(InvalidOperationException e, IConfiguration configuration)
    {
        string message = e.Message;
        int start = message.IndexOf("at '", StringComparison.Ordinal);
        int end = start < 0 ? -1 : message.IndexOf('\'', start + 4);
        if (end < 0)
        {
            return message;
        }

        string key = message[(start + 4)..end];
        string type = message.Contains("System.Single", StringComparison.Ordinal) || message.Contains("System.Double", StringComparison.Ordinal) ? "a number"
            : message.Contains("System.Int32", StringComparison.Ordinal) || message.Contains("System.UInt64", StringComparison.Ordinal) ? "a whole number"
            : "a value of the expected type";
        return $"{key} must be {type}, got '{configuration[key]}'";
    }
}

/// <summary>A configuration value (appsettings.json, GLOWQ_ environment) that cannot be used.</summary>
public sealed class ConfigurationProblemException(string message) : Exception(message);
