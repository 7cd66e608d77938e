using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Serval.Netns;

/// <summary>
/// One servald process started inside a <see cref="NetNamespace"/>, with a UDP link on each given address (port
/// 54325) and a control socket in the temporary directory (Unix socket paths are not namespaced, so the test process
/// reaches it from outside: control requests, and applications attaching with <c>ServalHost.AttachAsync</c>). Its
/// output is collected. It is killed by its process id (<see cref="KillAsync"/>, or by the namespace's disposal);
/// <see cref="DeleteSocket"/> removes the socket file afterwards.
/// </summary>
public sealed class NetnsServald
{
    /// <summary>The UDP port of every link (Serval's default).</summary>
    public const int UdpPort = 54325;

    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private NetnsServald(string name, Process process, string socketPath)
    {
        Name = name;
        _process = process;
        SocketPath = socketPath;
    }

    /// <summary>The daemon's name (<c>Serval:Name</c>).</summary>
    public string Name { get; }

    /// <summary>The control (and application) socket.</summary>
    public string SocketPath { get; }

    /// <summary>The process id (of servald itself: <c>ip netns exec</c> replaced itself by it).</summary>
    public int ProcessId => _process.Id;

    /// <summary>Whether the process has ended.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>What servald wrote so far (stdout and stderr lines).</summary>
    public IReadOnlyCollection<string> Output => _output;

    /// <summary>
    /// Starts servald (<paramref name="servaldDll"/>, run by the <c>dotnet</c> host) in <paramref name="ns"/> and waits
    /// (at most 60 s) until its control socket answers a <c>stats</c> request.
    /// </summary>
    /// <param name="ns">The namespace.</param>
    /// <param name="servaldDll">The path of servald.dll.</param>
    /// <param name="name">The daemon's name; also part of the socket's file name.</param>
    /// <param name="addresses">One UDP link per address (<c>Serval:Udp:i</c>), on <see cref="UdpPort"/>.</param>
    /// <param name="settings">Further command-line settings (<c>--Serval:…=…</c>).</param>
    /// <param name="ct">Cancels the wait.</param>
    /// <param name="timeWait">
    /// <c>Serval:TimeWait</c> (null: servald's default); tests that close and open many connections shorten it.
    /// </param>
    public static async Task<NetnsServald> StartAsync(
        NetNamespace ns,
        string servaldDll,
        string name,
        IReadOnlyList<string> addresses,
        IEnumerable<string> settings,
        CancellationToken ct,
        TimeSpan? timeWait = null)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentNullException.ThrowIfNull(addresses);
        ArgumentNullException.ThrowIfNull(settings);
        var socket = Path.Combine(Path.GetTempPath(), $"servald-netns-{name}-{ns.Name}.sock");
        var args = new List<string>
        {
            servaldDll,
            $"--Serval:Name={name}",
            $"--Serval:ControlSocket={socket}",
            "--Logging:LogLevel:Default=Warning",
            "--Logging:Console:FormatterName=simple",
            "--Logging:Console:FormatterOptions:SingleLine=true",
        };
        if (timeWait is { } tw)
        {
            args.Add($"--Serval:TimeWait={tw.ToString("c", CultureInfo.InvariantCulture)}");
        }

        for (var i = 0; i < addresses.Count; i++)
        {
            args.Add($"--Serval:Udp:{i}:Address={addresses[i]}");
            args.Add($"--Serval:Udp:{i}:Port={UdpPort}");
        }

        args.AddRange(settings);
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? Environment.ProcessPath ?? "dotnet";
        var process = ns.Start(dotnet, args);
        var daemon = new NetnsServald(name, process, socket);
        process.OutputDataReceived += (_, e) => daemon.Collect(e.Data);
        process.ErrorDataReceived += (_, e) => daemon.Collect(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var started = Stopwatch.StartNew();
        while (true)
        {
            if (File.Exists(socket) && await daemon.AnswersAsync(ct).ConfigureAwait(false))
            {
                return daemon;
            }

            if (process.HasExited || started.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new InvalidOperationException($"servald {name} did not start in {ns.Name}: {string.Join(Environment.NewLine, daemon.Output)}");
            }

            await Task.Delay(20, ct).ConfigureAwait(false);
        }
    }

    /// <summary>One request on the control socket (docs/servald.md); the answer, within 10 s.</summary>
    public async Task<JsonObject> RequestAsync(JsonObject request, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath), ct).ConfigureAwait(false);
        var stream = new NetworkStream(socket);
        await using (stream.ConfigureAwait(false))
        {
            await stream.WriteAsync(Encoding.UTF8.GetBytes(request.ToJsonString() + "\n"), ct).ConfigureAwait(false);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            var line = await reader.ReadLineAsync(timeout.Token).ConfigureAwait(false) ?? throw new IOException($"servald {Name} closed the control connection");
            return JsonNode.Parse(line)!.AsObject();
        }
    }

    /// <summary>The last <paramref name="lines"/> lines of output, headed by the name and process id (for failure messages).</summary>
    public string Describe(int lines = 10) =>
        $"--- {Name} (pid {ProcessId}):{Environment.NewLine}{string.Join(Environment.NewLine, Output.TakeLast(lines))}";

    /// <summary>SIGKILL by process id; waits (at most 10 s) until it has ended.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
        }

        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _process.WaitForExitAsync(wait.Token).ConfigureAwait(false);
    }

    /// <summary>Removes the control socket's file (after the process has ended).</summary>
    public void DeleteSocket()
    {
        try
        {
            File.Delete(SocketPath);
        }
        catch (IOException)
        {
        }
    }

    private async Task<bool> AnswersAsync(CancellationToken ct)
    {
        try
        {
            return (await RequestAsync(new JsonObject { ["op"] = "stats" }, ct).ConfigureAwait(false))["ok"]?.GetValue<bool>() == true;
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            return false;
        }
    }

    private void Collect(string? line)
    {
        if (line is not null)
        {
            _output.Enqueue(line);
        }
    }
}
