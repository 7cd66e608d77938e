// Regression tests for the defects the Promela model found in the migration logic (docs/migration-model.md).
using Serval.Stack;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

public sealed class MigrationModelFindingsTests
{
    private static readonly LinkAddress B0 = PacketHarness.Peer;              // the peer's first address, 10.0.0.1
    private static readonly LinkAddress B1 = LinkAddress.Parse("10.0.0.9");   // the peer's new address
    private static readonly LinkAddress A1 = LinkAddress.Parse("10.0.1.2");   // our new address (wlan0)

    private static (PacketHarness H, PacketHarness.FlowFixture F, int Wlan) Setup()
    {
        var h = new PacketHarness();
        var f = h.EstablishedFlow();
        var wlan = h.Engine.AddInterface(new InterfaceConfig { Name = "wlan0", Address = A1, Mtu = 1500 });
        h.Engine.SetInterfaceUp(wlan, true, h.Now);
        return (h, f, wlan);
    }

    /// <summary>Defect A: our final ACK is lost; the peer's retransmitted RSYN|ACK must be answered again.</summary>
    [Fact]
    public void F1_retransmitted_rsyn_ack_after_a_lost_final_ack_is_answered()
    {
        var (h, f, wlan) = Setup();
        Assert.Equal(ServalError.None, h.Engine.Migrate(f.Socket, wlan, h.Now));
        h.Poll();
        var v = h.Expect(p => p.Control is { } c && c.Has(SalControlFlags.Rsyn), "RSYN").Control!.Value.Verno;
        var rsynAck = PacketHarness.Control(SalControlFlags.Rsyn | SalControlFlags.Ack, f.TheirNext, v + 1, f.Theirs, f.Ours);
        h.Send(rsynAck);
        h.Expect(p => p.Control is { } c && c.IsPureAck, "final ACK"); // lost in the network
        h.Drain();
        h.Send(rsynAck);                                                 // the peer retransmits its RSYN|ACK
        h.Expect(p => p.Control is { } c && c.IsPureAck, "final ACK again");
    }

    /// <summary>Defect E: a late RSYN|ACK from the peer's old address must not become its migration address.</summary>
    [Fact]
    public void F2_simultaneous_migration_with_a_late_rsyn_ack_ends_on_the_peers_new_address()
    {
        var (h, f, wlan) = Setup();
        h.Engine.Migrate(f.Socket, wlan, h.Now);
        h.Poll();
        var v = h.Expect(p => p.Control is { } c && c.Has(SalControlFlags.Rsyn), "RSYN").Control!.Value.Verno;
        h.Drain();
        // The peer answered our RSYN from b0 (that answer is late), then moved to b1: its RSYN arrives first.
        h.Send(PacketHarness.Control(SalControlFlags.Rsyn, f.TheirNext, f.OurNext, f.Theirs, f.Ours), from: B1);
        h.Drain();
        h.Send(PacketHarness.Control(SalControlFlags.Rsyn | SalControlFlags.Ack, f.TheirNext, v + 1, f.Theirs, f.Ours), from: B0);
        h.Drain();
        // The peer got our RSYN|ACK, switched to b1 and sends its final ACK from there.
        h.Send(PacketHarness.Control(SalControlFlags.Ack, f.TheirNext + 1, v + 1, f.Theirs, f.Ours), from: B1);
        var flow = h.Engine.GetFlow(f.Socket)!;
        Assert.Equal(MigrationState.None, flow.Migration);
        Assert.Equal(A1, flow.LocalAddress);
        Assert.Equal(B1, flow.PeerAddress);
    }

    /// <summary>Defect C: the peer's final ACK must not cancel our own pending RSYN.</summary>
    [Fact]
    public void F3_our_rsyn_survives_the_peers_final_ack()
    {
        var (h, f, wlan) = Setup();
        h.Send(PacketHarness.Control(SalControlFlags.Rsyn, f.TheirNext, f.OurNext, f.Theirs, f.Ours), from: B1); // the peer moves
        h.Drain();
        h.Engine.Migrate(f.Socket, wlan, h.Now);                      // we move before its final ACK arrives
        h.Poll();
        h.Drain();                                                    // our RSYN is lost
        h.Send(PacketHarness.Control(SalControlFlags.Ack, f.TheirNext + 1, f.OurNext, f.Theirs, f.Ours), from: B1);
        h.Drain();
        Assert.Equal(B1, h.Engine.GetFlow(f.Socket)!.PeerAddress);
        h.Advance(TimeSpan.FromSeconds(5));
        h.Expect(p => p.Control is { } c && c.Has(SalControlFlags.Rsyn), "our RSYN retransmitted");
    }

    /// <summary>Defect C: a pure ACK (the peer's answer to a duplicate RSYN) must not cancel our RSYN.</summary>
    [Fact]
    public void F4_a_pure_ack_does_not_cancel_our_rsyn()
    {
        var (h, f, wlan) = Setup();
        h.Engine.Migrate(f.Socket, wlan, h.Now);
        h.Poll();
        var v = h.Expect(p => p.Control is { } c && c.Has(SalControlFlags.Rsyn), "RSYN").Control!.Value.Verno;
        h.Send(PacketHarness.Control(SalControlFlags.Ack, f.TheirNext, v + 1, f.Theirs, f.Ours));
        h.Drain();
        h.Advance(TimeSpan.FromSeconds(5));
        h.Expect(p => p.Control is { } c && c.Has(SalControlFlags.Rsyn), "our RSYN retransmitted");
    }

    /// <summary>Defect D: a duplicate of the RSYN we accepted is answered with RSYN|ACK, not a pure ACK.</summary>
    [Fact]
    public void F5_a_duplicate_rsyn_is_answered_with_rsyn_ack()
    {
        var (h, f, _) = Setup();
        var rsyn = PacketHarness.Control(SalControlFlags.Rsyn, f.TheirNext, f.OurNext, f.Theirs, f.Ours);
        h.Send(rsyn, from: B1);
        h.Expect(p => p.Control is { } c && c.Flags == (SalControlFlags.Rsyn | SalControlFlags.Ack), "RSYN|ACK"); // lost
        h.Send(rsyn, from: B1);                                                                                  // retransmitted RSYN
        h.Expect(p => p.Control is { } c && c.Flags == (SalControlFlags.Rsyn | SalControlFlags.Ack), "RSYN|ACK again");
    }
}
