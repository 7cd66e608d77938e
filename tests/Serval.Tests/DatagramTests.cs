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
        await hostA.AddRuleAsync(ServicePrefix.Exact(serviceB), hostA.ForwardTo(Mode.AddressOf(hostB)), cancellationToken: ct);
        await hostB.AddRuleAsync(ServicePrefix.Exact(serviceA), hostB.ForwardTo(Mode.AddressOf(hostA)), cancellationToken: ct);
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
        await hostA.AddRuleAsync(ServicePrefix.Exact(service), hostA.ForwardTo(Mode.AddressOf(hostB)), cancellationToken: ct);
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
        Assert.DoesNotContain(host.GetRules(), r => r.Prefix == ServicePrefix.Exact(ServiceId.FromName("test.dgram.cancel")));
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
