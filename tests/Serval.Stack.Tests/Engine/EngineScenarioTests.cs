using Serval.Simulation;
using Serval.Stack;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

public sealed class EngineScenarioTests
{
    private static readonly ServiceId Echo = ServiceId.FromName("echo");

    private static (SimulatedNetwork Net, SimHost A, SimHost B, SimLink Link) TwoHosts(ulong seed, LinkConditions? conditions = null)
    {
        var net = new SimulatedNetwork(seed);
        var link = net.AddLink("lan", conditions);
        var a = net.AddHost("A");
        var b = net.AddHost("B");
        a.Attach(link, LinkAddress.Parse("10.0.0.1"));
        b.Attach(link, LinkAddress.Parse("10.0.0.2"));
        a.AddForward(ServicePrefix.Default, LinkAddress.Parse("10.0.0.2"), 1);
        return (net, a, b, link);
    }

    [Fact]
    public void Stream_connection_transfers_and_closes()
    {
        var (net, a, b, _) = TwoHosts(1);
        var listener = b.Listen(Echo);
        var client = a.Connect(Echo);
        Assert.True(net.RunUntil(() => a.IsConnected(client), TimeSpan.FromSeconds(5)));
        var server = net.AcceptOne(b, listener);
        var data = SimApp.RandomBytes(200_000, 1);
        var got = SimApp.Transfer(net, a, client, b, server, data, TimeSpan.FromSeconds(30));
        Assert.Equal(SimApp.Sha(data), SimApp.Sha(got));

        a.Do(e => e.Close(client, a.Now));
        b.Do(e => e.Close(server, b.Now));
        Assert.True(net.RunUntil(() => a.Engine.FlowCount == 0 && b.Engine.FlowCount == 0, TimeSpan.FromSeconds(200)));
    }

    [Fact]
    public void Datagram_connected_flow_echoes()
    {
        var (net, a, b, _) = TwoHosts(2);
        var listener = b.Listen(Echo, TransportProtocol.Datagram);
        var client = a.Connect(Echo, TransportProtocol.Datagram);
        Assert.True(net.RunUntil(() => a.IsConnected(client), TimeSpan.FromSeconds(5)));
        var server = net.AcceptOne(b, listener);
        a.Do(e => e.Write(client, "hello"u8, a.Now, out _));
        var buf = new byte[100];
        var n = 0;
        Assert.True(net.RunUntil(() => b.Engine.Read(server, buf, b.Now, out n, out _) == ServalError.None && n > 0, TimeSpan.FromSeconds(1)));
        Assert.Equal("hello", System.Text.Encoding.ASCII.GetString(buf, 0, n));
    }

    [Fact]
    public void Unconnected_datagram_carries_source_service()
    {
        var (net, a, b, _) = TwoHosts(3);
        var server = b.Do(e => e.BindDatagram(ServicePrefix.Exact(Echo), b.Now, out var h) == ServalError.None ? h : default);
        var me = ServiceId.FromName("client");
        var client = a.Do(e => e.BindDatagram(ServicePrefix.Exact(me), a.Now, out var h) == ServalError.None ? h : default);
        Assert.Equal(ServalError.None, a.Do(e => e.SendTo(client, Echo, "ping"u8, a.Now)));
        var buf = new byte[100];
        ServiceId from = default;
        var n = 0;
        Assert.True(net.RunUntil(() => b.Engine.ReceiveFrom(server, buf, out n, out from, out _) == ServalError.None, TimeSpan.FromSeconds(1)));
        Assert.Equal(me, from);
        Assert.Equal("ping", System.Text.Encoding.ASCII.GetString(buf, 0, n));
    }

    [Fact]
    public void An_unconnected_datagram_larger_than_the_interface_mtu_is_refused_not_lost()
    {
        var (net, a, b, _) = TwoHosts(5);
        var server = b.Do(e => e.BindDatagram(ServicePrefix.Exact(Echo), b.Now, out var h) == ServalError.None ? h : default);
        var client = a.Do(e => e.BindDatagram(ServicePrefix.Exact(ServiceId.FromName("client")), a.Now, out var h) == ServalError.None ? h : default);
        var mtu = a.Engine.Interfaces[1].Mtu;

        // SAL header, destination and source SERVICE extensions, UDP header: what an unconnected datagram adds; plus
        // the room kept for the SOURCE extension of two service routers on the way ([client, router 1, router 2]).
        var overhead = SalHeaderView.BaseLength + (2 * 36) + UdpRepr.HeaderLength + (4 + (3 * 4));
        var sentBefore = a.Engine.Counters.PacketsSent;
        Assert.Equal(ServalError.InvalidArgument, a.Do(e => e.SendTo(client, Echo, new byte[mtu - overhead + 1], a.Now)));
        Assert.Equal(sentBefore, a.Engine.Counters.PacketsSent);
        Assert.Equal(ServalError.None, a.Do(e => e.SendTo(client, Echo, new byte[mtu - overhead], a.Now)));

        var buf = new byte[2000];
        var n = 0;
        Assert.True(net.RunUntil(() => b.Engine.ReceiveFrom(server, buf, out n, out _, out _) == ServalError.None, TimeSpan.FromSeconds(1)));
        Assert.Equal(mtu - overhead, n);
    }

    [Fact]
    public void Connect_to_unserved_service_is_refused_by_the_host()
    {
        var (net, a, _, _) = TwoHosts(4);
        var client = a.Connect(ServiceId.FromName("nobody"));
        Assert.True(net.RunUntil(() => a.Engine.GetState(client) == SalState.Closed, TimeSpan.FromSeconds(1)));
        Assert.Equal(ServalError.ConnectionRefused, a.Engine.GetError(client));
    }

    [Fact]
    public void Connect_to_a_host_that_never_answers_times_out_after_the_retransmission_limit()
    {
        var (net, a, b, link) = TwoHosts(4);
        link.Partitioned = true;
        var client = a.Connect(ServiceId.FromName("nobody"));
        Assert.True(net.RunUntil(() => a.Engine.GetState(client) == SalState.Closed, TimeSpan.FromSeconds(1000)));
        Assert.Equal(ServalError.TimedOut, a.Engine.GetError(client));
        Assert.Equal(0, b.Engine.Counters.PacketsReceived);
    }
}
