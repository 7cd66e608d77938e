using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Serval.Netns;
using Serval.Resolution.Dns;

namespace Serval.Tests;

/// <summary>
/// A real dnsmasq for a test: started in the foreground on 127.0.0.1 and a free port (or in a network namespace on
/// an address of it and port 53), authoritative-like for one zone
/// (<c>local=/zone/</c>: unknown names are NXDOMAIN, nothing is forwarded), with the records of a generated
/// configuration file and an optional hosts file (re-read on <see cref="ReloadAsync"/>, SIGHUP). Stopped by its PID.
/// Tests skip with <see cref="SkipReason"/> when the binary is missing (CI installs it: .ci/run).
/// </summary>
internal sealed class Dnsmasq : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _directory;

    private Dnsmasq(Process process, string directory, IPEndPoint endPoint, string hostsFile)
    {
        _process = process;
        _directory = directory;
        EndPoint = endPoint;
        HostsFile = hostsFile;
    }

    public static string? Binary => new[] { "/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/sbin/dnsmasq" }.FirstOrDefault(File.Exists);

    public static string SkipReason => "dnsmasq is not installed (Debian: apt-get install dnsmasq-base; .ci/run installs it)";

    public IPEndPoint EndPoint { get; }

    /// <summary>An extra hosts file (A/AAAA records) dnsmasq reads at start and on SIGHUP.</summary>
    public string HostsFile { get; }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    private readonly System.Text.StringBuilder _output = new();

    /// <summary>Starts dnsmasq with <paramref name="records"/> (dnsmasq configuration lines such as <c>srv-host=…</c>, <c>host-record=…</c>).</summary>
    public static async Task<Dnsmasq> StartAsync(string zone, IEnumerable<string> records, string hosts = "", int localTtl = 0)
    {
        var binary = Binary ?? throw new InvalidOperationException(SkipReason);
        var (directory, hostsFile) = await PrepareAsync(hosts);
        for (var attempt = 0; ; attempt++)
        {
            var port = FreePort();
            var config = await WriteConfigAsync(directory, hostsFile, IPAddress.Loopback, port, zone, records, localTtl);
            var start = new ProcessStartInfo(binary)
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
            };
            foreach (var a in Arguments(config))
            {
                start.ArgumentList.Add(a);
            }

            var process = Process.Start(start) ?? throw new InvalidOperationException("dnsmasq did not start");
            var d = Attach(process, directory, new IPEndPoint(IPAddress.Loopback, port), hostsFile);
            if (await d.ReadyAsync(zone))
            {
                return d;
            }

            var output = d.Output;
            await d.StopAsync(deleteFiles: attempt >= 4);
            if (attempt >= 4)
            {
                throw new InvalidOperationException($"dnsmasq did not answer on 127.0.0.1:{port}: {output}");
            }
        }
    }

    /// <summary>
    /// Starts dnsmasq inside <paramref name="ns"/> on <paramref name="address"/>, port 53, with <paramref name="records"/>,
    /// and waits (at most 5 s) until it answers a query sent from inside the namespace.
    /// </summary>
    public static async Task<Dnsmasq> StartInNamespaceAsync(NetNamespace ns, IPAddress address, string zone, IEnumerable<string> records, int localTtl = 0)
    {
        var binary = Binary ?? throw new InvalidOperationException(SkipReason);
        var (directory, hostsFile) = await PrepareAsync(string.Empty);
        var config = await WriteConfigAsync(directory, hostsFile, address, 53, zone, records, localTtl);
        var d = Attach(ns.Start(binary, Arguments(config)), directory, new IPEndPoint(address, 53), hostsFile);
        var deadline = Stopwatch.StartNew();
        while (!ns.Invoke(() => d.AnswersFromInside(zone)))
        {
            if (d._process.HasExited || deadline.Elapsed > TimeSpan.FromSeconds(5))
            {
                var output = d.Output;
                await d.StopAsync(deleteFiles: true);
                throw new InvalidOperationException($"dnsmasq did not answer on {address}:53 in {ns.Name}: {output}");
            }

            await Task.Delay(50);
        }

        return d;
    }

    private static async Task<(string Directory, string HostsFile)> PrepareAsync(string hosts)
    {
        var directory = Directory.CreateTempSubdirectory("serval-dnsmasq-").FullName;
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }

        var hostsFile = Path.Combine(directory, "hosts");
        await File.WriteAllTextAsync(hostsFile, hosts);
        return (directory, hostsFile);
    }

    private static async Task<string> WriteConfigAsync(string directory, string hostsFile, IPAddress listen, int port, string zone, IEnumerable<string> records, int localTtl)
    {
        var config = Path.Combine(directory, "dnsmasq.conf");
        var lines = new List<string>
        {
            $"port={port}",
            $"listen-address={listen}",
            "bind-interfaces",
            "no-resolv",
            "no-hosts",
            "no-poll",
            $"local=/{zone.Trim('.')}/",
            $"addn-hosts={hostsFile}",
            $"local-ttl={localTtl}",
            "log-queries",
        };
        if (Environment.UserName == "root")
        {
            lines.Add("user=root"); // keep the permissions the test's files were written with
        }

        lines.AddRange(records);
        await File.WriteAllLinesAsync(config, lines);
        return config;
    }

    private static string[] Arguments(string config) => ["--keep-in-foreground", $"--conf-file={config}", "--log-facility=-", "--pid-file"];

    private static Dnsmasq Attach(Process process, string directory, IPEndPoint endPoint, string hostsFile)
    {
        var d = new Dnsmasq(process, directory, endPoint, hostsFile);
        process.ErrorDataReceived += (_, e) => d.Append(e.Data);
        process.OutputDataReceived += (_, e) => d.Append(e.Data);
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        return d;
    }

    /// <summary>
    /// One A query for a probe name in the zone, over a UDP socket created on the calling thread (inside the server's
    /// namespace): true when an answer with the query's ID comes back within 200 ms.
    /// </summary>
    private bool AnswersFromInside(string zone)
    {
        var query = new List<byte> { 0x5e, 0x11, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0 }; // ID, RD, one question
        foreach (var label in $"probe.{zone.Trim('.')}".Split('.'))
        {
            query.Add((byte)label.Length);
            query.AddRange(System.Text.Encoding.ASCII.GetBytes(label));
        }

        query.AddRange([0, 0, 1, 0, 1]); // root, type A, class IN
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { ReceiveTimeout = 200 };
        try
        {
            socket.SendTo(query.ToArray(), EndPoint);
            var answer = new byte[512];
            var n = socket.Receive(answer);
            return n >= 12 && answer[0] == 0x5e && answer[1] == 0x11 && (answer[2] & 0x80) != 0;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>Sends SIGHUP (dnsmasq re-reads its hosts files) and waits until it answers again.</summary>
    public async Task ReloadAsync()
    {
        using var kill = Process.Start("kill", ["-HUP", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync();
        await Task.Delay(50);
    }

    public ValueTask DisposeAsync() => new(StopAsync(deleteFiles: true));

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
    }

    private async Task<bool> ReadyAsync(string zone)
    {
        var client = new DnsClient([EndPoint], TimeSpan.FromMilliseconds(200), 1);
        for (var i = 0; i < 25; i++)
        {
            if (_process.HasExited)
            {
                return false;
            }

            try
            {
                await client.QueryAsync($"probe.{zone.Trim('.')}", DnsType.A, CancellationToken.None);
                return true;
            }
            catch (DnsException)
            {
                await Task.Delay(100);
            }
        }

        return false;
    }

    private async Task StopAsync(bool deleteFiles)
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
            }

            await _process.WaitForExitAsync();
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
        if (deleteFiles)
        {
            try
            {
                Directory.Delete(_directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static int FreePort()
    {
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        udp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)udp.LocalEndPoint!).Port;
    }
}
