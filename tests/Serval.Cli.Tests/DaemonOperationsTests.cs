using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Configuration;

namespace Serval.Cli.Tests;

/// <summary>
/// servald for operators: the sample appsettings.json shipped next to the binary and read from there, the systemd
/// integration (Type=notify), and the start-up line. Processes run with bounded waits and are ended by their id.
/// </summary>
[Trait("Tier", "slow")]
public sealed class DaemonOperationsTests : IDisposable
{
    private static readonly TimeSpan s_within = TimeSpan.FromSeconds(30);
    private static int s_next = (Environment.ProcessId * 7) % 200;
    private readonly string _directory = Directory.CreateTempSubdirectory("servald-ops-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void The_shipped_sample_configuration_is_next_to_the_binary_and_sets_nothing()
    {
        var sample = Path.Combine(AppContext.BaseDirectory, "appsettings.json");
        Assert.True(File.Exists(sample), $"no sample configuration next to servald.dll ({sample})");
        var text = File.ReadAllText(sample);
        Assert.Contains("\"Serval\"", text, StringComparison.Ordinal); // the keys are there, commented out
        var configuration = new ConfigurationBuilder().AddJsonFile(sample, optional: false).Build();
        Assert.DoesNotContain(configuration.AsEnumerable(), kv => kv.Value is not null);
        Assert.True(File.Exists(Path.Combine(AppContext.BaseDirectory, "servald.service")), "no systemd unit next to servald.dll");
    }

    [Fact]
    public async Task The_appsettings_next_to_the_binary_is_read_and_named_by_its_path_when_wrong()
    {
        var binary = CopyServald();
        await File.WriteAllTextAsync(
            Path.Combine(binary, "appsettings.json"),
            """{ "Serval": { "Mdoe": "ServiceRouter" } }""",
            TestContext.Current.CancellationToken);
        var work = Directory.CreateDirectory(Path.Combine(_directory, "work")).FullName;
        var run = await RunToExitAsync(Path.Combine(binary, "servald.dll"), work);
        Assert.True(run.ExitCode == 1, run.ToString());
        var line = Assert.Single(run.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("unknown key Serval:Mdoe", line, StringComparison.Ordinal);
        Assert.Contains(Path.Combine(binary, "appsettings.json"), line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_working_directorys_appsettings_wins_over_the_one_next_to_the_binary()
    {
        var binary = CopyServald();
        // Next to the binary: a port nobody can bind twice in this test; in the working directory: port 0 (free).
        var address = NextAddress();
        using var blocker = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        blocker.Bind(new IPEndPoint(address, 0));
        var taken = ((IPEndPoint)blocker.LocalEndPoint!).Port;
        await File.WriteAllTextAsync(
            Path.Combine(binary, "appsettings.json"),
            $$"""{ "Serval": { "Udp": [ { "Address": "{{address}}", "Port": {{taken}} } ] } }""",
            TestContext.Current.CancellationToken);
        var work = Directory.CreateDirectory(Path.Combine(_directory, "work")).FullName;

        // Only the binary's file: the taken port is refused.
        var refused = await RunToExitAsync(Path.Combine(binary, "servald.dll"), work);
        Assert.True(refused.ExitCode == 1, refused.ToString());
        Assert.Contains($"{address}:{taken}", refused.Error, StringComparison.Ordinal);

        // The working directory's file overrides the port: the daemon starts (and is stopped by its id).
        await File.WriteAllTextAsync(
            Path.Combine(work, "appsettings.json"),
            """{ "Serval": { "Udp": [ { "Port": 0 } ] } }""",
            TestContext.Current.CancellationToken);
        var socket = Path.Combine(_directory, "override.sock");
        using var process = Start(Path.Combine(binary, "servald.dll"), work, [$"--Serval:ControlSocket={socket}"], null);
        try
        {
            await WaitUntilAsync(() => File.Exists(socket) || process.HasExited, "the control socket");
            if (process.HasExited)
            {
                Assert.Fail($"servald exited {process.ExitCode}: {await process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken)}");
            }
        }
        finally
        {
            await StopAsync(process);
        }
    }

    [Fact]
    public async Task Under_systemd_it_says_ready_once_bound_and_stopping_on_SIGTERM()
    {
        Assert.SkipUnless(File.Exists("/bin/sh"), "needs /bin/sh");
        if (!OperatingSystem.IsLinux())
        {
            Assert.Skip("systemd notification is Linux only");
            return;
        }

        // The hosting library recognises systemd by the name of the parent process: a copy of /bin/sh named
        // "systemd" starts servald in the background and waits for it, with NOTIFY_SOCKET pointing at our socket.
        var fakeSystemd = Path.Combine(_directory, "systemd");
        File.Copy("/bin/sh", fakeSystemd);
        File.SetUnixFileMode(fakeSystemd, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        var notifyPath = Path.Combine(_directory, "notify.sock");
        using var notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        notify.Bind(new UnixDomainSocketEndPoint(notifyPath));
        var controlSocket = Path.Combine(_directory, "servald.sock");

        var info = new ProcessStartInfo(fakeSystemd)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _directory,
        };
        ClearServalEnvironment(info);
        info.Environment["NOTIFY_SOCKET"] = notifyPath;
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("\"$@\" & echo \"pid $!\"; wait $!");
        info.ArgumentList.Add("systemd");
        info.ArgumentList.Add(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet");
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "servald.dll"));
        info.ArgumentList.Add($"--Serval:ControlSocket={controlSocket}");
        info.ArgumentList.Add($"--Serval:Udp:0:Address={NextAddress()}");
        info.ArgumentList.Add("--Serval:Udp:0:Port=0");
        info.ArgumentList.Add("--Serval:RegisterWithRouter=127.0.0.1:54399");
        using var shell = Process.Start(info) ?? throw new InvalidOperationException("could not start the shell");
        var output = new StringBuilder();
        var daemonPid = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        shell.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                daemonPid.TrySetException(new InvalidOperationException($"no pid line:\n{output}"));
                return;
            }

            lock (output)
            {
                output.AppendLine(e.Data);
            }

            if (e.Data.StartsWith("pid ", StringComparison.Ordinal) && int.TryParse(e.Data.AsSpan(4), out var pid))
            {
                daemonPid.TrySetResult(pid);
            }
        };
        shell.ErrorDataReceived += (_, e) =>
        {
            lock (output)
            {
                output.AppendLine(e.Data);
            }
        };
        shell.BeginOutputReadLine();
        shell.BeginErrorReadLine();
        Process? daemon = null;
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
            deadline.CancelAfter(s_within);
            daemon = Process.GetProcessById(await daemonPid.Task.WaitAsync(deadline.Token));

            var ready = await ReceiveAsync(notify, deadline.Token);
            Assert.Contains("READY=1", ready, StringComparison.Ordinal);
            Assert.True(File.Exists(controlSocket), "READY=1 before the control socket was bound");
            string log;
            lock (output)
            {
                log = output.ToString();
            }

            Assert.Contains("registers with 127.0.0.1:54399", log, StringComparison.Ordinal);
            Assert.Contains("metrics off", log, StringComparison.Ordinal);
            Assert.Contains("<6>", log, StringComparison.Ordinal); // the journal's priority prefix: systemd's log format

            Assert.Equal(0, await TerminateAsync(daemon.Id));
            var stopping = await ReceiveAsync(notify, deadline.Token);
            Assert.Contains("STOPPING=1", stopping, StringComparison.Ordinal);
            await shell.WaitForExitAsync(deadline.Token);
            Assert.True(shell.ExitCode == 0, $"servald exited {shell.ExitCode}:\n{output}");
        }
        finally
        {
            if (daemon is { HasExited: false })
            {
                daemon.Kill(); // by its id, never by name
            }

            if (!shell.HasExited)
            {
                shell.Kill(entireProcessTree: true);
            }

            daemon?.Dispose();
        }
    }

