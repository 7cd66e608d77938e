using System.Diagnostics;
using System.Text;
using Serval.Stack;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>What only daemon mode has: applications attached to one servald, their death, the socket, the daemon's absence.</summary>
[Trait("Tier", "slow")]
public sealed class DaemonModeTests
{
    private static readonly ServiceId Echo = ServiceId.FromName("test.daemon.echo");

    [Fact]
    public async Task An_attached_application_that_dies_unregisters_its_service_at_once()
    {
        var ct = TestNet.Timeout(60);
        var service = ServiceId.FromName("test.daemon.dying");
        await using var daemon = await ServaldProcess.StartAsync("dying", debugEvents: true);
        await using var observer = await ServalHost.AttachAsync(daemon.SocketPath, ct);
        var child = ServaldProcess.Start(ServaldProcess.Dll("serval-demo"), ["echo-attached", daemon.SocketPath, "test.daemon.dying"]);
        try
        {
            var ready = await child.StandardOutput.ReadLineAsync(ct).AsTask().WaitAsync(TimeSpan.FromSeconds(30), ct);
            Assert.True(ready == $"READY {child.Id}", $"child said '{ready}'");
            Assert.Contains(observer.Admin.GetRules(), r => r.Prefix == ServicePrefix.Exact(service) && r.Target.Type == Stack.Services.ServiceTargetType.Demux);

            // The service works through the daemon (the child echoes).
            var (sent, received) = await StreamTests.TransferAsync(observer, service, 100_000, ct);
            Assert.Equal(sent, received);

            var killed = Stopwatch.StartNew();
            child.Kill(); // SIGKILL by process id: no chance to close anything
            await child.WaitForExitAsync(ct);
            Assert.True(
                await TestNet.EventuallyAsync(() => Task.FromResult(!observer.Admin.GetRules().Any(r => r.Prefix == ServicePrefix.Exact(service))), seconds: 5),
                "the dead application's DEMUX rules are still in the daemon's table");
            killed.Stop();
            Assert.True(killed.Elapsed < TimeSpan.FromSeconds(5), $"took {killed.Elapsed}");
            Assert.True(
                await TestNet.EventuallyAsync(() => Task.FromResult(daemon.Output.Count(l => l.Contains("event ServiceUnregistered", StringComparison.Ordinal)) >= 2), seconds: 5),
                $"servald logged no ServiceUnregistered events (stream listener and datagram socket): {string.Join(Environment.NewLine, daemon.Output.TakeLast(20))}");

            // Nothing answers the service any more.
            var e = await Assert.ThrowsAsync<ServalException>(async () =>
                await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = observer, Service = service }, ct));
            Assert.Equal(ServalError.NoRoute, e.Error);
        }
        finally
        {
            if (!child.HasExited)
            {
                child.Kill(); // by process id
            }

            child.Dispose();
        }
    }

    [Fact]
    public async Task An_attached_applications_service_registers_with_the_daemons_router_and_leaves_when_it_dies()
    {
        var ct = TestNet.Timeout(60);
        var service = ServiceId.FromName("test.daemon.registered");
        await using var router = await ServalHost.StartAsync(
            new ServalHostOptions
            {
                Name = "router",
                Links = [TestNet.UdpLink()],
                Engine = TestNet.FastEngine with { Mode = EngineMode.ServiceRouter },
                RouterControl = Stack.ControlPlane.RouterControllerOptions.Default,
            },
            ct);
        await using var daemon = await ServaldProcess.StartAsync("registering", false, $"--Serval:RegisterWithRouter={router.Address()}");
        var child = ServaldProcess.Start(ServaldProcess.Dll("serval-demo"), ["echo-attached", daemon.SocketPath, "test.daemon.registered"]);
        try
        {
            var ready = await child.StandardOutput.ReadLineAsync(ct).AsTask().WaitAsync(TimeSpan.FromSeconds(30), ct);
            Assert.True(ready == $"READY {child.Id}", $"child said '{ready}'");
            Assert.True(
                await TestNet.EventuallyAsync(() => Task.FromResult(router.Admin.GetRules().Any(r => r.Prefix == ServicePrefix.Exact(service) && r.Target.Address.SameAddress(daemon.Address)))),
                "the attached application's service did not register with the router");

            // A client that knows only the router reaches the attached application.
            await using var client = await TestNet.UdpHostAsync("client", defaultRouter: router.Address());
            var (sent, received) = await StreamTests.TransferAsync(client, service, 100_000, ct);
            Assert.Equal(sent, received);

            child.Kill(); // by process id
            await child.WaitForExitAsync(ct);
            Assert.True(
                await TestNet.EventuallyAsync(() => Task.FromResult(!router.Admin.GetRules().Any(r => r.Prefix == ServicePrefix.Exact(service))), seconds: 3),
                "the dead application's service is still registered at the router");
        }
        finally
        {
            if (!child.HasExited)
            {
                child.Kill(); // by process id
            }

            child.Dispose();
        }
    }

    [Fact]
    public async Task The_socket_is_only_for_the_daemons_user()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "Unix file modes only");
        await using var daemon = await ServaldProcess.StartAsync("perm");
        if (OperatingSystem.IsLinux())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(daemon.SocketPath));
        }
    }

    [Fact]
    public async Task Attaching_without_a_daemon_is_connection_refused()
    {
        var ct = TestNet.Timeout();
        var missing = Path.Combine(Path.GetTempPath(), $"servald-none-{Guid.NewGuid():N}.sock");
        var e = await Assert.ThrowsAsync<ServalException>(async () => await ServalHost.AttachAsync(missing, ct));
        Assert.Equal(ServalError.ConnectionRefused, e.Error);
        Assert.Equal(System.Net.Sockets.SocketError.ConnectionRefused, e.SocketErrorCode);
        Assert.Contains(missing, e.Message, StringComparison.Ordinal);

        // A socket file left by a dead daemon: same error.
        await using (var daemon = await ServaldProcess.StartAsync("dead"))
        {
            await daemon.KillAsync();
            Assert.True(File.Exists(daemon.SocketPath));
            var stale = await Assert.ThrowsAsync<ServalException>(async () => await ServalHost.AttachAsync(daemon.SocketPath, ct));
            Assert.Equal(ServalError.ConnectionRefused, stale.Error);
        }

        Assert.False(string.IsNullOrEmpty(ServalHost.DefaultDaemonSocketPath));
        Assert.EndsWith(".sock", ServalHost.DefaultDaemonSocketPath, StringComparison.Ordinal);
    }

    [Fact]
    public async Task When_the_daemon_stops_pending_operations_fail_with_a_serval_exception()
    {
        var ct = TestNet.Timeout(30);
        var daemon = await ServaldProcess.StartAsync("stopping");
        try
        {
            await using var host = await ServalHost.AttachAsync(daemon.SocketPath, ct);
            await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = host, ListenEndPoint = new ServiceEndPoint(Echo) }, ct);
            var accept = listener.AcceptConnectionAsync(ct);
            await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = host, Service = Echo }, ct);
            await using var accepted = await accept;
            var read = connection.GetStream().ReadAsync(new byte[16], ct);
            var pendingAccept = listener.AcceptConnectionAsync(ct);
            await using var socket = await ServalDatagramSocket.BindAsync(host, cancellationToken: ct);
            var receive = socket.ReceiveFromAsync(new byte[16], ct);

            await daemon.KillAsync();

            var e = await Assert.ThrowsAsync<ServalException>(async () => await read);
            Assert.Equal(ServalError.NetworkDown, e.Error);
            Assert.Contains("went away", e.Message, StringComparison.Ordinal);
            await Assert.ThrowsAsync<ServalException>(async () => await pendingAccept);
            await Assert.ThrowsAsync<ServalException>(async () => await receive);
            await Assert.ThrowsAsync<ServalException>(async () => await connection.GetStream().WriteAsync(new byte[10], ct));
            Assert.True(await TestNet.EventuallyAsync(() => Task.FromResult(host.IsStopped), seconds: 5), "the attached host did not stop within 5 s");
            Assert.Throws<ServalException>(() => host.Admin.GetRules());
            await Assert.ThrowsAsync<ServalException>(async () =>
                await ServalListener.ListenAsync(new ServalListenerOptions { Host = host, ListenEndPoint = new ServiceEndPoint(Echo) }, ct));
        }
        finally
        {
            await daemon.DisposeAsync();
        }
    }

    [Fact]
    public async Task Applications_share_one_service_table_and_reach_each_other()
    {
        var ct = TestNet.Timeout(30);
        await using var daemon = await ServaldProcess.StartAsync("shared");
        await using var a = await ServalHost.AttachAsync(daemon.SocketPath, ct);
        await using var b = await ServalHost.AttachAsync(daemon.SocketPath, ct);
        Assert.True(a.IsAttached);
        Assert.Equal("shared", a.Name);
        await using var listener = await StreamTests.EchoServerAsync(a, Echo, ct);
        var e = await Assert.ThrowsAsync<ServalException>(async () =>
            await ServalListener.ListenAsync(new ServalListenerOptions { Host = b, ListenEndPoint = new ServiceEndPoint(Echo) }, ct));
        Assert.Equal(ServalError.AddressInUse, e.Error);
        Assert.Contains(b.Admin.GetRules(), r => r.Prefix == ServicePrefix.Exact(Echo));

        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = b, Service = Echo }, ct);
        var stream = connection.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes("shared table"), ct);
        var reply = new byte[12];
        await stream.ReadExactlyAsync(reply, ct);
        Assert.Equal("shared table", Encoding.ASCII.GetString(reply));

        var info = await connection.GetFlowInfoAsync(ct);
        Assert.NotNull(info);
        Assert.Equal(Echo, info.Service);
        Assert.Equal(TransportProtocol.Stream, info.Protocol);
        Assert.NotNull(info.Stream);
        Assert.True(info.Stream.Value.BytesAcked >= 12, $"BytesAcked {info.Stream.Value.BytesAcked}");
        var flows = await a.GetFlowsAsync(ct);
        Assert.Contains(flows, f => f.Socket == info.Socket && f.LocalFlow == info.LocalFlow);
        var flowCount = await b.GetFlowCountAsync(ct);
        Assert.True(flowCount >= 2, $"{flowCount} flows");
        await Assert.ThrowsAsync<ServalException>(async () => await connection.MigrateAsync(5, ct));

        // Rules added by one application are the daemon's.
        var prefix = new ServicePrefix(ServiceId.FromName("test.daemon.rule"), 64);
        await a.Admin.AddRuleAsync(prefix, a.Admin.ForwardTo(LinkAddress.Parse("127.0.0.1:54325")), cancellationToken: ct);
        Assert.Contains(b.Admin.GetRules(), r => r.Prefix == prefix && r.Target.Type == Stack.Services.ServiceTargetType.Forward);
        await b.Admin.ModifyRuleAsync(prefix, a.Admin.ForwardTo(LinkAddress.Parse("127.0.0.1:54325")), priority: 7, cancellationToken: ct);
        Assert.Equal(7u, Assert.Single(a.Admin.GetRules(), r => r.Prefix == prefix).Priority);
        await b.Admin.RemoveRuleAsync(prefix, b.Admin.ForwardTo(LinkAddress.Parse("127.0.0.1:54325")), ct);
        Assert.DoesNotContain(a.Admin.GetRules(), r => r.Prefix == prefix);
    }

    [Fact]
    public async Task Members_that_need_a_local_engine_throw_on_an_attached_host()
    {
        var ct = TestNet.Timeout();
        await using var daemon = await ServaldProcess.StartAsync("local");
        await using var host = await ServalHost.AttachAsync(daemon.SocketPath, ct);
        Assert.Throws<NotSupportedException>(() => host.Links);
        Assert.Throws<NotSupportedException>(() => host.Interfaces);
        Assert.Throws<NotSupportedException>(() => host.Counters);
        var target = host.Admin.ForwardTo(daemon.Address);
        Assert.Equal(1, target.Interface);
        Assert.Throws<ArgumentException>(() => host.Admin.ForwardTo(LinkAddress.Parse("[::1]:54325")));
        await host.DisposeAsync();
        Assert.True(host.IsStopped);
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await ServalDatagramSocket.BindAsync(host, cancellationToken: ct));
    }

    [Fact]
    public async Task A_slow_reader_backs_up_the_writer_instead_of_filling_the_daemon()
    {
        var ct = TestNet.Timeout(60);
        await using var daemon = await ServaldProcess.StartAsync("slow");
        await using var server = await ServalHost.AttachAsync(daemon.SocketPath, ct);
        await using var client = await ServalHost.AttachAsync(daemon.SocketPath, ct);
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = server, ListenEndPoint = new ServiceEndPoint(Echo) }, ct);
        var accept = listener.AcceptConnectionAsync(ct);
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Echo }, ct);
        await using var accepted = await accept;

        // Nobody reads: the writer must stall after a bounded amount (socket buffers, the bounded queues, the flow window).
        const int Chunk = 256 * 1024;
        const int Total = 128 * 1024 * 1024;
        var data = new byte[Chunk];
        long written = 0;
        var writer = Task.Run(
            async () =>
            {
                while (written < Total)
                {
                    await connection.GetStream().WriteAsync(data, ct);
                    Interlocked.Add(ref written, Chunk);
                }
            },
            CancellationToken.None);
        var stalled = false;
        long last = -1;
        for (var i = 0; i < 50 && !stalled; i++)
        {
            await Task.Delay(100, ct);
            var now = Interlocked.Read(ref written);
            stalled = now == last;
            last = now;
        }

        Assert.True(stalled, "the writer never stalled");
        Assert.True(last < 48L * 1024 * 1024, $"{last} bytes were accepted without a reader");
        var daemonMemory = System.Diagnostics.Process.GetProcessById(daemon.ProcessId).WorkingSet64;

        // Reading drains everything in order.
        var buffer = new byte[Chunk];
        long read = 0;
        while (read < Total)
        {
            var n = await accepted.GetStream().ReadAsync(buffer, ct);
            Assert.True(n > 0, $"read returned {n}");
            read += n;
        }

        await writer;
        Assert.Equal(Total, read);
        Assert.True(daemonMemory < 1024L * 1024 * 1024, $"servald's working set was {daemonMemory} bytes");
    }
}
