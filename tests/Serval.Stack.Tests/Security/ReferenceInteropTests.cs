using Serval.Stack;
using Serval.Stack.Tests.Engine;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Security;

/// <summary>
/// A peer that does not know the KEYX and AUTH extensions (played as the reference implementation behaves: it drops a
/// SYN with an extension type it does not know) gets an ordinary flow, unless the application required security
/// (docs/security.md, "Negotiation").
/// </summary>
public sealed class ReferenceInteropTests
{
    [Fact]
    public void An_offer_the_reference_drops_is_retransmitted_without_it_and_the_flow_is_ordinary()
    {
        var h = new PacketHarness(seed: 31);
        Assert.Equal(ServalError.None, h.Engine.Connect(PacketHarness.Service, TransportProtocol.Stream, h.Now, out var socket, default, new ConnectSecurity(FlowProtection.Authenticated)));
        h.Poll();
        var offer = h.Expect(p => p.Control is { Flags: SalControlFlags.Syn } && p.KeyExchange is { IsAccept: false, Level: 1 }, "a SYN with the offer");
        Assert.Equal(PacketHarness.Service, offer.DestinationService);
        h.ExpectNothing(); // the reference drops it: no answer

        h.Advance(TimeSpan.FromSeconds(1.5));
        var server = new ReferenceLikePeer(h, isClient: false);
        server.Answer(); // takes the retransmitted SYN (which must be one the reference parses) and answers it
        Assert.Equal(SalState.Connected, h.Engine.GetState(socket));
        Assert.Equal((FlowProtection.None, false), h.Engine.GetFlowSecurity(socket));
        Assert.Equal(1, h.Engine.Counters.SecurityFallbacks);

        var file = SimApp.RandomBytes(20_000, 31);
        server.SendDataAndFin(file);
        var got = new List<byte>();
        var buffer = new byte[65536];
        while (h.Engine.Read(socket, buffer, h.Now, out var n, out _) == ServalError.None && n > 0)
        {
            got.AddRange(buffer.AsSpan(0, n).ToArray());
        }

        Assert.Equal(file, got.ToArray());
        Assert.Equal(0, h.Engine.Counters.UnauthenticatedPackets);
    }

    [Fact]
    public void A_required_offer_is_not_dropped_and_a_plain_answer_fails_the_connect()
    {
        var h = new PacketHarness(seed: 32);
        Assert.Equal(ServalError.None, h.Engine.Connect(PacketHarness.Service, TransportProtocol.Stream, h.Now, out var socket, default, new ConnectSecurity(FlowProtection.Encrypted, Required: true)));
        h.Poll();
        h.Expect(p => p.KeyExchange is { IsAccept: false, Level: 2 }, "the SYN with the offer");
        h.Advance(TimeSpan.FromSeconds(1.5));
        var again = h.Expect(p => p.Control is { Flags: SalControlFlags.Syn } && p.KeyExchange is not null, "the retransmitted SYN, still with the offer");
        Assert.Equal(0, h.Engine.Counters.SecurityFallbacks);

        // A peer that parses the SYN but ignores the extension answers with a plain SYN-ACK.
        h.Send(new SalPacketRepr
        {
            SourceFlow = new FlowId(3),
            DestinationFlow = again.SourceFlow,
            Protocol = SalPacketRepr.ProtocolTcp,
            Control = new SalControl(SalControlFlags.Syn | SalControlFlags.Ack, 900, again.Control!.Value.Verno + 1, PacketHarness.PeerNonce),
            Tcp = new TcpRepr { Flags = TcpFlags.Syn | TcpFlags.Ack, SequenceNumber = 77, AckNumber = again.Tcp.SequenceNumber + 1, Window = 5792, MaxSegmentSize = 1448 },
        });
        Assert.Equal(SalState.Closed, h.Engine.GetState(socket));
        Assert.Equal(ServalError.SecurityNotNegotiated, h.Engine.GetError(socket));
    }

    [Fact]
    public void A_reference_client_gets_an_ordinary_flow_from_a_listener_with_a_key()
    {
        var h = new PacketHarness(seed: 33);
        using var key = ServiceKey.Create(new ServicePrefix(PacketHarness.Service, 16), new SeededRandomSource(33));
        Assert.Equal(ServalError.None, h.Engine.Listen(new ServicePrefix(PacketHarness.Service, 16), TransportProtocol.Stream, 4, h.Now, out var listener, key));
        var client = new ReferenceLikePeer(h, isClient: true);
        var socket = client.Connect(listener); // checks the SYN-ACK and our ACK of its handshake ACK path as today
        Assert.Equal((FlowProtection.None, false), h.Engine.GetFlowSecurity(socket));
        var file = SimApp.RandomBytes(10_000, 33);
        Assert.Equal(ServalError.None, h.Engine.Write(socket, file, h.Now, out _));
        Assert.Equal(ServalError.None, h.Engine.CompleteWrites(socket, h.Now));
        h.Poll();
        client.ReceiveUntilTransportFin(TimeSpan.FromSeconds(5));
        Assert.Equal(file, client.Received.ToArray());
    }
}
