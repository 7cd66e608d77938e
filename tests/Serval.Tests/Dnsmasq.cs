using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Serval.Resolution.Dns;

namespace Serval.Tests;

/// <summary>
/// A real dnsmasq for a test: started in the foreground on 127.0.0.1 and a free port, authoritative-like for one zone
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
        var directory = Directory.CreateTempSubdirectory("serval-dnsmasq-").FullName;
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }

        var hostsFile = Path.Combine(directory, "hosts");
        await File.WriteAllTextAsync(hostsFile, hosts);
        for (var attempt = 0; ; attempt++)
        {
            var port = FreePort();
            var config = Path.Combine(directory, "dnsmasq.conf");
            var lines = new List<string>
            {
                $"port={port}",
                "listen-address=127.0.0.1",
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
            var start = new ProcessStartInfo(binary)
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
            };
            foreach (var a in new[] { "--keep-in-foreground", $"--conf-file={config}", "--log-facility=-", "--pid-file" })
            {
                start.ArgumentList.Add(a);
            }

            var process = Process.Start(start) ?? throw new InvalidOperationException("dnsmasq did not start");
            var d = new Dnsmasq(process, directory, new IPEndPoint(IPAddress.Loopback, port), hostsFile);
            process.ErrorDataReceived += (_, e) => d.Append(e.Data);
            process.OutputDataReceived += (_, e) => d.Append(e.Data);
            process.BeginErrorReadLine();
            process.BeginOutputReadLine();
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
