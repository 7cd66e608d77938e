namespace Serval.Experiments;

/// <summary>One experiment of docs/evaluation.md: builds its topology, writes its CSV and PNG, prints its summary line last.</summary>
internal abstract class Experiment
{
    /// <summary>The command-line name (fig7, fig8, ...).</summary>
    public abstract string Name { get; }

    /// <summary>
    /// Child-process roles this experiment starts by running this program again (inside a namespace): the first argument
    /// names the role, the rest are its arguments. Role names must be unique over all experiments.
    /// </summary>
    public virtual IReadOnlyDictionary<string, Func<string[], Task<int>>> Roles { get; } = new Dictionary<string, Func<string[], Task<int>>>();

    /// <summary>Runs the experiment; returns the process exit code.</summary>
    public abstract Task<int> RunAsync(ExperimentOptions options);
}

/// <summary>Options common to every experiment: output folder, a shorter run for smoke tests, extra key=value settings.</summary>
internal sealed class ExperimentOptions
{
    /// <summary>Where the CSV and PNG files go (default docs/figures of the repository when found, else the current folder).</summary>
    public required string OutputDirectory { get; init; }

    /// <summary>Time scale: 1 for the paper's timeline; smaller for smoke tests (0.1 = a tenth of every phase).</summary>
    public double TimeScale { get; init; } = 1.0;

    /// <summary>Further settings as --key value pairs.</summary>
    public IReadOnlyDictionary<string, string> Settings { get; init; } = new Dictionary<string, string>();

    /// <summary>A setting's value or a default.</summary>
    public string Get(string key, string fallback) => Settings.TryGetValue(key, out var v) ? v : fallback;

    /// <summary>A numeric setting's value or a default.</summary>
    public double GetDouble(string key, double fallback) =>
        Settings.TryGetValue(key, out var v) ? double.Parse(v, System.Globalization.CultureInfo.InvariantCulture) : fallback;

    /// <summary>Parses <c>--out DIR</c>, <c>--scale X</c> and any <c>--key value</c>.</summary>
    public static ExperimentOptions Parse(string[] args)
    {
        var settings = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
            {
                throw new ArgumentException($"expected --key value, got '{args[i]}'");
            }

            settings[args[i][2..]] = args[++i];
        }

        var output = settings.TryGetValue("out", out var o) ? o : DefaultOutputDirectory();
        Directory.CreateDirectory(output);
        return new ExperimentOptions
        {
            OutputDirectory = output,
            TimeScale = settings.TryGetValue("scale", out var s) ? double.Parse(s, System.Globalization.CultureInfo.InvariantCulture) : 1.0,
            Settings = settings,
        };
    }

    private static string DefaultOutputDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Serval.sln")))
            {
                return Path.Combine(dir.FullName, "docs", "figures");
            }
        }

        return Directory.GetCurrentDirectory();
    }
}
