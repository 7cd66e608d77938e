using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Serval.Resolution.Dns;

namespace Serval.Tests;

/// <summary>
/// A real Knot DNS server (knotd) for a test: authoritative for one zone, on 127.0.0.1 and a free port, accepting
/// dynamic updates (RFC 2136) from 127.0.0.0/8, all state in a temporary directory. Stopped by its PID. Tests skip with
/// <see cref="SkipReason"/> when knotd is not installed (CI installs it: .ci/run).
/// </summary>
internal sealed class Knot : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _directory;
    private readonly System.Text.StringBuilder _output = new();

    private Knot(Process process, string directory, IPEndPoint endPoint)
    {
        _process = process;
        _directory = directory;
        EndPoint = endPoint;
    }

    public static string? Binary => new[] { "/usr/sbin/knotd", "/usr/bin/knotd", "/sbin/knotd" }.FirstOrDefault(File.Exists);

    public static string SkipReason => "knotd is not installed (Debian: apt-get install knot; .ci/run installs it)";

    public IPEndPoint EndPoint { get; }

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

    public static async Task<Knot> StartAsync(string zone)
    {
        var binary = Binary ?? throw new InvalidOperationException(SkipReason);
        zone = zone.Trim('.');
        for (var attempt = 0; ; attempt++)
        {
            var directory = Directory.CreateTempSubdirectory("serval-knot-").FullName;
            var port = FreePort();
            await File.WriteAllTextAsync(Path.Combine(directory, $"{zone}.zone"), $"""
                $ORIGIN {zone}.
                $TTL 60
                @ SOA ns admin 1 3600 600 86400 5
                @ NS ns
                ns A 127.0.0.1

                """);
            var config = Path.Combine(directory, "knot.conf");
            await File.WriteAllTextAsync(config, $"""
                server:
                    listen: 127.0.0.1@{port}
                    rundir: {directory}
                database:
                    storage: {directory}
                control:
                    listen: {directory}/knot.sock
                log:
                  - target: stderr
                    any: info
                acl:
                  - id: update
                    address: 127.0.0.0/8
                    action: update
                template:
                  - id: default
                    storage: {directory}
                    zonefile-sync: -1
                    zonefile-load: whole
                    journal-content: none
                zone:
                  - domain: {zone}
                    file: {zone}.zone
                    acl: update

                """);
            var start = new ProcessStartInfo(binary) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add(config);
            var process = Process.Start(start) ?? throw new InvalidOperationException("knotd did not start");
            var knot = new Knot(process, directory, new IPEndPoint(IPAddress.Loopback, port));
            process.ErrorDataReceived += (_, e) => knot.Append(e.Data);
            process.OutputDataReceived += (_, e) => knot.Append(e.Data);
            process.BeginErrorReadLine();
            process.BeginOutputReadLine();
            if (await knot.ReadyAsync(zone))
            {
                return knot;
            }

            var output = knot.Output;
            await knot.DisposeAsync();
            if (attempt >= 4)
            {
                throw new InvalidOperationException($"knotd did not answer on 127.0.0.1:{port}: {output}");
            }
        }
    }

    public async ValueTask DisposeAsync()
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
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

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
        for (var i = 0; i < 50; i++)
        {
            if (_process.HasExited)
            {
                return false;
            }

            try
            {
                var m = await client.QueryAsync(zone, DnsType.Soa, CancellationToken.None);
                if (m.ResponseCode == DnsResponseCode.NoError && m.Answers.Count > 0)
                {
                    return true;
                }
            }
            catch (DnsException)
            {
            }

            await Task.Delay(100);
        }

        return false;
    }

    private static int FreePort()
    {
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        udp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)udp.LocalEndPoint!).Port;
    }
}
