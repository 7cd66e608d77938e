using System.Collections.Concurrent;
using System.Diagnostics;
using Serval.Netns;
using Serval.Wire;

namespace Serval.Tests;

/// <summary>
/// How a shared test suite gets the hosts its applications use: embedded (<see cref="ServalHost.StartAsync"/>, one
/// engine per host in this process) or attached (<see cref="ServalHost.AttachAsync"/> to a servald child process per
/// host). Suites written against this run identically in both modes.
/// </summary>
public abstract class HostMode : IAsyncDisposable
{
    /// <summary>Whether hosts are attached to servald processes.</summary>
    public abstract bool Attached { get; }

    /// <summary>A host on its own UDP link on a fresh loopback address.</summary>
    public abstract Task<ServalHost> HostAsync(string name);

    /// <summary>The UDP address of a host's (first) link.</summary>
    public abstract LinkAddress AddressOf(ServalHost host);

    public abstract ValueTask DisposeAsync();

    public override string ToString() => Attached ? "attached" : "embedded";
}

/// <summary>Hosts embedded in the test process (<see cref="TestNet.UdpHostAsync"/>).</summary>
public sealed class EmbeddedMode : HostMode
{
    private readonly ConcurrentBag<ServalHost> _hosts = [];

    public override bool Attached => false;

    public override async Task<ServalHost> HostAsync(string name)
    {
        var host = await TestNet.UdpHostAsync(name);
        _hosts.Add(host);
        return host;
    }

    public override LinkAddress AddressOf(ServalHost host) => host.Address();

    public override async ValueTask DisposeAsync()
    {
        foreach (var h in _hosts)
        {
            await h.DisposeAsync();
        }
    }
}

/// <summary>Each host is an application attached to its own servald child process (short TIME-WAIT, one UDP link).</summary>
public sealed class AttachedMode : HostMode
{
    private readonly ConcurrentBag<ServaldProcess> _daemons = [];
    private readonly ConcurrentBag<ServalHost> _hosts = [];
    private readonly ConcurrentDictionary<ServalHost, LinkAddress> _addresses = new();

    public override bool Attached => true;

    public override async Task<ServalHost> HostAsync(string name)
    {
        var daemon = await ServaldProcess.StartAsync(name);
        _daemons.Add(daemon);
        var host = await ServalHost.AttachAsync(daemon.SocketPath);
        _hosts.Add(host);
        _addresses[host] = daemon.Address;
        return host;
    }

    public override LinkAddress AddressOf(ServalHost host) => _addresses[host];

    public override async ValueTask DisposeAsync()
    {
        foreach (var h in _hosts)
        {
            await h.DisposeAsync();
        }

        foreach (var d in _daemons)
        {
            await d.DisposeAsync();
        }
    }
}

/// <summary>
/// servald started as a child process (by path, from the test output directory) on a temporary control socket and a
/// fresh loopback address; its output is collected; it is ended by its process id.
/// </summary>
public sealed class ServaldProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private ServaldProcess(Process process, string socketPath, LinkAddress address)
    {
        _process = process;
        SocketPath = socketPath;
        Address = address;
    }

    public string SocketPath { get; }

    public LinkAddress Address { get; }

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>What servald wrote so far (stdout and stderr lines).</summary>
    public IReadOnlyCollection<string> Output => _output;

    public static string Dll(string name) => Path.Combine(AppContext.BaseDirectory, name + ".dll");

    /// <summary>
    /// servald started inside <paramref name="ns"/> with a UDP link on each of <paramref name="addresses"/> and the
    /// tests' settings (TIME-WAIT 200 ms, warnings only); see <see cref="NetnsServald"/>.
    /// </summary>
    public static Task<NetnsServald> InNamespaceAsync(NetNamespace ns, string name, string[] addresses, string[] settings, CancellationToken ct) =>
        NetnsServald.StartAsync(ns, Dll("servald"), name, addresses, settings, ct, timeWait: TimeSpan.FromMilliseconds(200));

    public static Process Start(string dll, IEnumerable<string> arguments)
    {
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(dll);
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        return Process.Start(info) ?? throw new InvalidOperationException($"could not start {dll}");
    }

    /// <summary>Starts servald and waits (bounded) until its control socket exists.</summary>
    public static async Task<ServaldProcess> StartAsync(string name, bool debugEvents = false, params string[] extraArguments)
    {
        var socket = Path.Combine(Path.GetTempPath(), $"servald-test-{Guid.NewGuid():N}.sock");
        var address = TestNet.NextAddress();
        var process = Start(Dll("servald"),
        [
            $"--Serval:Name={name}",
            $"--Serval:ControlSocket={socket}",
            $"--Serval:Udp:0:Address={address}",
            $"--Serval:Udp:0:Port={ServalInfo.DefaultUdpPort}",
            "--Serval:TimeWait=00:00:00.200",
            "--Logging:LogLevel:Default=Warning",
            $"--Logging:LogLevel:Serval.Host={(debugEvents ? "Debug" : "Warning")}",
            "--Logging:Console:FormatterName=simple",
            "--Logging:Console:FormatterOptions:SingleLine=true",
            .. extraArguments,
        ]);
        var daemon = new ServaldProcess(process, socket, LinkAddress.FromIPAddress(address, ServalInfo.DefaultUdpPort));
        process.OutputDataReceived += (_, e) => daemon.Collect(e.Data);
        process.ErrorDataReceived += (_, e) => daemon.Collect(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!await Eventually.WithinAsync(() => ValueTask.FromResult(File.Exists(socket) || process.HasExited), TimeSpan.FromSeconds(30)) || !File.Exists(socket))
        {
            await daemon.DisposeAsync();
            throw new InvalidOperationException($"servald did not start: {string.Join(Environment.NewLine, daemon.Output)}");
        }

        return daemon;
    }

    private void Collect(string? line)
    {
        if (line is not null)
        {
            _output.Enqueue(line);
        }
    }

    /// <summary>Kills servald at once (SIGKILL, by process id).</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(); // by this process's id, never by name
        }

        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _process.WaitForExitAsync(wait.Token);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await KillAsync();
        }
        catch (Exception e) when (e is OperationCanceledException or InvalidOperationException)
        {
            // not exited in time: nothing more to do by id
        }

        _process.Dispose();
        try
        {
            File.Delete(SocketPath);
        }
        catch (IOException)
        {
        }
    }
}
