using Serval.Simulation;
using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>
/// A service router keeps an RSYN it relayed (docs/engine.md, "Both ends move") for <see cref="EngineOptions.RelayHold"/>
/// and forwards it again, at once, when the service's registration moves to another address — the mover's RSYN often
/// arrives before the peer's registration from its new address.
/// </summary>
public sealed class RelayHoldTests
{
    private static readonly ServiceId Service = ServiceId.FromNumber(16386);
    private static readonly LinkAddress Client = LinkAddress.Parse("10.202.2.1");
    private static readonly LinkAddress RouterClientSide = LinkAddress.Parse("10.202.2.254");
    private static readonly LinkAddress RouterServerSide = LinkAddress.Parse("10.202.3.254");
    private static readonly LinkAddress ServerOld = LinkAddress.Parse("10.202.3.1");
    private static readonly LinkAddress ServerNew = LinkAddress.Parse("10.202.3.2");
    private static readonly TimeSpan Now = TimeSpan.FromSeconds(1);

    private sealed record Sent(int Interface, LinkAddress Source, LinkAddress Destination, byte[] Packet);

    private sealed class Sink : IPacketSink
    {
        public List<Sent> Packets { get; } = [];

        public void Send(int interfaceIndex, LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit) =>
            Packets.Add(new Sent(interfaceIndex, source, destination, packet.ToArray()));
    }

    private static (Stack.Engine Router, int ServerSide) Router(EngineOptions? options = null)
    {
        var engine = new Stack.Engine((options ?? EngineOptions.Default) with { Mode = EngineMode.ServiceRouter }, new SeededRandomSource(7));
        var a = engine.AddInterface(new InterfaceConfig { Name = "r1", Address = RouterClientSide, Mtu = 1480 });
        var b = engine.AddInterface(new InterfaceConfig { Name = "r2", Address = RouterServerSide, Mtu = 1480 });
        engine.SetInterfaceUp(a, true, Now);
        engine.SetInterfaceUp(b, true, Now);
        Assert.Equal(ServiceTableResult.Ok, engine.Services.Add(ServicePrefix.Exact(Service), ServiceTarget.Forward(ServerOld, b), 10, 1));
        return (engine, b);
    }

    /// <summary>The client's RSYN for the flow (7 → 9) sent towards the service, as <c>RelayRsyn</c> builds it.</summary>
    private static byte[] RelayedRsyn(uint verno = 1000)
    {
        var repr = new SalPacketRepr
        {
            SourceFlow = new FlowId(7),
            DestinationFlow = new FlowId(9),
            Protocol = SalPacketRepr.ProtocolTcp,
            Control = new SalControl(SalControlFlags.Rsyn, verno, 500, new Nonce(0x1122334455667788)),
            ControlOnly = true,
            DestinationService = Service,
        };
        var buffer = new byte[256];
        var n = repr.Emit(buffer, default, new TransportPseudoHeader(Client, RouterClientSide));
        Assert.True(n > 0);
        return buffer[..n];
    }

    private static void AssertRelayedTo(Sent sent, LinkAddress destination, uint verno = 1000)
    {
        Assert.Equal(destination, sent.Destination);
        Assert.Equal(Client, sent.Source);
        Assert.True(SalPacketRepr.TryParse(sent.Packet, out var p, out _, out _, out _));
        Assert.Equal(new FlowId(9), p.DestinationFlow);
        Assert.Equal(SalControlFlags.Rsyn, p.Control!.Value.Flags & ~SalControlFlags.Reserved);
        Assert.Equal(verno, p.Control!.Value.Verno);
        Assert.Equal([Client, RouterClientSide], p.SourceRoute!.Addresses.ToArray());
    }

    /// <summary>The service's registration moves: the FORWARD rule to the old address is replaced by one to the new.</summary>
    private static void MoveRegistration(Stack.Engine router, int serverSide, LinkAddress from, LinkAddress to)
    {
        Assert.Equal(ServiceTableResult.Ok, router.Services.Add(ServicePrefix.Exact(Service), ServiceTarget.Forward(to, serverSide), 10, 1));
        Assert.Equal(ServiceTableResult.Ok, router.Services.Remove(ServicePrefix.Exact(Service), ServiceTarget.Forward(from, serverSide)));
    }

