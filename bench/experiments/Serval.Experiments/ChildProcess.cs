using System.Collections.Concurrent;
using System.Diagnostics;
using Serval.Netns;

namespace Serval.Experiments;

/// <summary>
/// A child process of an experiment started inside a namespace (this program in one of its roles, or another program):
/// its output lines are collected, it is told to stop with a line <c>stop</c> on its standard input, and killed by its
/// process id when it does not end (or when its namespace is disposed).
/// </summary>
internal sealed class ChildProcess
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();
    private readonly SemaphoreSlim _lines = new(0);

    private ChildProcess(string name, Process process)
    {
        Name = name;
        _process = process;
        process.OutputDataReceived += (_, e) => Collect(e.Data);
        process.ErrorDataReceived += (_, e) => Collect(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    /// <summary>Called (on a reader thread) with every line the process writes, as it arrives.</summary>
    public Action<string>? OnLine { get; set; }

    /// <summary>A readable name for messages.</summary>
    public string Name { get; }

    /// <summary>The process id.</summary>
    public int ProcessId => _process.Id;

    /// <summary>Whether the process has ended.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>The exit code (after it ended).</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>Every line it wrote so far (stdout and stderr).</summary>
    public IReadOnlyCollection<string> Output => _output;

    /// <summary>Starts this program (<c>dotnet serval-experiments.dll ROLE args…</c>) in <paramref name="ns"/>.</summary>
    public static ChildProcess StartRole(NetNamespace ns, string name, string role, IEnumerable<string> args) =>
        new(name, ns.Start(DotnetHost, [typeof(ChildProcess).Assembly.Location, role, .. args]));

    /// <summary>Starts another program in <paramref name="ns"/>.</summary>
    public static ChildProcess Start(NetNamespace ns, string name, string fileName, IEnumerable<string> args) =>
        new(name, ns.Start(fileName, args));

    /// <summary>The dotnet host that runs this program (also used for servald.dll).</summary>
    public static string DotnetHost
    {
        get
        {
            var self = Environment.ProcessPath;
            if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet")
            {
                return self;
            }

            return Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        }
    }

    /// <summary>Waits (bounded) until a line starting with <paramref name="prefix"/> appears; returns it.</summary>
    public async Task<string> WaitForLineAsync(string prefix, TimeSpan timeout, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var line = _output.FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
            if (line is not null)
            {
                return line;
            }

            if (_process.HasExited && !_output.Any(l => l.StartsWith(prefix, StringComparison.Ordinal)))
            {
                // Give the output readers a moment to deliver the last lines.
                await Task.Delay(100, ct);
                line = _output.FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
                return line ?? throw new InvalidOperationException($"{Name} (pid {ProcessId}) exited with {_process.ExitCode} before writing '{prefix}':{Environment.NewLine}{Describe()}");
            }

            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"{Name} (pid {ProcessId}) wrote no '{prefix}' line in {timeout.TotalSeconds:F0} s:{Environment.NewLine}{Describe()}");
            }

            await _lines.WaitAsync(TimeSpan.FromMilliseconds(100), ct);
        }
    }

    /// <summary>Asks the process to stop (a line <c>stop</c> on its standard input).</summary>
    public void RequestStop() => Send("stop");

    /// <summary>Writes one command line to the process's standard input.</summary>
    public void Send(string command)
    {
        try
        {
            _process.StandardInput.WriteLine(command);
            _process.StandardInput.Flush();
        }
        catch (IOException)
        {
            // Already gone.
        }
    }

    /// <summary>Waits (bounded) until the process has ended; kills it by id when it has not.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            Kill();
            return false;
        }
    }

    /// <summary>Kills the process (and its children) by id.</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
        }
    }

    /// <summary>The last lines of output, for failure messages.</summary>
    public string Describe(int lines = 15) =>
        $"--- {Name} (pid {ProcessId}):{Environment.NewLine}{string.Join(Environment.NewLine, _output.TakeLast(lines))}";

    private void Collect(string? line)
    {
        if (line is not null)
        {
            OnLine?.Invoke(line);
            if (!line.StartsWith("report ", StringComparison.Ordinal))
            {
                _output.Enqueue(line); // periodic reports go to OnLine only
            }

            _lines.Release();
        }
    }
}

/// <summary>Paths of the programs the experiments start.</summary>
internal static class ExperimentPaths
{
    /// <summary>The repository's root (the folder holding Serval.sln), or null.</summary>
    public static string? RepositoryRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Serval.sln")))
                {
                    return dir.FullName;
                }
            }

            return null;
        }
    }

    /// <summary>servald.dll: <c>--servald PATH</c>, else the repository's build of this program's configuration.</summary>
    public static string Servald(ExperimentOptions options)
    {
        var configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent?.Name ?? "Release"; // bin/<Configuration>/<tfm>
        var path = options.Get("servald", RepositoryRoot is { } root ? Path.Combine(root, "src", "servald", "bin", configuration, "net10.0", "servald.dll") : "servald.dll");
        return File.Exists(path)
            ? path
            : throw new FileNotFoundException($"servald.dll not found at {path}: build it (dotnet build src/servald/servald.csproj -c {configuration}) or pass --servald PATH");
    }

    /// <summary>
    /// Reads standard input until one of <paramref name="commands"/> arrives (a role's commands from its experiment); the
    /// end of input (the experiment went away) counts as <c>stop</c>.
    /// </summary>
    public static async Task<string> WaitForCommandAsync(params string[] commands)
    {
        while (await Console.In.ReadLineAsync() is { } line)
        {
            if (commands.Contains(line.Trim()))
            {
                return line.Trim();
            }
        }

        return "stop";
    }

    /// <summary>Parses a role's <c>--key value</c> arguments.</summary>
    public static Dictionary<string, string> ParseArgs(string[] args)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            result[args[i].TrimStart('-')] = args[i + 1];
        }

        return result;
    }
}
