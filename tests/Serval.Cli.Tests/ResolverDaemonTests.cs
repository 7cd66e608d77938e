using System.Diagnostics;
using System.Net;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Serval.Daemon;
using Serval.Links;
using Serval.Wire;

namespace Serval.Cli.Tests;

/// <summary>
/// Resolution on demand in servald (docs/servald.md, <c>Serval:Resolver</c>): a connect held by a DELAY rule goes out
/// when <c>servalctl service add</c> adds its rule; the static file resolver configured for a servald process.
/// </summary>
[Trait("Tier", "slow")]
public sealed class ResolverDaemonTests
{
    private static int s_next = (Environment.ProcessId * 7) % 200;

    private static IPAddress NextAddress()
    {
        var n = Interlocked.Increment(ref s_next);
        return new IPAddress([127, 201, (byte)(n / 250 % 250), (byte)((n % 250) + 2)]);
    }

    private static ValueTask<ServalHost> ServerAsync(string name) => ServalHost.StartAsync(new ServalHostOptions
    {
        Name = name,
        Links = [new UdpLink(NextAddress(), ServalInfo.DefaultUdpPort)],
    });

    [Fact]
    public async Task Servalctl_service_add_releases_a_connect_held_by_a_delay_rule_at_once()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var server = await ServerAsync("held-server");
        var svc = ServiceId.FromName("cli.held");
        await using var listener = await Serval.Testing.ServalEcho.ListenAsync(server, svc, ct);
        var socket = Path.Combine(Path.GetTempPath(), $"servald-test-{Guid.NewGuid():N}.sock");
        await using var daemon = await ServalDaemon.StartAsync(
            new DaemonOptions { Name = "held", ControlSocket = socket, Udp = [new UdpEndpoint { Address = NextAddress().ToString(), Port = 0 }] },
            NullLoggerFactory.Instance,
            ct);
        var delay = CliResult.Run("service", "add", "default", "delay", "--socket", socket);
        Assert.True(delay.ExitCode == 0, delay.ToString());