    [Fact]
    public void A_relayed_rsyn_goes_again_to_the_registration_that_moved_after_it_was_forwarded()
    {
        var (router, serverSide) = Router();
        var sink = new Sink();
        router.Receive(1, Client, RouterClientSide, RelayedRsyn(), IPHopLimit.Unknown, Now);
        router.Poll(Now, sink);
        AssertRelayedTo(Assert.Single(sink.Packets), ServerOld);
        Assert.Equal(1, router.HeldRelayCount);

        // The rule gains the new address first (nothing yet: the RSYN's target is still there), then loses the old.
        sink.Packets.Clear();
        Assert.Equal(ServiceTableResult.Ok, router.Services.Add(ServicePrefix.Exact(Service), ServiceTarget.Forward(ServerNew, serverSide), 10, 1));
        Assert.Equal(Now, router.NextTimeout(Now));
        router.Poll(Now, sink);
        Assert.Empty(sink.Packets);
        Assert.Equal(ServiceTableResult.Ok, router.Services.Remove(ServicePrefix.Exact(Service), ServiceTarget.Forward(ServerOld, serverSide)));
        var later = Now + TimeSpan.FromMilliseconds(30);
        router.Poll(later, sink);
        AssertRelayedTo(Assert.Single(sink.Packets), ServerNew);
        Assert.Equal(1, router.Counters.RelaysResent);
        Assert.Equal(2, router.Counters.Forwarded);

        // Once: further polls and unrelated changes send nothing more.
        sink.Packets.Clear();
        router.Poll(later, sink);
        Assert.Equal(ServiceTableResult.Ok, router.Services.Add(ServicePrefix.Exact(ServiceId.FromNumber(99)), ServiceTarget.Forward(ServerOld, serverSide), 10, 1));
        router.Poll(later, sink);
        Assert.Empty(sink.Packets);
        Assert.Equal(1, router.HeldRelayCount);
    }

    [Fact]
    public void A_newer_copy_replaces_the_one_kept_and_nothing_is_kept_past_the_hold()
    {
        var (router, serverSide) = Router(EngineOptions.Default with { RelayHold = TimeSpan.FromMilliseconds(500) });
        var sink = new Sink();
        router.Receive(1, Client, RouterClientSide, RelayedRsyn(1000), IPHopLimit.Unknown, Now);
        router.Receive(1, Client, RouterClientSide, RelayedRsyn(1001), IPHopLimit.Unknown, Now);
        router.Poll(Now, sink);
        Assert.Equal(2, sink.Packets.Count);
        Assert.Equal(1, router.HeldRelayCount);

        sink.Packets.Clear();
        MoveRegistration(router, serverSide, ServerOld, ServerNew);
        router.Poll(Now + TimeSpan.FromMilliseconds(100), sink);
        AssertRelayedTo(Assert.Single(sink.Packets), ServerNew, verno: 1001);

        // Past the hold: a further move sends nothing.
        sink.Packets.Clear();
        MoveRegistration(router, serverSide, ServerNew, ServerOld);
        router.Poll(Now + TimeSpan.FromMilliseconds(700), sink);
        Assert.Empty(sink.Packets);
        Assert.Equal(0, router.HeldRelayCount);
        Assert.Equal(1, router.Counters.RelaysResent);
    }

    [Fact]
    public void With_no_hold_nothing_is_kept()
    {
        var (router, serverSide) = Router(EngineOptions.Default with { RelayHold = TimeSpan.Zero });
        var sink = new Sink();
        router.Receive(1, Client, RouterClientSide, RelayedRsyn(), IPHopLimit.Unknown, Now);
        router.Poll(Now, sink);
        Assert.Single(sink.Packets);
        Assert.Equal(0, router.HeldRelayCount);
        sink.Packets.Clear();
        MoveRegistration(router, serverSide, ServerOld, ServerNew);
        router.Poll(Now, sink);
        Assert.Empty(sink.Packets);
        Assert.Equal(0, router.Counters.RelaysResent);
    }
}
