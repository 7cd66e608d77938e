using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Serval.Links;
using Serval.Testing;
using Serval.Translate;
using Serval.Wire;
using static Serval.Cli.Tests.ToolProcesses;

namespace Serval.Cli.Tests;

/// <summary>
/// serval-translate: unmodified TCP programs and Serval hosts on loopback, through the translators in-process and as
/// separate processes. Every transfer is checked with SHA-256.
/// </summary>
[Trait("Tier", "slow")]
public sealed class TranslatorTests
{
    private static int s_next = Environment.ProcessId % 200;

    /// <summary>A fresh loopback address in 127.251–254.x.y (the other tests use lower ranges).</summary>
    private static IPAddress NextAddress()
    {
        var n = Interlocked.Increment(ref s_next);
        return new IPAddress([127, (byte)(251 + (Environment.ProcessId % 4)), (byte)(n / 250 % 250), (byte)((n % 250) + 2)]);
    }

    private static CancellationToken Timeout(int seconds) => new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token;

    private static ValueTask<ServalHost> HostAsync(string name, IPAddress address) =>
        ServalHost.StartAsync(new ServalHostOptions { Name = name, Links = [new UdpLink(address)] });

    /// <summary>A TCP echo server on loopback: echoes each connection until the client half-closes, then half-closes.</summary>
    private static (Socket Listener, Task Loop) TcpEchoServer(CancellationToken ct)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(16);
        var loop = Task.Run(async () =>
        {
            while (!ct.IsCancellationRequested)
            {
                Socket s;
                try
                {
                    s = await listener.AcceptAsync(ct);
                }
                catch (Exception)
                {
                    return;
                }

                _ = Task.Run(async () =>
                {
                    using (s)
                    {
                        var buffer = new byte[65536];
                        int n;
                        while ((n = await s.ReceiveAsync(buffer, ct)) > 0)
                        {
                            await s.SendAsync(buffer.AsMemory(0, n), ct);
                        }

                        s.Shutdown(SocketShutdown.Send);
                    }
                }, CancellationToken.None);
            }
        }, CancellationToken.None);
        return (listener, loop);
    }

    /// <summary>An unmodified TCP client: sends <paramref name="data"/>, half-closes, and returns all it read until EOF.</summary>
    private static async Task<byte[]> TcpExchangeAsync(IPEndPoint server, byte[] data, CancellationToken ct)
    {
        using var s = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await s.ConnectAsync(server, ct);
        var received = new MemoryStream();
        var reader = Task.Run(async () =>
        {
            var buffer = new byte[65536];
            int n;
            while ((n = await s.ReceiveAsync(buffer, ct)) > 0)
            {
                received.Write(buffer, 0, n);
            }
        }, CancellationToken.None);
        await s.SendAsync(data, ct);
        s.Shutdown(SocketShutdown.Send);
        await reader;
        return received.ToArray();
    }

    private static Task EventuallyAsync(Func<bool> condition, CancellationToken ct, [System.Runtime.CompilerServices.CallerArgumentExpression(nameof(condition))] string what = "") =>
        Eventually.TrueAsync(condition, what, TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(10), ct);

    [Fact]
    public async Task A_tcp_client_reaches_a_serval_service_through_the_translator()
    {
        var ct = Timeout(60);
        var service = ServiceId.FromName("test.translate.echo");
        await using var server = await HostAsync("server", NextAddress());
        await using var echo = await ServalEcho.ListenAsync(server, service, ct);
        await using var gateway = await HostAsync("gateway", NextAddress());
        await using var translator = new TcpToServalTranslator(gateway, new IPEndPoint(IPAddress.Loopback, 0), service, server.Links[0].LocalAddress);
        translator.Start();

        var data = RandomData(4 * 1024 * 1024, 1);
        var echoed = await TcpExchangeAsync(translator.LocalEndPoint, data, ct);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(echoed));
        await EventuallyAsync(() => translator.Statistics.Completed == 1, ct);
        Assert.Equal(data.Length, translator.Statistics.BytesToServal);
        Assert.Equal(data.Length, translator.Statistics.BytesFromServal);
        Assert.Equal(0, translator.Statistics.Failed);
    }

    [Fact]
    public async Task A_serval_client_reaches_a_tcp_server_through_the_translator()
    {
        var ct = Timeout(60);
        var service = ServiceId.FromName("test.translate.legacy");
        var (tcpServer, loop) = TcpEchoServer(ct);
        using (tcpServer)
        {
            await using var gateway = await HostAsync("gateway", NextAddress());
            await using var translator = await ServalToTcpTranslator.StartAsync(gateway, ServicePrefix.Exact(service), tcpServer.LocalEndPoint!, cancellationToken: ct);
            await using var client = await HostAsync("client", NextAddress());

            // Two connections one after the other, each with its own data.
            for (var i = 0; i < 2; i++)
            {
                var data = RandomData(2 * 1024 * 1024, 10 + i);
                await using var connection = await ServalConnection.ConnectAsync(
                    new ServalConnectionOptions { Host = client, Service = service, AdvisoryAddress = gateway.Links[0].LocalAddress }, ct);
                var stream = connection.GetStream();
                var received = new MemoryStream();
                var reader = stream.CopyToAsync(received, ct);
                await stream.WriteAsync(data, ct);
                stream.CompleteWrites();
                await reader;
                Assert.Equal(SHA256.HashData(data), SHA256.HashData(received.ToArray()));
            }

            await EventuallyAsync(() => translator.Statistics.Completed == 2, ct);
            Assert.Equal(0, translator.Statistics.Refused);
        }
    }

    [Fact]
    public async Task A_translator_attached_to_servald_serves_a_tcp_server()
    {
        var ct = Timeout(60);
        var service = ServiceId.FromName("test.translate.attached");
        var (tcpServer, loop) = TcpEchoServer(ct);
        using (tcpServer)
        {
            var socketPath = Path.Combine(Path.GetTempPath(), $"servald-translate-{Guid.NewGuid():N}.sock");
            await using var daemon = await Serval.Daemon.ServalDaemon.StartAsync(
                new Serval.Daemon.DaemonOptions { Name = "translate-test", ControlSocket = socketPath, Udp = [new Serval.Daemon.UdpEndpoint { Address = NextAddress().ToString(), Port = 0 }] },
                Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance,
                ct);
            await using var attached = await ServalHost.AttachAsync(socketPath, ct);
            await using var translator = await ServalToTcpTranslator.StartAsync(attached, ServicePrefix.Exact(service), tcpServer.LocalEndPoint!, cancellationToken: ct);

            // The service is bound in servald's table; a Serval client reaches it at the daemon's address.
            Assert.Contains(daemon.Host.Admin.GetRules(), r => r.Prefix == ServicePrefix.Exact(service));
            await using var client = await HostAsync("client", NextAddress());
            var data = RandomData(2 * 1024 * 1024, 21);
            await using var connection = await ServalConnection.ConnectAsync(
                new ServalConnectionOptions { Host = client, Service = service, AdvisoryAddress = daemon.Host.Links[0].LocalAddress }, ct);
            var stream = connection.GetStream();
            var received = new MemoryStream();
            var reader = stream.CopyToAsync(received, ct);
            await stream.WriteAsync(data, ct);
            stream.CompleteWrites();
            await reader;
            Assert.Equal(SHA256.HashData(data), SHA256.HashData(received.ToArray()));
            await EventuallyAsync(() => translator.Statistics.Completed == 1, ct);

            // Stopping the translator releases the service in servald.
            await translator.DisposeAsync();
            await EventuallyAsync(() => !daemon.Host.Admin.GetRules().Any(r => r.Prefix == ServicePrefix.Exact(service)), ct);
        }
    }

    [Fact]
    public async Task A_tcp_client_that_resets_mid_transfer_resets_the_serval_side()
    {
        var ct = Timeout(60);
        var service = ServiceId.FromName("test.translate.reset");
        await using var server = await HostAsync("server", NextAddress());
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = server, ListenEndPoint = new ServiceEndPoint(service) }, ct);
        var accept = listener.AcceptConnectionAsync(ct);
        await using var gateway = await HostAsync("gateway", NextAddress());
        await using var translator = new TcpToServalTranslator(gateway, new IPEndPoint(IPAddress.Loopback, 0), service, server.Links[0].LocalAddress);
        translator.Start();

        var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await tcp.ConnectAsync(translator.LocalEndPoint, ct);
        await tcp.SendAsync(RandomData(256 * 1024, 5), ct);
        await using var accepted = await accept;
        var stream = accepted.GetStream();
        var buffer = new byte[65536];
        var first = await stream.ReadAsync(buffer, ct);
        Assert.True(first > 0, $"read returned {first}");
        Relay.Reset(tcp); // the TCP client dies with a reset

        // The Serval side sees a reset, not a clean end of the data (bounded by the test's timeout).
        var e = await Assert.ThrowsAsync<ServalException>(async () =>
        {
            while (await stream.ReadAsync(buffer, ct) > 0)
            {
            }
        });
        Assert.Equal(Serval.ServalError.ConnectionReset, e.Error);
        await EventuallyAsync(() => translator.Statistics.Failed == 1 && translator.Statistics.Active == 0, ct);
    }

    [Fact]
    public async Task An_unreachable_tcp_server_resets_the_serval_connection()
    {
        var ct = Timeout(30);
        var service = ServiceId.FromName("test.translate.nobody");
        using var closed = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        closed.Bind(new IPEndPoint(IPAddress.Loopback, 0)); // bound, never listening: connections are refused
        await using var gateway = await HostAsync("gateway", NextAddress());
        await using var translator = await ServalToTcpTranslator.StartAsync(gateway, ServicePrefix.Exact(service), closed.LocalEndPoint!, cancellationToken: ct);
        await using var client = await HostAsync("client", NextAddress());
        await using var connection = await ServalConnection.ConnectAsync(
            new ServalConnectionOptions { Host = client, Service = service, AdvisoryAddress = gateway.Links[0].LocalAddress }, ct);
        var e = await Assert.ThrowsAsync<ServalException>(async () => _ = await connection.GetStream().ReadAsync(new byte[16], ct));
        Assert.Equal(Serval.ServalError.ConnectionReset, e.Error);
        Assert.Equal(1, translator.Statistics.Refused);
    }

    [Fact]
    public async Task An_unreachable_service_resets_the_tcp_client()
    {
        var ct = Timeout(30);
        await using var gateway = await HostAsync("gateway", NextAddress());
        // No rule, no router, no advisory address: the connect fails at once with no route.
        await using var translator = new TcpToServalTranslator(gateway, new IPEndPoint(IPAddress.Loopback, 0), ServiceId.FromName("test.translate.none"));
        translator.Start();
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

        // The reset may arrive before the connect's completion is observed; either call reports it.
        var e = await Assert.ThrowsAsync<SocketException>(async () =>
        {
            await s.ConnectAsync(translator.LocalEndPoint, ct);
            _ = await s.ReceiveAsync(new byte[16], ct);
        });
        Assert.Equal(SocketError.ConnectionReset, e.SocketErrorCode);
        Assert.Equal(1, translator.Statistics.Refused);
    }

    [Fact]
    public async Task Unmodified_tcp_programs_talk_through_two_translator_processes_and_a_service_router()
    {
        var ct = Timeout(90);
        var service = ServiceId.FromName("test.translate.process");
        var (tcpServer, loop) = TcpEchoServer(ct);
        using (tcpServer)
        {
            // The service router (in this process) learns the service from the serval-to-tcp translator's
            // registration; the tcp-to-serval translator only knows the router.
            await using var router = await ServalHost.StartAsync(new ServalHostOptions
            {
                Name = "router",
                Links = [new UdpLink(NextAddress())],
                Engine = Serval.Stack.EngineOptions.Default with { Mode = Serval.Stack.EngineMode.ServiceRouter },
                RouterControl = Serval.Stack.ControlPlane.RouterControllerOptions.Default,
            }, ct);
            var routerAddress = router.Links[0].LocalAddress.ToIPAddress()!.ToString();
            using var listenProbe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listenProbe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            var port = ((IPEndPoint)listenProbe.LocalEndPoint!).Port;
            listenProbe.Dispose(); // a free port for the client-side translator

            using var toTcp = Start("serval-to-tcp", "--udp", NextAddress().ToString(), "--service", "test.translate.process", "--target", tcpServer.LocalEndPoint!.ToString()!, "--register-with", routerAddress);
            using var toServal = Start("tcp-to-serval", "--udp", NextAddress().ToString(), "--listen", $"127.0.0.1:{port}", "--service", "test.translate.process", "--router", routerAddress);
            try
            {
                foreach (var p in new[] { toTcp, toServal })
                {
                    var ready = await p.StandardError.ReadLineAsync(ct);
                    Assert.True(ready?.Contains("listening", StringComparison.Ordinal), $"translator said: {ready}");
                }

                await EventuallyAsync(() => router.Admin.GetRules().Any(r => r.Prefix == ServicePrefix.Exact(service)), ct);
                var data = RandomData(3 * 1024 * 1024, 7);
                var echoed = await TcpExchangeAsync(new IPEndPoint(IPAddress.Loopback, port), data, ct);
                Assert.Equal(SHA256.HashData(data), SHA256.HashData(echoed));
                Assert.True(router.Counters.Forwarded >= 1, $"the router forwarded {router.Counters.Forwarded}");
                Assert.True(router.Counters.PacketsReceived < 100, $"the router received {router.Counters.PacketsReceived} packets: the data went through it");

                // SIGTERM ends each translator cleanly, with its counters; the service leaves the router.
                foreach (var p in new[] { toServal, toTcp })
                {
                    using (var kill = Process.Start("kill", ["-TERM", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
                    {
                        await kill.WaitForExitAsync(ct);
                    }

                    var summary = await p.StandardOutput.ReadToEndAsync(ct);
                    await p.WaitForExitAsync(ct);
                    Assert.Equal(0, p.ExitCode);
                    Assert.Contains("accepted 1, completed 1, failed 0, refused 0", summary, StringComparison.Ordinal);
                    Assert.Contains($"bytes to Serval {data.Length}, from Serval {data.Length}", summary, StringComparison.Ordinal);
                }

                await EventuallyAsync(() => !router.Admin.GetRules().Any(r => r.Prefix == ServicePrefix.Exact(service)), ct);
            }
            finally
            {
                foreach (var p in new[] { toTcp, toServal })
                {
                    EndByPid(p);
                }
            }
        }
    }

    [Theory]
    [InlineData]
    [InlineData("tcp-to-serval", "--udp", "127.0.0.1", "--service", "x")]
    [InlineData("tcp-to-serval", "--udp", "127.0.0.1", "--listen", "nowhere", "--service", "x")]
    [InlineData("tcp-to-serval", "--listen", "127.0.0.1:8080", "--service", "x")]
    [InlineData("tcp-to-serval", "--udp", "0.0.0.0", "--listen", "127.0.0.1:8080", "--service", "x")]
    [InlineData("tcp-to-serval", "--udp", "127.0.0.1", "--attach", "--listen", "127.0.0.1:8080", "--service", "x")]
    [InlineData("tcp-to-serval", "--udp", "127.0.0.1", "--listen", "127.0.0.1:8080", "--service", "x/16")]
    [InlineData("tcp-to-serval", "--udp", "127.0.0.1", "--listen", "127.0.0.1:8080", "--service", "x", "--peer", "somewhere")]
    [InlineData("tcp-to-serval", "--attach", "/tmp/none", "--listen", "127.0.0.1:8080", "--service", "x", "--router", "127.0.0.2")]
    [InlineData("tcp-to-serval", "--udp", "127.0.0.1", "--listen", "127.0.0.1:8080", "--service", "x", "--resolve-dns", "127.0.0.1")]
    [InlineData("tcp-to-serval", "--udp", "127.0.0.1", "--listen", "127.0.0.1:8080", "--service", "x", "--dns-zone", "serval.test")]
    [InlineData("tcp-to-serval", "--udp", "127.0.0.1", "--listen", "127.0.0.1:8080", "--service", "x", "--resolve-dns", "nowhere", "--dns-zone", "serval.test")]
    [InlineData("tcp-to-serval", "--udp", "127.0.0.1", "--listen", "127.0.0.1:8080", "--service", "x", "--resolve-file", "/nonexistent/serval/services")]
    [InlineData("tcp-to-serval", "--udp", "127.0.0.1", "--listen", "127.0.0.1:8080", "--service", "x", "--resolve-routers")]
    [InlineData("tcp-to-serval", "--attach", "/tmp/none", "--listen", "127.0.0.1:8080", "--service", "x", "--resolve-file", "/etc/hostname")]
    [InlineData("serval-to-tcp", "--udp", "127.0.0.1", "--service", "x", "--target", "127.0.0.1")]
    [InlineData("serval-to-tcp", "--udp", "127.0.0.1", "--service", "x", "--target", "bad host:80")]
    [InlineData("serval-to-tcp", "--udp", "127.0.0.1", "--service", "x", "--target", "127.0.0.1:80", "--max-connections", "0")]
    [InlineData("serval-to-tcp", "--udp", "127.0.0.1", "--service", "x", "--target", "127.0.0.1:80", "--connect-timeout", "0")]
    public async Task Usage_errors_exit_2_with_a_message(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = await TranslateCommandLine.RunAsync(args, output, error, TestContext.Current.CancellationToken);
        Assert.Equal(2, code);
        Assert.StartsWith("serval-translate", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_tcp_client_reaches_a_service_the_translator_resolves_from_its_static_file()
    {
        var ct = Timeout(60);
        var service = ServiceId.FromName("test.translate.resolved");
        await using var server = await HostAsync("resolved-server", NextAddress());
        await using var echo = await ServalEcho.ListenAsync(server, service, ct);
        var directory = Directory.CreateTempSubdirectory("translate-resolve-").FullName;
        var file = Path.Combine(directory, "services");
        await File.WriteAllTextAsync(file, $"test.translate.resolved {server.Links[0].LocalAddress}\n", ct);
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)probe.LocalEndPoint!).Port;
        probe.Dispose();
        using var stop = new CancellationTokenSource();
        using var output = new StringWriter();
        using var errorText = new StringWriter();
        using var error = TextWriter.Synchronized(errorText); // the translator writes while the test reads
        string Error()
        {
            lock (error)
            {
                return errorText.ToString();
            }
        }

        var run = TranslateCommandLine.RunAsync(
            ["tcp-to-serval", "--udp", NextAddress().ToString(), "--listen", $"127.0.0.1:{port}", "--service", "test.translate.resolved", "--resolve-file", file],
            output,
            error,
            stop.Token);
        try
        {
            await EventuallyAsync(() => Error().Contains("listening", StringComparison.Ordinal) || run.IsCompleted, ct);
            Assert.False(run.IsCompleted, Error());
            var data = RandomData(256 * 1024, 3);
            var echoed = await TcpExchangeAsync(new IPEndPoint(IPAddress.Loopback, port), data, ct);
            Assert.Equal(SHA256.HashData(data), SHA256.HashData(echoed));
        }
        finally
        {
            await stop.CancelAsync();
            Assert.Equal(0, await run.WaitAsync(ct));
            Directory.Delete(directory, recursive: true);
        }

        Assert.Contains("accepted 1, completed 1, failed 0, refused 0", output.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_taken_tcp_endpoint_fails_with_exit_1()
    {
        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen(1);
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = await TranslateCommandLine.RunAsync(
            ["tcp-to-serval", "--udp", NextAddress().ToString(), "--listen", taken.LocalEndPoint!.ToString()!, "--service", "x"], output, error, Timeout(30));
        Assert.Equal(1, code);
        Assert.Contains("cannot listen", error.ToString(), StringComparison.Ordinal);
    }

    private static Process Start(params string[] arguments) => StartTool("serval-translate.dll", redirectInput: false, arguments);
}
