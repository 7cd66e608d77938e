using System.ComponentModel;
using System.Reflection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.CommandLine;
using Microsoft.Extensions.Configuration.EnvironmentVariables;
using Microsoft.Extensions.Configuration.Json;
using Microsoft.Extensions.Hosting;

namespace Serval.Daemon;

/// <summary>
/// Reads servald's configuration strictly: every key under <c>Serval</c> must name a property of the options types
/// that section binds to (<see cref="DaemonOptions"/> and the types of its properties; list entries are numbered),
/// every value must convert to its property's type, and the top-level keys of appsettings.json and the command line
/// must be <c>Serval</c> or a key the Generic Host itself reads (<see cref="HostKeys"/>).
/// </summary>
internal static class DaemonConfiguration
{
    /// <summary>
    /// Top-level keys that servald's Generic Host reads besides <c>Serval</c>: logging, the host settings
    /// (<c>--environment</c>, <c>--contentRoot</c>, <c>--applicationName</c>), the reload switch of the JSON files
    /// and <c>HostOptions</c>. Compared case-insensitively.
    /// </summary>
    public static readonly IReadOnlyList<string> HostKeys =
    [
        "Logging",
        HostDefaults.EnvironmentKey,
        HostDefaults.ContentRootKey,
        HostDefaults.ApplicationKey,
        "hostBuilder",
        "shutdownTimeoutSeconds",
        "servicesStartConcurrently",
        "servicesStopConcurrently",
    ];

    /// <summary>Checks <paramref name="configuration"/> and binds its <c>Serval</c> section.</summary>
    /// <exception cref="DaemonException">Unknown keys or unconvertible values, all of them named in one line.</exception>
    public static DaemonOptions Bind(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var problems = new List<string>();
        if (configuration is IConfigurationRoot root)
        {
            foreach (var provider in root.Providers.Where(p => p is JsonConfigurationProvider or CommandLineConfigurationProvider))
            {
                foreach (var key in provider.GetChildKeys([], null).Distinct(StringComparer.OrdinalIgnoreCase))
                {
                    if (!key.Equals(DaemonOptions.Section, StringComparison.OrdinalIgnoreCase)
                        && !HostKeys.Contains(key, StringComparer.OrdinalIgnoreCase))
                    {
                        problems.Add($"unknown key {key} ({SourceName(provider)})");
                    }
                }
            }
        }

        var section = configuration.GetSection(DaemonOptions.Section);
        CheckSection(configuration, section, typeof(DaemonOptions), problems);
        if (problems.Count > 0)
        {
            throw new DaemonException($"invalid configuration: {string.Join("; ", problems)}");
        }

        try
        {
            return section.Get<DaemonOptions>() ?? new DaemonOptions();
        }
        catch (InvalidOperationException e)
        {
            throw new DaemonException($"invalid configuration: {OneLine(e)}", e);
        }
    }

    /// <summary>The messages of <paramref name="e"/> and its inner exceptions on one line.</summary>
    public static string OneLine(Exception e)
    {
        var parts = new List<string>();
        for (var x = e; x is not null; x = x.InnerException)
        {
            var m = x.Message.ReplaceLineEndings(" ").Trim().TrimEnd('.');
            if (m.Length > 0 && !parts.Contains(m))
            {
                parts.Add(m);
            }
        }

        return string.Join(": ", parts);
    }

    private static void CheckSection(IConfiguration configuration, IConfigurationSection section, Type type, List<string> problems)
    {
        var properties = Bindable(type);
        foreach (var child in section.GetChildren())
        {
            var property = properties.FirstOrDefault(p => p.Name.Equals(child.Key, StringComparison.OrdinalIgnoreCase));
            if (property is null)
            {
                problems.Add(Unknown(configuration, child, properties.Select(p => p.Name)));
                continue;
            }

            CheckValue(configuration, child, property.PropertyType, problems);
        }
    }

    private static void CheckValue(IConfiguration configuration, IConfigurationSection section, Type type, List<string> problems)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (ElementType(type) is { } element)
        {
            foreach (var child in section.GetChildren())
            {
                if (!int.TryParse(child.Key, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _))
                {
                    problems.Add($"{Unknown(configuration, child, [])}: {section.Path} is a list, its entries are numbered ({section.Path}:0{(IsScalar(element) ? string.Empty : ":" + child.Key)})");
                    continue;
                }

                CheckValue(configuration, child, element, problems);
            }

            if (!string.IsNullOrEmpty(section.Value))
            {
                problems.Add($"{section.Path} is a list, not a value (set {section.Path}:0)");
            }

            return;
        }