    private static async Task<string> ReceiveAsync(Socket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[4096];
        var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
        return Encoding.UTF8.GetString(buffer, 0, n);
    }

    /// <summary>Copies servald (every top-level file of the test output, where servald.dll and its dependencies are) without its appsettings.json.</summary>
    private string CopyServald()
    {
        var target = Directory.CreateDirectory(Path.Combine(_directory, "bin")).FullName;
        foreach (var file in Directory.EnumerateFiles(AppContext.BaseDirectory))
        {
            var name = Path.GetFileName(file);
            if (name != "appsettings.json" && (name.EndsWith(".dll", StringComparison.Ordinal) || name.EndsWith(".json", StringComparison.Ordinal)))
            {
                File.Copy(file, Path.Combine(target, name));
            }
        }

        return target;
    }

    private static void ClearServalEnvironment(ProcessStartInfo info)
    {
        foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("Serval__", StringComparison.OrdinalIgnoreCase) || k.EndsWith("_ENVIRONMENT", StringComparison.Ordinal) || k == "NOTIFY_SOCKET").ToList())
        {
            info.Environment.Remove(name);
        }
    }

    private Process Start(string servald, string workingDirectory, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string>? environment)
    {
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        ClearServalEnvironment(info);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        info.ArgumentList.Add(servald);
        if (!arguments.Any(a => a.StartsWith("--Serval:ControlSocket=", StringComparison.Ordinal)))
        {
            info.ArgumentList.Add($"--Serval:ControlSocket={Path.Combine(_directory, "servald.sock")}");
        }

        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        return Process.Start(info) ?? throw new InvalidOperationException("could not start servald");
    }

    private async Task<Run> RunToExitAsync(string servald, string workingDirectory)
    {
        using var process = Start(servald, workingDirectory, [], null);
        var output = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var error = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        deadline.CancelAfter(s_within);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true); // by its id
            await process.WaitForExitAsync(TestContext.Current.CancellationToken);
            Assert.Fail($"servald still ran after {s_within.TotalSeconds} s:\n{await output}\n{await error}");
        }

        return new Run(process.ExitCode, await output, await error);
    }

    private static async Task StopAsync(Process process)
    {
        if (!process.HasExited)
        {
            await TerminateAsync(process.Id);
            using var deadline = new CancellationTokenSource(s_within);
            try
            {
                await process.WaitForExitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }

    private static Task WaitUntilAsync(Func<bool> condition, string what) =>
        Eventually.TrueAsync(condition, what, s_within, cancellationToken: TestContext.Current.CancellationToken);

    private static IPAddress NextAddress()
    {
        var n = Interlocked.Increment(ref s_next);
        return new IPAddress([127, 201, (byte)(n / 250 % 250), (byte)((n % 250) + 2)]);
    }

    /// <summary>Sends SIGTERM to one process, by its id (kill(1)); returns kill's exit code.</summary>
    private static async Task<int> TerminateAsync(int pid)
    {
        using var kill = Process.Start("kill", ["-TERM", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync(TestContext.Current.CancellationToken);
        return kill.ExitCode;
    }

    private sealed record Run(int ExitCode, string Output, string Error)
    {
        public override string ToString() => $"exit {ExitCode}\nstdout:\n{Output}\nstderr:\n{Error}";
    }
}