        await using var app = await ServalHost.AttachAsync(socket, ct);
        var connect = ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = app, Service = svc }, ct).AsTask();
        await Eventually.WithinAsync(() => ValueTask.FromResult(daemon.Host.Counters.Delayed != 0), TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(10), ct);

        await Task.Delay(300, ct); // held for a while, as a rule added by hand would find it
        Assert.Equal(1, daemon.Host.Counters.Delayed);
        Assert.False(connect.IsCompleted);

        var started = Stopwatch.GetTimestamp();
        var add = CliResult.Run("service", "add", svc.ToString(), server.Links[0].LocalAddress.ToString(), "--socket", socket);
        Assert.True(add.ExitCode == 0, add.ToString());
        await using var connection = await connect.WaitAsync(TimeSpan.FromSeconds(2), ct); // long before the 5 s the packet would be held
        var elapsed = Stopwatch.GetElapsedTime(started);
        Assert.Equal(1, daemon.Host.Counters.DelayReleased);
        Assert.Equal(0, daemon.Host.Counters.DelayExpired);
        var stream = connection.GetStream();
        var data = Encoding.ASCII.GetBytes("released");
        await stream.WriteAsync(data, ct);
        var echo = new byte[data.Length];
        await stream.ReadExactlyAsync(echo, ct);
        Assert.Equal(data, echo);
        TestContext.Current.SendDiagnosticMessage($"servalctl service add -> connection established: {elapsed.TotalMilliseconds:F1} ms (servalctl in-process, control socket, engine, SYN/SYN-ACK/ACK on loopback)");
    }

    [Fact]
    public async Task The_static_file_resolver_configured_for_a_servald_process_answers_an_attached_application()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var server = await ServerAsync("static-server");
        var byName = ServiceId.FromName("cli.static.name");
        var inPrefix = ServiceId.FromName(new ServicePrefix(ServiceId.FromName("cli.static.prefix"), 32), "member");
        await using var l1 = await Serval.Testing.ServalEcho.ListenAsync(server, byName, ct);
        await using var l2 = await Serval.Testing.ServalEcho.ListenAsync(server, inPrefix, ct);
        var directory = Directory.CreateTempSubdirectory("servald-resolver-").FullName;
        try
        {
            var file = Path.Combine(directory, "services");
            await File.WriteAllTextAsync(
                file,
                $"""
                # service            targets
                cli.static.name      {server.Links[0].LocalAddress}
                {new ServicePrefix(ServiceId.FromName("cli.static.prefix"), 32)}   {server.Links[0].LocalAddress.ToIPAddress()}*3
                """,
                ct);
            var socket = Path.Combine(directory, "servald.sock");
            using var process = StartServald(directory, socket, $"--Serval:Resolver:StaticFile={file}");
            var output = new StringBuilder();
            process.OutputDataReceived += (_, e) => Append(output, e.Data);
            process.ErrorDataReceived += (_, e) => Append(output, e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            try
            {
                await Eventually.WithinAsync(() => ValueTask.FromResult(File.Exists(socket) || process.HasExited), TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(50), ct);

                Assert.True(File.Exists(socket), $"servald did not start:\n{output}");
                await using var app = await ServalHost.AttachAsync(socket, ct);
                foreach (var svc in new[] { byName, inPrefix })
                {
                    await using var c = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = app, Service = svc }, ct);
                    var stream = c.GetStream();
                    var data = svc.ToArray();
                    await stream.WriteAsync(data, ct);
                    var echo = new byte[data.Length];
                    await stream.ReadExactlyAsync(echo, ct);
                    Assert.Equal(data, echo);
                }

                var stats = CliResult.Run("stats", "--json", "--socket", socket);
                Assert.True(stats.ExitCode == 0, stats.ToString());
                Assert.Equal(2, (long)stats.Json["resolver"]!["resolved"]!);
                var rules = CliResult.Run("service", "list", "--json", "--socket", socket).Json["rules"]!.AsArray();
                Assert.Contains(rules, r => (int)r!["bits"]! == 0 && (string)r["target"]!["type"]! == "delay" && (int)r["priority"]! == 20);
                Assert.Contains(rules, r => (int)r!["bits"]! == 32 && (int)r["weight"]! == 3 && (int)r["priority"]! == 100);
            }
            finally
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true); // by this process's id, never by name
                }

                await process.WaitForExitAsync(ct);
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Theory]
    [InlineData(null, "serval.test", "Serval:Router:DnsUpdate:Server")]
    [InlineData("127.0.0.1:5353", null, "Serval:Router:DnsUpdate:Zone")]
    [InlineData("127.0.0.1", "bad zone", "invalid Serval:Router:DnsUpdate")]
    public async Task Bad_dns_update_settings_are_refused_at_start(string? server, string? zone, string message)
    {
        var options = new DaemonOptions
        {
            Mode = Stack.EngineMode.ServiceRouter,
            ControlSocket = Path.Combine(Path.GetTempPath(), $"servald-bad-{Guid.NewGuid():N}.sock"),
            Udp = [new UdpEndpoint { Address = "127.0.0.1", Port = 0 }],
            Router = new RouterSettings { DnsUpdate = new DnsUpdateSettings { Server = server, Zone = zone } },
        };
        var e = await Assert.ThrowsAsync<DaemonException>(() => ServalDaemon.StartAsync(options, NullLoggerFactory.Instance, TestContext.Current.CancellationToken));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(options.ControlSocket));
    }

    private static void Append(StringBuilder output, string? line)
    {
        if (line is not null)
        {
            lock (output)
            {
                output.AppendLine(line);
            }
        }
    }

    private static Process StartServald(string directory, string socket, params string[] arguments)
    {
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = directory,
        };
        foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("Serval__", StringComparison.OrdinalIgnoreCase) || k.EndsWith("_ENVIRONMENT", StringComparison.Ordinal)).ToList())
        {
            info.Environment.Remove(name);
        }

        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "servald.dll"));
        info.ArgumentList.Add($"--Serval:ControlSocket={socket}");
        info.ArgumentList.Add($"--Serval:Udp:0:Address={NextAddress()}");
        info.ArgumentList.Add("--Serval:Udp:0:Port=0");
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        return Process.Start(info) ?? throw new InvalidOperationException("could not start servald");
    }
}