        if (IsScalar(type))
        {
            foreach (var child in section.GetChildren())
            {
                problems.Add($"{Unknown(configuration, child, [])}: {section.Path} is a value, not a section");
            }

            if (!string.IsNullOrEmpty(section.Value) && Convert(section.Value, type) is { } why)
            {
                problems.Add($"{section.Path}: '{section.Value}' is not {why}");
            }

            return;
        }

        CheckSection(configuration, section, type, problems);
        if (!string.IsNullOrEmpty(section.Value))
        {
            problems.Add($"{section.Path} is a section, not a value");
        }
    }

    /// <summary>Null when <paramref name="value"/> converts to <paramref name="type"/>, else what was expected.</summary>
    private static string? Convert(string value, Type type)
    {
        if (type.IsEnum)
        {
            var names = Enum.GetNames(type);
            return names.Any(n => n.Equals(value.Trim(), StringComparison.OrdinalIgnoreCase)) ? null : $"one of {string.Join(", ", names)}";
        }

        try
        {
            _ = TypeDescriptor.GetConverter(type).ConvertFromInvariantString(value);
            return null;
        }
        catch (Exception e) when (e is FormatException or NotSupportedException or ArgumentException or OverflowException || e.InnerException is FormatException or OverflowException)
        {
            return Expected(type);
        }
    }

    private static string Expected(Type type) => type switch
    {
        _ when type == typeof(bool) => "true or false",
        _ when type == typeof(int) => "an integer",
        _ when type == typeof(uint) => "an integer from 0 to 4294967295",
        _ when type == typeof(TimeSpan) => "a duration ([d.]hh:mm:ss[.fffffff])",
        _ => $"a {type.Name}",
    };

    private static string Unknown(IConfiguration configuration, IConfigurationSection section, IEnumerable<string> known)
    {
        var text = $"unknown key {section.Path}";
        if (Source(configuration, section.Path) is { } source)
        {
            text += $" ({source})";
        }

        var parent = section.Path[..^section.Key.Length];
        var guess = known.Where(k => Distance(k, section.Key) <= 2).OrderBy(k => Distance(k, section.Key)).FirstOrDefault();
        return guess is null ? text : $"{text}, did you mean {parent}{guess}?";
    }

    /// <summary>The last configuration source that sets <paramref name="path"/> or a key below it.</summary>
    private static string? Source(IConfiguration configuration, string path)
    {
        if (configuration is not IConfigurationRoot root)
        {
            return null;
        }

        var parent = path.Contains(':', StringComparison.Ordinal) ? path[..path.LastIndexOf(':')] : null;
        var key = path[(path.LastIndexOf(':') + 1)..];
        foreach (var provider in root.Providers.Reverse())
        {
            if (provider.TryGet(path, out _) || provider.GetChildKeys([], parent).Contains(key, StringComparer.OrdinalIgnoreCase))
            {
                return SourceName(provider);
            }
        }

        return null;
    }

    private static string SourceName(IConfigurationProvider provider) => provider switch
    {
        JsonConfigurationProvider json => ConfigurationFiles.Describe(json.Source),
        CommandLineConfigurationProvider => "command line",
        EnvironmentVariablesConfigurationProvider => "environment",
        _ => provider.GetType().Name,
    };

    private static PropertyInfo[] Bindable(Type type) =>
        [.. type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.GetIndexParameters().Length == 0 && p.SetMethod is { IsPublic: true })];

    private static bool IsScalar(Type type) =>
        type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(decimal) || type == typeof(TimeSpan)
        || type == typeof(DateTime) || type == typeof(DateTimeOffset) || type == typeof(Uri) || type == typeof(Guid);

    private static Type? ElementType(Type type) =>
        type.IsArray ? type.GetElementType()
        : type.IsGenericType && type.GetGenericTypeDefinition() is var d && (d == typeof(List<>) || d == typeof(IList<>) || d == typeof(IReadOnlyList<>) || d == typeof(IEnumerable<>))
            ? type.GetGenericArguments()[0]
            : null;

    /// <summary>Case-insensitive Levenshtein distance.</summary>
    private static int Distance(string a, string b)
    {
        a = a.ToUpperInvariant();
        b = b.ToUpperInvariant();
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}
