using System.Diagnostics;
using System.Globalization;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// Runs the paper experiments' program (<c>serval-experiments</c>, bench/experiments, built with this project) for the
/// smoke tests, into a temporary output folder removed on dispose, and checks the figures it writes.
/// </summary>
internal sealed class ExperimentRun(ITestOutputHelper output) : IDisposable
{
    /// <summary>The temporary folder the experiment writes its CSV and PNG files to.</summary>
    public string OutputDirectory { get; } = Directory.CreateTempSubdirectory("serval-paper-").FullName;

    public void Dispose() => Directory.Delete(OutputDirectory, recursive: true);

    /// <summary>Runs serval-experiments NAME (at most <paramref name="limit"/>); asserts exit code 0; returns its last output line.</summary>
    public async Task<string> RunAsync(string name, TimeSpan limit, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in (string[])[ExperimentsDll(), name, "--out", OutputDirectory, .. args])
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException("could not start serval-experiments");
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(limit);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        output.WriteLine(await stderr);
        var lines = (await stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        output.WriteLine(string.Join('\n', lines));
        Assert.True(process.ExitCode == 0, $"serval-experiments {name} exited with {process.ExitCode}; last line: {lines.LastOrDefault()}");
        Assert.NotEmpty(lines);
        return lines[^1];
    }

    /// <summary>Asserts NAME.csv and NAME.png exist and are not empty, with at least <paramref name="series"/> series and one event; returns the CSV's rows.</summary>
    public List<(string Series, double Time, double Value)> AssertFigure(string name, int series)
    {
        var png = new FileInfo(Path.Combine(OutputDirectory, name + ".png"));
        Assert.True(png.Exists && png.Length > 1000, $"{png.FullName}: {(png.Exists ? png.Length + " bytes" : "missing")}");
        var rows = File.ReadAllLines(Path.Combine(OutputDirectory, name + ".csv")).Skip(1).Select(l => l.Split(',')).Select(f =>
            (f[0], double.Parse(f[1], CultureInfo.InvariantCulture), f[0] == "event" ? 0 : double.Parse(f[2], CultureInfo.InvariantCulture))).ToList();
        Assert.True(rows.Select(r => r.Item1).Where(s => s != "event").Distinct().Count() >= series, $"{name}.csv series: {string.Join(", ", rows.Select(r => r.Item1).Distinct())}");
        Assert.Contains(rows, r => r.Item1 == "event");
        return rows;
    }

    /// <summary>serval-experiments.dll of the same configuration, next to this repository's bench/experiments project.</summary>
    private static string ExperimentsDll()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Serval.sln")))
        {
            dir = dir.Parent;
        }

        Assert.NotNull(dir);
        var configuration = new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)).Parent!.Name; // bin/<Configuration>/<tfm>
        var dll = Path.Combine(dir.FullName, "bench", "experiments", "Serval.Experiments", "bin", configuration, "net10.0", "serval-experiments.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing (built with this test project)");
        return dll;
    }
}
