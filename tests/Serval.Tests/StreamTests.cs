using System.Security.Cryptography;
using System.Text;
using Serval.Stack;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// Stream connections between hosts over real UDP sockets on loopback. The suite runs twice: with hosts embedded in
/// the test process (<see cref="EmbeddedStreamTests"/>) and with applications attached to servald processes
/// (<see cref="AttachedStreamTests"/>).
/// </summary>
public abstract class StreamTests(HostMode mode) : IAsyncDisposable
{
    protected HostMode Mode { get; } = mode;

    public ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return Mode.DisposeAsync();
    }

    private static readonly ServiceId Echo = ServiceId.FromName("test.echo");

    /// <summary>The tests' echo service (<see cref="Serval.Testing.ServalEcho.ListenAsync"/>).</summary>
    internal static Task<ServalListener> EchoServerAsync(ServalHost host, ServiceId service, CancellationToken ct, ReadOnlyMemory<byte> greeting = default) =>
        Serval.Testing.ServalEcho.ListenAsync(host, service, ct, greeting);

    private Task<ConnectedPair> ConnectPairAsync(CancellationToken ct) => ConnectedPair.ConnectAsync(Mode, Echo, ct);

    [Fact]
    public async Task Echo_over_udp_with_an_advisory_address()
    {
        var ct = TestNet.Timeout();
        await using var server = await Mode.HostAsync("server");
        await using var client = await Mode.HostAsync("client");
        await using var listener = await EchoServerAsync(server, Echo, ct);

        await using var connection = await ServalConnection.ConnectAsync(
            new ServalConnectionOptions { Host = client, Service = Echo, AdvisoryAddress = Mode.AddressOf(server) }, ct);
        var stream = connection.GetStream();
        var message = Encoding.UTF8.GetBytes("hello, service");
        await stream.WriteAsync(message, ct);
        stream.CompleteWrites();
        var reply = new MemoryStream();
        await stream.CopyToAsync(reply, ct);
        Assert.Equal(message, reply.ToArray());
        await stream.ReadsClosed;
    }

    internal static async Task<(byte[] Sent, byte[] Received)> TransferAsync(ServalHost client, ServiceId service, int size, CancellationToken ct, LinkAddress advisory = default)
    {
        var data = new byte[size];
        new Random(size).NextBytes(data);
        await using var connection = await ServalConnection.ConnectAsync(
            new ServalConnectionOptions { Host = client, Service = service, AdvisoryAddress = advisory }, ct);
        var stream = connection.GetStream();
        var received = new MemoryStream();
        var reader = Task.Run(() => stream.CopyToAsync(received, ct), CancellationToken.None);
        for (var offset = 0; offset < data.Length; offset += 100_000)
        {
            await stream.WriteAsync(data.AsMemory(offset, Math.Min(100_000, data.Length - offset)), ct);
        }

        stream.CompleteWrites();
        await reader;
        return (data, received.ToArray());
    }

    [Fact]
    public async Task Writes_of_every_size_before_a_graceful_close_are_all_delivered_in_order()
    {
        var ct = TestNet.Timeout(60);
        await using var pair = await ConnectPairAsync(ct);
        var (connection, accepted) = (pair.Connection, pair.Accepted);

        // The receiver reads nothing until the writer has closed, so its window (4 MiB) and the writer's send buffer
        // (4 MiB) fill up: small writes, writes larger than the write stage, and at the end 1 MiB of writes that can
        // only wait in the stage when the close comes.
        var random = new Random(11);
        var sent = new MemoryStream();
        foreach (var size in new[] { 1, 100, 65_536, 3 * 1024 * 1024, 7, 3 * 1024 * 1024, 1024 * 1024 + 1, 200_000, 200_000, 200_000, 200_000, 200_000, 48_000, 1 })
        {
            var chunk = new byte[size];
            random.NextBytes(chunk);
            await connection.GetStream().WriteAsync(chunk, ct);
            sent.Write(chunk);
        }

        await connection.DisposeAsync();
        var received = new MemoryStream();
        await accepted.GetStream().CopyToAsync(received, ct);
        Assert.Equal(sent.Length, received.Length);
        Assert.Equal(SHA256.HashData(sent.ToArray()), SHA256.HashData(received.ToArray()));
    }

    [Fact]
    public async Task A_close_during_a_blocked_write_fails_that_write_and_delivers_everything_before_it()
    {
        Assert.SkipWhen(Mode.Attached, "Attached writes complete in the channel to the daemon; this checks the embedded write stage.");
        var ct = TestNet.Timeout(60);
        await using var pair = await ConnectPairAsync(ct);
        var (connection, accepted) = (pair.Connection, pair.Accepted);

        // The receiver reads nothing yet: its window and the sender's buffer fill (8 MiB), then 1 MiB waits staged.
        var random = new Random(13);
        var sent = new MemoryStream();
        foreach (var size in new[] { 3 * 1024 * 1024, 3 * 1024 * 1024, 1536 * 1024, 500_000, 500_000 })
        {
            var chunk = new byte[size];
            random.NextBytes(chunk);
            await connection.GetStream().WriteAsync(chunk, ct);
            sent.Write(chunk);
        }

        // A write that cannot proceed (larger than the stage, behind it), then the close.
        var blocked = connection.GetStream().WriteAsync(new byte[3 * 1024 * 1024], ct).AsTask();
        await Eventually.UntilAsync(
            async () => (await connection.GetFlowInfoAsync(ct))?.Stream?.SendWindow,
            window => window == 0,
            "the receiver's window to close (the sender's SendWindow)",
            cancellationToken: ct);
        Assert.False(blocked.IsCompleted);
        await connection.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => blocked);

        var received = new MemoryStream();
        await accepted.GetStream().CopyToAsync(received, ct);
        Assert.Equal(sent.Length, received.Length);
        Assert.Equal(SHA256.HashData(sent.ToArray()), SHA256.HashData(received.ToArray()));
    }

    [Fact]
    public async Task A_write_after_CompleteWrites_fails_and_the_data_before_it_arrives()
    {
        Assert.SkipWhen(Mode.Attached, "Attached writes complete in the channel to the daemon; a failure there fails a later write.");
        var ct = TestNet.Timeout();
        await using var server = await Mode.HostAsync("server");
        await using var client = await Mode.HostAsync("client");
        await using var listener = await EchoServerAsync(server, Echo, ct);
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Echo, AdvisoryAddress = Mode.AddressOf(server) }, ct);
        var stream = connection.GetStream();
        var data = new byte[300_000];
        new Random(12).NextBytes(data);
        await stream.WriteAsync(data, ct);
        stream.CompleteWrites();
        var e = await Assert.ThrowsAsync<ServalException>(async () => await stream.WriteAsync(new byte[10], ct));
        Assert.Equal(ServalError.InvalidState, e.Error);
        var reply = new MemoryStream();
        await stream.CopyToAsync(reply, ct);
        Assert.Equal(SHA256.HashData(data), SHA256.HashData(reply.ToArray()));
    }

    [Fact]
    public async Task Writes_to_a_peer_that_reset_fail_with_a_reset()
    {
        var ct = TestNet.Timeout(30);
        await using var pair = await ConnectPairAsync(ct);
        var (connection, accepted) = (pair.Connection, pair.Accepted);
        accepted.GetStream().Abort();

        // Writes complete while the data fits the buffers; once the reset has arrived, a write fails. Bounded.
        var chunk = new byte[64 * 1024];
        ServalException? failure = null;
        for (var i = 0; i < 5_000 && failure is null; i++)
        {
            try
            {
                await connection.GetStream().WriteAsync(chunk, ct);
            }
            catch (ServalException e)
            {
                failure = e;
            }

            if (i % 16 == 15)
            {
                await Task.Delay(5, ct);
            }
        }

        Assert.NotNull(failure);
        Assert.Equal(ServalError.ConnectionReset, failure.Error);
        await accepted.DisposeAsync();
    }

    [Fact]
    public async Task Large_transfer_arrives_intact()
    {
        var ct = TestNet.Timeout(60);
        await using var server = await Mode.HostAsync("server");
        await using var client = await Mode.HostAsync("client");
        await using var listener = await EchoServerAsync(server, Echo, ct);
        var (sent, received) = await TransferAsync(client, Echo, 16 * 1024 * 1024, ct, Mode.AddressOf(server));
        Assert.Equal(SHA256.HashData(sent), SHA256.HashData(received));
    }

    [Fact]
    public async Task One_way_bulk_transfer_arrives_and_reports_its_goodput()
    {
        var ct = TestNet.Timeout(120);
        const int Size = 64 * 1024 * 1024;
        await using var pair = await ConnectPairAsync(ct);
        var (connection, accepted) = (pair.Connection, pair.Accepted);
        var data = new byte[1024 * 1024];
        new Random(1).NextBytes(data);
        var started = System.Diagnostics.Stopwatch.StartNew();
        var sink = Task.Run(
            async () =>
            {
                var buffer = new byte[256 * 1024];
                long total = 0;
                long sum = 0;
                int n;
                while ((n = await accepted.GetStream().ReadAsync(buffer, ct)) > 0)
                {
                    for (var i = 0; i < n; i++)
                    {
                        sum += buffer[i];
                    }

                    total += n;
                }

                return (total, sum);
            },
            CancellationToken.None);
        for (var sent = 0; sent < Size; sent += data.Length)
        {
            await connection.GetStream().WriteAsync(data, ct);
        }

        connection.GetStream().CompleteWrites();
        var (received, checksum) = await sink;
        started.Stop();
        Assert.Equal(Size, received);
        Assert.Equal(data.Sum(b => (long)b) * (Size / data.Length), checksum);
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{Mode}: {Size / (1024 * 1024)} MiB in {started.Elapsed.TotalSeconds:F2} s = {Size * 8 / started.Elapsed.TotalSeconds / 1e6:F0} Mbit/s");
    }

    [Fact]
    public async Task Connection_through_a_service_router_sends_only_the_syn_through_it()
    {
        var ct = TestNet.Timeout(30);
        await using var router = await TestNet.UdpHostAsync("router", TestNet.FastEngine with { Mode = EngineMode.ServiceRouter });
        await using var server = await Mode.HostAsync("server");
        await using var client = await Mode.HostAsync("client");
        await client.Admin.AddRuleAsync(ServicePrefix.Default, client.Admin.ForwardTo(router.Address()), cancellationToken: ct);
        await using var listener = await EchoServerAsync(server, Echo, ct);
        await router.Admin.AddRuleAsync(ServicePrefix.Exact(Echo), router.Admin.ForwardTo(Mode.AddressOf(server)), cancellationToken: ct);

        var (sent, received) = await TransferAsync(client, Echo, 1024 * 1024, ct);
        Assert.Equal(SHA256.HashData(sent), SHA256.HashData(received));
        // Only the SYN (and any retransmission of it) went through the router; the data went directly.
        Assert.True(router.Counters.Forwarded >= 1, $"the router forwarded {router.Counters.Forwarded}");
        Assert.Equal(router.Counters.Forwarded, router.Counters.PacketsReceived);
        if (!Mode.Attached)
        {
            Assert.True(server.Counters.PacketsReceived > 100); // an attached host has no counters of its own
        }
        var rule = Assert.Single(router.Admin.GetRules(), r => r.Prefix == ServicePrefix.Exact(Echo));
        Assert.Equal(router.Counters.Forwarded, rule.PacketsResolved);
    }

    [Fact]
    public async Task Connect_without_a_route_fails_with_no_route()
    {
        var ct = TestNet.Timeout();
        await using var client = await Mode.HostAsync("client");
        var e = await Assert.ThrowsAsync<ServalException>(async () =>
            await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Echo }, ct));
        Assert.Equal(ServalError.NoRoute, e.Error);
        Assert.Equal(System.Net.Sockets.SocketError.HostUnreachable, e.SocketErrorCode);
    }

    [Fact]
    public async Task Connect_to_a_silent_address_times_out()
    {
        Assert.SkipWhen(Mode.Attached, "Needs a client engine with a short retransmission limit; servald configures only TIME-WAIT.");
        var ct = TestNet.Timeout();
        var engine = TestNet.FastEngine with { InitialRto = TimeSpan.FromMilliseconds(50), MinRto = TimeSpan.FromMilliseconds(50), MaxControlRetransmissions = 2 };
        await using var client = await TestNet.UdpHostAsync("client", engine);
        await using var silent = await TestNet.UdpHostAsync("silent", TestNet.FastEngine with { NegativeAnswersPerSecond = 0 });
        var e = await Assert.ThrowsAsync<ServalException>(async () =>
            await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Echo, AdvisoryAddress = silent.Address() }, ct));
        Assert.Equal(ServalError.TimedOut, e.Error);
        Assert.Equal(System.Net.Sockets.SocketError.TimedOut, e.SocketErrorCode);
        Assert.True(await TestNet.EventuallyAsync(async () => await client.GetFlowCountAsync(ct) == 0), $"{await client.GetFlowCountAsync(ct)} flows left after 10 s");
    }

    [Fact]
    public async Task Connect_to_a_host_without_the_service_is_refused_within_a_round_trip()
    {
        var ct = TestNet.Timeout();
        await using var client = await Mode.HostAsync("client");
        await using var other = await TestNet.UdpHostAsync("no-listener");

        // Only the host's answer to the SYN gives ConnectionRefused; silence would give TimedOut after minutes of SYN
        // retransmissions (longer than the test's own timeout).
        var e = await Assert.ThrowsAsync<ServalException>(async () =>
            await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Echo, AdvisoryAddress = other.Address() }, ct));
        Assert.Equal(ServalError.ConnectionRefused, e.Error);
    }

    [Fact]
    public async Task Abort_resets_the_peer()
    {
        var ct = TestNet.Timeout();
        await using var pair = await ConnectPairAsync(ct);
        var (connection, accepted) = (pair.Connection, pair.Accepted);
        var read = accepted.GetStream().ReadAsync(new byte[16], ct);
        connection.GetStream().Abort();
        var e = await Assert.ThrowsAsync<ServalException>(async () => await read);
        Assert.Equal(ServalError.ConnectionReset, e.Error);
        await Assert.ThrowsAsync<ServalException>(() => accepted.GetStream().ReadsClosed);
        await Assert.ThrowsAsync<ServalException>(async () => await connection.GetStream().WriteAsync(new byte[1], ct));
    }

    [Fact]
    public async Task Pending_operations_are_cancelled()
    {
        var ct = TestNet.Timeout();
        await using var server = await Mode.HostAsync("server");
        await using var client = await Mode.HostAsync("client");
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = server, ListenEndPoint = new ServiceEndPoint(Echo) }, ct);

        using var cancelAccept = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await listener.AcceptConnectionAsync(cancelAccept.Token));

        var accept = listener.AcceptConnectionAsync(ct);
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Echo, AdvisoryAddress = Mode.AddressOf(server) }, ct);
        await using var accepted = await accept;
        using var cancelRead = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await connection.GetStream().ReadAtLeastAsync(new byte[16], 1, cancellationToken: cancelRead.Token));

        // The stream still works after a cancelled read.
        await accepted.GetStream().WriteAsync(new byte[] { 42 }, ct);
        var one = new byte[1];
        await connection.GetStream().ReadExactlyAsync(one, ct);
        Assert.Equal(42, one[0]);

        using var cancelConnect = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await using var silent = await TestNet.UdpHostAsync("silent", TestNet.FastEngine with { NegativeAnswersPerSecond = 0 });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
            await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Echo, AdvisoryAddress = silent.Address() }, cancelConnect.Token));
    }

    [Fact]
    public async Task Disposing_connections_and_listeners_leaves_no_flow()
    {
        var ct = TestNet.Timeout(30);
        await using var server = await Mode.HostAsync("server");
        await using var client = await Mode.HostAsync("client");
        var listener = await EchoServerAsync(server, Echo, ct);
        for (var i = 0; i < 5; i++)
        {
            var (sent, received) = await TransferAsync(client, Echo, 10_000, ct, Mode.AddressOf(server));
            Assert.Equal(sent, received);
        }

        // Connections disposed mid-stream (with unread data) are reset, not leaked.
        for (var i = 0; i < 3; i++)
        {
            var c = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Echo, AdvisoryAddress = Mode.AddressOf(server) }, ct);
            await c.GetStream().WriteAsync(new byte[5000], ct);
            await c.DisposeAsync();
        }

        await listener.DisposeAsync();
        Assert.True(await TestNet.EventuallyAsync(async () => await client.GetFlowCountAsync(ct) == 0 && await server.GetFlowCountAsync(ct) == 0), "flows left");
        Assert.DoesNotContain(server.Admin.GetRules(), r => r.Prefix == ServicePrefix.Exact(Echo));
    }

    [Fact]
    public async Task Stopping_the_host_fails_pending_operations()
    {
        var ct = TestNet.Timeout();
        var server = await Mode.HostAsync("server");
        await using var client = await Mode.HostAsync("client");
        var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = server, ListenEndPoint = new ServiceEndPoint(Echo) }, ct);
        var accept = listener.AcceptConnectionAsync(ct);
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Echo, AdvisoryAddress = Mode.AddressOf(server) }, ct);
        var accepted = await accept;
        var serverRead = accepted.GetStream().ReadAsync(new byte[16], ct);
        var clientRead = connection.GetStream().ReadAsync(new byte[16], ct);
        var pendingAccept = listener.AcceptConnectionAsync(ct);

        await server.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await serverRead);
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await pendingAccept);
        var reset = await Assert.ThrowsAsync<ServalException>(async () => await clientRead);
        Assert.Equal(ServalError.ConnectionReset, reset.Error);
        await Assert.ThrowsAsync<ObjectDisposedException>(async () =>
            await ServalListener.ListenAsync(new ServalListenerOptions { Host = server, ListenEndPoint = new ServiceEndPoint(Echo) }, ct));
        await listener.DisposeAsync();
        await accepted.DisposeAsync();
    }

    [Fact]
    public async Task Listening_twice_on_a_service_is_address_in_use()
    {
        var ct = TestNet.Timeout();
        await using var host = await Mode.HostAsync("host");
        await using var first = await ServalListener.ListenAsync(new ServalListenerOptions { Host = host, ListenEndPoint = new ServiceEndPoint(Echo) }, ct);
        var e = await Assert.ThrowsAsync<ServalException>(async () =>
            await ServalListener.ListenAsync(new ServalListenerOptions { Host = host, ListenEndPoint = new ServiceEndPoint(Echo) }, ct));
        Assert.Equal(ServalError.AddressInUse, e.Error);
    }

    [Fact]
    public async Task A_service_on_the_same_host_is_reached_over_loopback()
    {
        var ct = TestNet.Timeout();
        await using var host = Mode.Attached
            ? await Mode.HostAsync("alone")
            : await ServalHost.StartAsync(new ServalHostOptions { Name = "alone", Engine = TestNet.FastEngine }, ct);
        await using var listener = await EchoServerAsync(host, Echo, ct);
        var (sent, received) = await TransferAsync(host, Echo, 300_000, ct);
        Assert.Equal(sent, received);
    }

    [Fact]
    public async Task The_pipe_view_reads_and_writes()
    {
        var ct = TestNet.Timeout();
        await using var server = await Mode.HostAsync("server");
        await using var client = await Mode.HostAsync("client");
        await using var listener = await EchoServerAsync(server, Echo, ct);
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Echo, AdvisoryAddress = Mode.AddressOf(server) }, ct);
        var pipe = connection.GetStream().AsDuplexPipe();
        await pipe.Output.WriteAsync(Encoding.ASCII.GetBytes("pipes"), ct);
        await pipe.Output.CompleteAsync();
        var all = new MemoryStream();
        while (true)
        {
            var result = await pipe.Input.ReadAsync(ct);
            foreach (var segment in result.Buffer)
            {
                await all.WriteAsync(segment, ct);
            }

            pipe.Input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }

        Assert.Equal("pipes", Encoding.ASCII.GetString(all.ToArray()));
    }
}

/// <summary>The stream suite on hosts embedded in the test process.</summary>
public sealed class EmbeddedStreamTests() : StreamTests(new EmbeddedMode());

/// <summary>The stream suite on applications attached to servald processes.</summary>
public sealed class AttachedStreamTests() : StreamTests(new AttachedMode());
