using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Serval.Stack;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// Unconnected and connected datagrams between hosts over UDP on loopback, with embedded hosts
/// (<see cref="EmbeddedDatagramTests"/>) and with applications attached to servald processes (<see cref="AttachedDatagramTests"/>).
/// </summary>
public abstract class DatagramTests(HostMode mode) : IAsyncDisposable
{
    protected HostMode Mode { get; } = mode;

    public ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return Mode.DisposeAsync();
    }

    [Fact]
    public async Task Datagrams_carry_the_source_service_and_replies_find_it()
    {
        var ct = TestNet.Timeout();
        var serviceA = ServiceId.FromName("test.dgram.a");
        var serviceB = ServiceId.FromName("test.dgram.b");
        await using var hostA = await Mode.HostAsync("a");
        await using var hostB = await Mode.HostAsync("b");
        await hostA.Admin.AddRuleAsync(ServicePrefix.Exact(serviceB), hostA.Admin.ForwardTo(Mode.AddressOf(hostB)), cancellationToken: ct);
        await hostB.Admin.AddRuleAsync(ServicePrefix.Exact(serviceA), hostB.Admin.ForwardTo(Mode.AddressOf(hostA)), cancellationToken: ct);
        await using var a = await ServalDatagramSocket.BindAsync(hostA, ServicePrefix.Exact(serviceA), ct);
        await using var b = await ServalDatagramSocket.BindAsync(hostB, ServicePrefix.Exact(serviceB), ct);

        var receive = b.ReceiveFromAsync(new byte[100], ct);
        await a.SendToAsync(serviceB, Encoding.ASCII.GetBytes("ping"), ct);
        var got = await receive;
        Assert.Equal(4, got.ReceivedBytes);
        Assert.Equal(serviceA, got.Source);
        Assert.True(got.SourceAddress.SameAddress(Mode.AddressOf(hostA)));

        await b.SendToAsync(got.Source, Encoding.ASCII.GetBytes("pong"), ct);
        var buffer = new byte[100];
        var reply = await a.ReceiveFromAsync(buffer, ct);
        Assert.Equal("pong", Encoding.ASCII.GetString(buffer, 0, reply.ReceivedBytes));
        Assert.Equal(serviceB, reply.Source);
    }

    [Fact]
    public async Task Many_datagrams_arrive_in_a_burst()
    {
        var ct = TestNet.Timeout();
        var service = ServiceId.FromName("test.dgram.burst");
        await using var hostA = await Mode.HostAsync("a");
        await using var hostB = await Mode.HostAsync("b");
        await hostA.Admin.AddRuleAsync(ServicePrefix.Exact(service), hostA.Admin.ForwardTo(Mode.AddressOf(hostB)), cancellationToken: ct);
        await using var a = await ServalDatagramSocket.BindAsync(hostA, cancellationToken: ct);
        await using var b = await ServalDatagramSocket.BindAsync(hostB, ServicePrefix.Exact(service), ct);
        for (var i = 0; i < 200; i++)
        {
            await a.SendToAsync(service, BitConverter.GetBytes(i), ct);
        }

        var seen = new HashSet<int>();
        var buffer = new byte[16];
        while (seen.Count < 200)
        {
            var r = await b.ReceiveFromAsync(buffer, ct);
            seen.Add(BitConverter.ToInt32(buffer, 0));
        }

        Assert.Equal(200, seen.Count);
    }

    [Fact]
    public async Task Sending_to_an_unresolvable_service_throws_no_route()
    {
        var ct = TestNet.Timeout();
        await using var host = await Mode.HostAsync("a");
        await using var socket = await ServalDatagramSocket.BindAsync(host, cancellationToken: ct);
        var e = await Assert.ThrowsAsync<ServalException>(async () => await socket.SendToAsync(ServiceId.FromName("nowhere"), new byte[] { 1 }, ct));
        Assert.Equal(ServalError.NoRoute, e.Error);
    }

    [Fact]
    public async Task Receive_is_cancelled_and_disposal_fails_pending_receives()
    {
        var ct = TestNet.Timeout();
        await using var host = await Mode.HostAsync("a");
        var socket = await ServalDatagramSocket.BindAsync(host, ServicePrefix.Exact(ServiceId.FromName("test.dgram.cancel")), ct);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await socket.ReceiveFromAsync(new byte[10], cancel.Token));
        var pending = socket.ReceiveFromAsync(new byte[10], ct);
        await socket.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await pending);
        Assert.DoesNotContain(host.Admin.GetRules(), r => r.Prefix == ServicePrefix.Exact(ServiceId.FromName("test.dgram.cancel")));
    }

    [Fact]
    public async Task Datagrams_through_a_service_router_arrive_intact()
    {
        var ct = TestNet.Timeout(30);
        var unconnected = ServiceId.FromName("test.dgram.routed");
        var connected = ServiceId.FromName("test.dgram.routed.connected");
        await using var router = await TestNet.UdpHostAsync("router", TestNet.FastEngine with { Mode = EngineMode.ServiceRouter });
        await using var server = await Mode.HostAsync("server");
        await using var client = await Mode.HostAsync("client");
        await client.Admin.AddRuleAsync(ServicePrefix.Default, client.Admin.ForwardTo(router.Address()), cancellationToken: ct);
        await router.Admin.AddRuleAsync(ServicePrefix.Exact(unconnected), router.Admin.ForwardTo(Mode.AddressOf(server)), cancellationToken: ct);
        await router.Admin.AddRuleAsync(ServicePrefix.Exact(connected), router.Admin.ForwardTo(Mode.AddressOf(server)), cancellationToken: ct);

        // Unconnected: every datagram is resolved by service, so each one goes through the router.
        const int Count = 100;
        var random = new Random(6);
        var payloads = Enumerable.Range(0, Count).Select(i =>
        {
            var p = new byte[random.Next(4, 1200)];
            random.NextBytes(p);
            BinaryPrimitives.WriteInt32BigEndian(p, i);
            return p;
        }).ToArray();
        await using var b = await ServalDatagramSocket.BindAsync(server, ServicePrefix.Exact(unconnected), ct);
        await using var a = await ServalDatagramSocket.BindAsync(client, cancellationToken: ct);
        foreach (var p in payloads)
        {
            await a.SendToAsync(unconnected, p, ct);
        }

        var received = new byte[Count][];
        var buffer = new byte[2000];
        for (var n = 0; n < Count; n++)
        {
            var r = await b.ReceiveFromAsync(buffer, ct);
            var index = BinaryPrimitives.ReadInt32BigEndian(buffer);
            Assert.InRange(index, 0, Count - 1);
            Assert.Null(received[index]);
            received[index] = buffer[..r.ReceivedBytes];
        }

        Assert.Equal(SHA256.HashData(payloads.SelectMany(p => p).ToArray()), SHA256.HashData(received.SelectMany(p => p).ToArray()));
        Assert.True(router.Counters.Forwarded >= Count, $"the router forwarded {router.Counters.Forwarded} of {Count}");

        // Connected: only the SYN goes through the router; the datagrams of the flow go directly.
        var forwardedBefore = router.Counters.Forwarded;
        await using var listener = await ServalListener.ListenAsync(
            new ServalListenerOptions { Host = server, ListenEndPoint = new ServiceEndPoint(connected), Protocol = TransportProtocol.Datagram }, ct);
        var accept = listener.AcceptDatagramSocketAsync(ct);
        await using var socket = await ServalDatagramSocket.ConnectAsync(new ServalConnectionOptions { Host = client, Service = connected }, ct);
        await using var accepted = await accept;
        var sent = new List<byte>();
        var echoed = new List<byte>();
        for (var i = 0; i < 50; i++)
        {
            var p = payloads[i];
            sent.AddRange(p);
            await socket.SendAsync(p, ct);
            var n = await accepted.ReceiveAsync(buffer, ct);
            await accepted.SendAsync(buffer.AsMemory(0, n), ct);
            n = await socket.ReceiveAsync(buffer, ct);
            echoed.AddRange(buffer.AsSpan(0, n));
        }

        Assert.Equal(SHA256.HashData(sent.ToArray()), SHA256.HashData(echoed.ToArray()));
        var setup = router.Counters.Forwarded - forwardedBefore;
        Assert.InRange(setup, 1, 3); // the SYN, and at most a retransmission or two of it
        Assert.Equal(router.Counters.Forwarded, router.Counters.PacketsReceived);
    }

    [Fact]
    public async Task Connected_datagram_flow_echoes()
    {
        var ct = TestNet.Timeout();
        var service = ServiceId.FromName("test.dgram.connected");
        await using var server = await Mode.HostAsync("server");
        await using var client = await Mode.HostAsync("client");
        await using var listener = await ServalListener.ListenAsync(
            new ServalListenerOptions { Host = server, ListenEndPoint = new ServiceEndPoint(service), Protocol = TransportProtocol.Datagram }, ct);
        var accept = listener.AcceptDatagramSocketAsync(ct);
        await using var socket = await ServalDatagramSocket.ConnectAsync(
            new ServalConnectionOptions { Host = client, Service = service, AdvisoryAddress = Mode.AddressOf(server) }, ct);
        Assert.True(socket.IsConnected);
        await using var accepted = await accept;
        for (var i = 0; i < 10; i++)
        {
            await socket.SendAsync(Encoding.ASCII.GetBytes($"message {i}"), ct);
            var buffer = new byte[100];
            var n = await accepted.ReceiveAsync(buffer, ct);
            Assert.Equal($"message {i}", Encoding.ASCII.GetString(buffer, 0, n));
            await accepted.SendAsync(buffer.AsMemory(0, n), ct);
            n = await socket.ReceiveAsync(buffer, ct);
            Assert.Equal($"message {i}", Encoding.ASCII.GetString(buffer, 0, n));
        }

        await Assert.ThrowsAsync<InvalidOperationException>(async () => await socket.SendToAsync(service, new byte[1], ct));
    }
}

/// <summary>The datagram suite on hosts embedded in the test process.</summary>
public sealed class EmbeddedDatagramTests() : DatagramTests(new EmbeddedMode());

/// <summary>The datagram suite on applications attached to servald processes.</summary>
public sealed class AttachedDatagramTests() : DatagramTests(new AttachedMode());
