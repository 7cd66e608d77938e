using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Json;
using Microsoft.Extensions.FileProviders;

namespace Serval.Daemon;

/// <summary>
/// Where servald reads its JSON configuration: the <c>appsettings.json</c> shipped next to the binary (a commented
/// sample that sets nothing until edited), then the Generic Host's own files in the working directory
/// (<c>appsettings.json</c>, <c>appsettings.ENV.json</c>), then the environment and the command line.
/// </summary>
internal static class ConfigurationFiles
{
    public const string FileName = "appsettings.json";

    /// <summary>The directory servald's binary is in.</summary>
    public static string BinaryDirectory => Path.TrimEndingDirectorySeparator(Path.GetFullPath(AppContext.BaseDirectory));

    /// <summary>
    /// Inserts the binary directory's <c>appsettings.json</c> before the working directory's, unless they are the same
    /// file. The file is optional; a file that is not JSON fails the build of the configuration like any other.
    /// </summary>
    public static void AddBinaryDirectoryFile(IConfigurationBuilder builder, string workingDirectory)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (string.Equals(BinaryDirectory, Path.TrimEndingDirectorySeparator(Path.GetFullPath(workingDirectory)), StringComparison.Ordinal))
        {
            return;
        }

        var source = new JsonConfigurationSource
        {
            FileProvider = new PhysicalFileProvider(BinaryDirectory),
            Path = FileName,
            Optional = true,
            ReloadOnChange = false,
        };
        var sources = builder.Sources;
        var first = -1;
        for (var i = 0; i < sources.Count; i++)
        {
            if (sources[i] is JsonConfigurationSource)
            {
                first = i;
                break;
            }
        }

        if (first < 0)
        {
            sources.Add(source);
        }
        else
        {
            sources.Insert(first, source);
        }
    }

    /// <summary>How a JSON file is named in error messages: its full path, or its name when it is in the working directory.</summary>
    public static string Describe(FileConfigurationSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var name = source.Path ?? "JSON file";
        if (source.FileProvider is PhysicalFileProvider physical
            && !string.Equals(
                Path.TrimEndingDirectorySeparator(physical.Root),
                Path.TrimEndingDirectorySeparator(Directory.GetCurrentDirectory()),
                StringComparison.Ordinal))
        {
            return Path.Combine(physical.Root, name);
        }

        return name;
    }
}
