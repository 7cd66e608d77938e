using System.Diagnostics;
using System.Threading.Channels;
using Serval.Netns;

namespace Serval.Experiments;

/// <summary>
/// A child process running this program again in a role (<see cref="Experiment.Roles"/>) inside a namespace. Its
/// standard output lines are queued for the experiment (<see cref="ReadLineAsync"/>, <see cref="WaitForAsync"/>), its
/// standard error goes to ours prefixed with its label; commands go to its standard input. It is killed by its process
/// id on disposal (and by the namespace's disposal).
/// </summary>
internal sealed class RoleProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly string _label;

    private RoleProcess(Process process, string label)
    {
        _process = process;
        _label = label;
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                _lines.Writer.TryComplete();
            }
            else
            {
                _lines.Writer.TryWrite(e.Data);
            }
        };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                Console.Error.WriteLine($"[{_label}] {e.Data}");
            }
        };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>The child's process id.</summary>
    public int ProcessId => _process.Id;

    /// <summary>Whether the child has ended.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>Starts this program in <paramref name="ns"/> as <paramref name="role"/> with <paramref name="args"/>.</summary>
    public static RoleProcess Start(NetNamespace ns, string label, string role, params string[] args)
    {
        var (file, prefix) = Self();
        var environment = new Dictionary<string, string>
        {
            // Small machine: no spinning thread-pool workers, fully optimized code from the start.
            ["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"] = "0",
            ["DOTNET_TieredCompilation"] = "0",
        };
        return new RoleProcess(ns.Start(file, [.. prefix, role, .. args], environment), label);
    }

    /// <summary>Sends one command line to the child.</summary>
    public void Send(string line)
    {
        _process.StandardInput.WriteLine(line);
        _process.StandardInput.Flush();
    }

    /// <summary>The next output line; null when the child's output ended or <paramref name="limit"/> passed.</summary>
    public async Task<string?> ReadLineAsync(TimeSpan limit)
    {
        using var cts = new CancellationTokenSource(limit);
        try
        {
            return await _lines.Reader.ReadAsync(cts.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or ChannelClosedException)
        {
            return null;
        }
    }

    /// <summary>
    /// Reads lines until one starts with <paramref name="prefix"/> and returns it; lines before it go to
    /// <paramref name="other"/>. Throws with the child's label when the output ends or the time runs out.
    /// </summary>
    public async Task<string> WaitForAsync(string prefix, TimeSpan limit, Action<string>? other = null)
    {
        var end = Stopwatch.GetTimestamp() + (long)(limit.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            var left = TimeSpan.FromSeconds((double)(end - Stopwatch.GetTimestamp()) / Stopwatch.Frequency);
            var line = left > TimeSpan.Zero ? await ReadLineAsync(left) : null;
            if (line is null)
            {
                throw new InvalidOperationException($"{_label}: no line '{prefix}…' within {limit.TotalSeconds:0.#} s (exited: {_process.HasExited})");
            }

            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                return line;
            }

            other?.Invoke(line);
        }
    }

    /// <summary>Waits for the child to exit by itself, at most <paramref name="limit"/>; true when it did.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan limit)
    {
        using var cts = new CancellationTokenSource(limit);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Kills the child by its process id if it still runs.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await WaitForExitAsync(TimeSpan.FromSeconds(10));
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    /// <summary>How to start this program again: the apphost, or <c>dotnet</c> with this assembly.</summary>
    private static (string File, string[] Prefix) Self()
    {
        var path = Environment.ProcessPath ?? throw new InvalidOperationException("no process path");
        return Path.GetFileNameWithoutExtension(path) == "dotnet"
            ? (path, [typeof(RoleProcess).Assembly.Location])
            : (path, []);
    }
}
