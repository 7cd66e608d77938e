using System.Security.Cryptography;
using Serval.Simulation;
using Serval.Stack;
using Serval.Stack.Tests.Engine;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Security;

/// <summary>
/// Self-certifying serviceIDs, the ownership proof in the handshake and authenticated flows between whole engines on
/// the simulator (docs/security.md). All randomness is seeded.
/// </summary>
public sealed class SecureFlowTests
{
    private static readonly ServicePrefix Prefix = ServicePrefix.Parse("0x5e1f/16");
    private static readonly LinkAddress A = LinkAddress.Parse("10.9.0.1");
    private static readonly LinkAddress B = LinkAddress.Parse("10.9.0.2");

    private static ServiceKey NewKey(ulong seed) => ServiceKey.Create(Prefix, new SeededRandomSource(seed));

    /// <summary>Two hosts on one link: a (client) forwards everything to b (server).</summary>
    private static (SimulatedNetwork Net, SimLink Link, SimHost A, SimHost B) Pair(ulong seed)
    {
        var net = new SimulatedNetwork(seed);
        var link = net.AddLink("lan", LinkConditions.Perfect with { Delay = TimeSpan.FromMilliseconds(1) });
        var a = net.AddHost("a");
        var b = net.AddHost("b");
        var ai = a.Attach(link, A);
        b.Attach(link, B);
        a.AddForward(ServicePrefix.Default, B, ai);
        return (net, link, a, b);
    }

    private static SocketHandle Listen(SimHost host, ServicePrefix prefix, ServiceKey? key)
    {
        SocketHandle h = default;
        Assert.Equal(ServalError.None, host.Do(e => e.Listen(prefix, TransportProtocol.Stream, 64, host.Now, out h, key)));
        return h;
    }

    private static SocketHandle Connect(SimHost host, ServiceId id, ConnectSecurity security)
    {
        SocketHandle h = default;
        Assert.Equal(ServalError.None, host.Do(e => e.Connect(id, TransportProtocol.Stream, host.Now, out h, default, security)));
        return h;
    }

    [Fact]
    public void A_self_certifying_serviceID_is_the_prefix_then_the_hash_of_prefix_and_key()
    {
        using var key = NewKey(1);
        Assert.True(Prefix.Contains(key.ServiceId));
        Assert.True(key.ServiceId.IsCertifiedBy(key.PublicKey, Prefix.Length));
        Assert.Equal(key.ServiceId, ServiceId.FromPublicKey(Prefix, key.PublicKey));
        using var other = NewKey(2);
        Assert.False(key.ServiceId.IsCertifiedBy(other.PublicKey, Prefix.Length));
        Assert.False(key.ServiceId.IsCertifiedBy(key.PublicKey, 8)); // another prefix length, another hash
        Assert.Equal(key.ServiceId, ServiceId.Parse(key.ServiceId.ToString())); // text form unchanged
        Assert.Throws<ArgumentException>(() => ServiceId.FromPublicKey(new ServicePrefix(key.ServiceId, 129), key.PublicKey));
    }

    [Fact]
    public void A_key_file_round_trips_and_bad_contents_are_named()
    {
        using var key = NewKey(3);
        var text = key.ToText();
        Assert.True(ServiceKey.TryParse(text, out var back, out var error), error);
        using (back)
        {
            Assert.Equal(key.ServiceId, back!.ServiceId);
            Assert.Equal(key.PublicKey.ToArray(), back.PublicKey.ToArray());
        }

        using var other = NewKey(4);
        var swapped = text.Replace($"serviceid: {key.ServiceId:x}", $"serviceid: {other.ServiceId:x}", StringComparison.Ordinal);
        Assert.False(ServiceKey.TryParse(swapped, out _, out error));
        Assert.Contains("is not the one its key and prefix make", error, StringComparison.Ordinal);

        var noPem = string.Join('\n', text.Split('\n').Where(l => !l.StartsWith("-----", StringComparison.Ordinal) && l.StartsWith("serv", StringComparison.Ordinal) || l.StartsWith("prefix", StringComparison.Ordinal)));
        Assert.False(ServiceKey.TryParse(noPem, out _, out error));
        Assert.Contains("no PEM private key", error, StringComparison.Ordinal);

        var badPem = text.Replace("MC4CAQAw", "MC4CAQAx", StringComparison.Ordinal);
        Assert.False(ServiceKey.TryParse(badPem, out _, out error));
        Assert.Contains("not an Ed25519 private key", error, StringComparison.Ordinal);

        Assert.False(ServiceKey.TryParse("hello\n", out _, out error));
        Assert.Contains("unexpected line", error, StringComparison.Ordinal);
        Assert.False(ServiceKey.TryParse(text.Replace("prefix:", "# prefix:", StringComparison.Ordinal), out _, out error));
        Assert.Contains("no 'prefix:' line", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(FlowProtection.Authenticated)]
    [InlineData(FlowProtection.Encrypted)]
    public void The_owner_proves_its_key_and_a_sealed_transfer_arrives_intact(FlowProtection protection)
    {
        var (net, _, a, b) = Pair(1);
        using var key = NewKey(5);
        var l = Listen(b, ServicePrefix.Exact(key.ServiceId), key);
        var c = Connect(a, key.ServiceId, new ConnectSecurity(protection, RequireOwnershipProof: true));
        Assert.True(net.RunUntil(() => a.IsConnected(c), SimApp.Patience), SimApp.Describe(a, c));
        var s = net.AcceptOne(b, l);
        Assert.Equal((protection, true), a.Engine.GetFlowSecurity(c));
        Assert.Equal((protection, false), b.Engine.GetFlowSecurity(s));

        var up = SimApp.RandomBytes(1 << 20, 1);
        Assert.Equal(SimApp.Sha(up), SimApp.Sha(SimApp.Transfer(net, a, c, b, s, up, TimeSpan.FromMinutes(5))));
        var down = SimApp.RandomBytes(300_000, 2);
        Assert.Equal(SimApp.Sha(down), SimApp.Sha(SimApp.Transfer(net, b, s, a, c, down, TimeSpan.FromMinutes(5))));
        Assert.Equal(0, a.Engine.Counters.UnauthenticatedPackets + b.Engine.Counters.UnauthenticatedPackets);
        Assert.Equal(0, a.Engine.Counters.ReplayedPackets + b.Engine.Counters.ReplayedPackets);
        a.Do(e => e.Close(c, a.Now));
        b.Do(e => e.Close(s, b.Now));
        Assert.True(net.RunUntil(() => a.Engine.FlowCount == 0 && b.Engine.FlowCount == 0, TimeSpan.FromMinutes(5)), "sealed flows did not close");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_syn_answered_with_a_cookie_carries_no_key_exchange(bool required)
    {
        // The server's pending-request table holds one entry, filled by a SYN that never completes: the next SYN is
        // answered with a cookie, which keeps no state and so cannot carry a key exchange (docs/security.md).
        var net = new SimulatedNetwork(3);
        var link = net.AddLink("lan", LinkConditions.Perfect with { Delay = TimeSpan.FromMilliseconds(1) });
        var a = net.AddHost("a");
        var b = net.AddHost("b", EngineOptions.Default with { MaxPendingRequests = 1 });
        var ai = a.Attach(link, A);
        var bi = b.Attach(link, B);
        a.AddForward(ServicePrefix.Default, B, ai);
        var service = ServiceId.FromName("cookie");
        var l = Listen(b, ServicePrefix.Exact(service), null);
        var junk = new SalPacketRepr
        {
            SourceFlow = new FlowId(77),
            Protocol = SalPacketRepr.ProtocolTcp,
            Control = new SalControl(SalControlFlags.Syn, 1, 0, new Nonce(12345)),
            DestinationService = service,
            Tcp = new TcpRepr { Flags = TcpFlags.Syn, SequenceNumber = 9, Window = 65535, MaxSegmentSize = 1400 },
        };
        var spoofed = LinkAddress.Parse("10.9.0.99");
        var buffer = new byte[256];
        var n = junk.Emit(buffer, [], new TransportPseudoHeader(spoofed, B));
        b.Do(e => e.Receive(bi, spoofed, B, buffer.AsSpan(0, n), b.Now));

        var c = Connect(a, service, new ConnectSecurity(FlowProtection.Authenticated, Required: required));
        Assert.True(net.RunUntil(() => a.Engine.GetState(c) is SalState.Connected or SalState.Closed, SimApp.Patience), SimApp.Describe(a, c));
        Assert.True(b.Engine.Counters.SynCookiesSent >= 1, $"cookies sent {b.Engine.Counters.SynCookiesSent}");
        if (required)
        {
            Assert.Equal(ServalError.SecurityNotNegotiated, a.Engine.GetError(c));
        }
        else
        {
            Assert.True(a.IsConnected(c), SimApp.Describe(a, c));
            Assert.Equal((FlowProtection.None, false), a.Engine.GetFlowSecurity(c));
            var s = net.AcceptOne(b, l);
            var data = SimApp.RandomBytes(5000, 4);
            Assert.Equal(SimApp.Sha(data), SimApp.Sha(SimApp.Transfer(net, a, c, b, s, data, TimeSpan.FromMinutes(1))));
        }
    }

    [Fact]
    public void Encrypted_payload_does_not_appear_on_the_wire()
    {
        var (net, link, a, b) = Pair(2);
        var l = Listen(b, ServicePrefix.Exact(ServiceId.FromName("plain")), null);
        var c = Connect(a, ServiceId.FromName("plain"), new ConnectSecurity(FlowProtection.Encrypted, Required: true));
        Assert.True(net.RunUntil(() => a.IsConnected(c), SimApp.Patience), SimApp.Describe(a, c));
        var s = net.AcceptOne(b, l);
        Assert.Equal((FlowProtection.Encrypted, false), a.Engine.GetFlowSecurity(c));
        var marker = "attack at dawn, attack at dawn, attack at dawn"u8.ToArray();
        var seen = 0;
        link.Observer = (_, _, _, _, bytes) => seen += bytes.AsSpan().IndexOf(marker) >= 0 ? 1 : 0;
        Assert.Equal(marker, SimApp.Transfer(net, a, c, b, s, marker, TimeSpan.FromMinutes(1)));
        Assert.Equal(0, seen);
    }

    [Fact]
    public void Without_the_key_the_server_cannot_prove_ownership_and_the_connect_fails_distinctly()
    {
        var (net, _, a, b) = Pair(3);
        using var key = NewKey(6);
        Listen(b, ServicePrefix.Exact(key.ServiceId), null); // serves the serviceID, without its key
        var c = Connect(a, key.ServiceId, new ConnectSecurity(FlowProtection.Authenticated, RequireOwnershipProof: true));
        Assert.True(net.RunUntil(() => a.Engine.GetState(c) == SalState.Closed, SimApp.Patience), SimApp.Describe(a, c));
        Assert.Equal(ServalError.OwnershipProofFailed, a.Engine.GetError(c));
        Assert.Equal(1, a.Engine.Counters.OwnershipProofFailures);
    }

    [Fact]
    public void A_server_with_another_key_under_the_same_prefix_is_refused()
    {
        var (net, _, a, b) = Pair(4);
        using var mine = NewKey(7);
        using var theirs = NewKey(8);
        Listen(b, Prefix, theirs); // the whole prefix, with a key of the prefix that is not the serviceID's
        var c = Connect(a, mine.ServiceId, new ConnectSecurity(FlowProtection.Authenticated, RequireOwnershipProof: true));
        Assert.True(net.RunUntil(() => a.Engine.GetState(c) == SalState.Closed, SimApp.Patience), SimApp.Describe(a, c));
        Assert.Equal(ServalError.OwnershipProofFailed, a.Engine.GetError(c));
    }

    /// <summary>
    /// An attacker on the path sees the SYN and races the server's SYN-ACK with its own, carrying a proof: the real
    /// public key with a signature of its own making, another key of the prefix with a valid signature, or a proof
    /// replayed from an earlier connection to the same service. Each fails the connect with the distinct error.
    /// </summary>
    [Theory]
    [InlineData("forged")]
    [InlineData("mismatched")]
    [InlineData("replayed")]
    public void Forged_mismatched_and_replayed_proofs_fail_the_connect(string kind)
    {
        var (net, link, a, b) = Pair(5);
        using var key = NewKey(9);
        using var attackerKey = NewKey(10);
        Listen(b, ServicePrefix.Exact(key.ServiceId), key);
        link.Conditions = link.Conditions with { Delay = TimeSpan.FromMilliseconds(20) };

        // An earlier, genuine connection: its SYN-ACK (with a valid proof) is captured.
        SalKeyExchange? captured = null;
        link.Observer = (_, _, _, _, bytes) =>
        {
            if (SalPacketRepr.TryParse(bytes, out var p, out _, out _, out _) && p.KeyExchange is { IsAccept: true, HasProof: true } k)
            {
                captured ??= k;
            }
        };
        var first = Connect(a, key.ServiceId, new ConnectSecurity(FlowProtection.Authenticated, RequireOwnershipProof: true));
        Assert.True(net.RunUntil(() => a.IsConnected(first), SimApp.Patience), SimApp.Describe(a, first));
        Assert.NotNull(captured);

        link.Observer = (at, sender, src, dst, bytes) =>
        {
            if (sender != a || !SalPacketRepr.TryParse(bytes, out var syn, out _, out _, out _) || syn.Control is not { } sc || sc.Flags != SalControlFlags.Syn)
            {
                return;
            }

            var share = new byte[32];
            RandomNumberGenerator.Fill(share);
            var signature = new byte[64];
            SalKeyExchange acceptance;
            switch (kind)
            {
                case "forged":
                    RandomNumberGenerator.Fill(signature);
                    acceptance = SalKeyExchange.AcceptWithProof(1, share, Prefix.Length, key.PublicKey, signature);
                    break;
                case "mismatched":
                    attackerKey.Sign(share, signature);
                    acceptance = SalKeyExchange.AcceptWithProof(1, share, Prefix.Length, attackerKey.PublicKey, signature);
                    break;
                default:
                    acceptance = captured!;
                    break;
            }

            var forged = new SalPacketRepr
            {
                SourceFlow = new FlowId(0xBAD),
                DestinationFlow = syn.SourceFlow,
                Protocol = SalPacketRepr.ProtocolTcp,
                Control = new SalControl(SalControlFlags.Syn | SalControlFlags.Ack, 1000, sc.Verno + 1, new Nonce(42)),
                KeyExchange = acceptance,
                Auth = new SalPacketAuth(0, 1, 2),
                Tcp = new TcpRepr { Flags = TcpFlags.Syn | TcpFlags.Ack, SequenceNumber = 7, AckNumber = syn.Tcp.SequenceNumber + 1, Window = 65535, MaxSegmentSize = 1400 },
            };
            var buffer = new byte[1500];
            var n = forged.Emit(buffer, [], TransportPseudoHeader.ForLink(dst, src));
            var packet = buffer[..n];
            net.Schedule(net.Now, () => a.Do(e => e.Receive(0, dst, src, packet, a.Now)));
        };
        var c = Connect(a, key.ServiceId, new ConnectSecurity(FlowProtection.Authenticated, RequireOwnershipProof: true));
        Assert.True(net.RunUntil(() => a.Engine.GetState(c) == SalState.Closed, SimApp.Patience), SimApp.Describe(a, c));
        Assert.Equal(ServalError.OwnershipProofFailed, a.Engine.GetError(c));
        Assert.Equal(SalState.Connected, a.Engine.GetState(first));
    }

    /// <summary>
    /// An attacker on the path sees every packet of an authenticated flow — flowIDs, both nonces, vernos, sequence and
    /// acknowledgement numbers, packet numbers — and answers each genuine packet with forged RST, FIN, RSYN, ACK and
    /// data packets to its receiver (with a random tag, without AUTH, or a replay of a genuine packet). None is
    /// accepted, every one is counted, and the stream arrives intact.
    /// </summary>
    [Fact]
    public void An_on_path_attacker_forges_a_hundred_thousand_packets_and_none_is_accepted()
    {
        const int Target = 100_000;
        var (net, link, a, b) = Pair(6);
        using var key = NewKey(11);
        var l = Listen(b, ServicePrefix.Exact(key.ServiceId), key);

        // The attacker learns both nonces from the handshake.
        var nonces = new Dictionary<uint, Nonce>();
        link.Observer = (_, _, _, _, bytes) =>
        {
            if (SalPacketRepr.TryParse(bytes, out var p, out _, out _, out _) && p.Control is { } control)
            {
                nonces[p.SourceFlow.Value] = control.Nonce;
            }
        };
        var c = Connect(a, key.ServiceId, new ConnectSecurity(FlowProtection.Authenticated, RequireOwnershipProof: true));
        Assert.True(net.RunUntil(() => a.IsConnected(c), SimApp.Patience), SimApp.Describe(a, c));
        var s = net.AcceptOne(b, l);
        Assert.Equal(2, nonces.Count);

        var random = new Random(6);
        var forged = 0;
        var rejectedBefore = Rejected();
        var buffer = new byte[2048];
        var kinds = new int[6];
        link.Observer = (at, sender, src, dst, bytes) =>
        {
            if (forged >= Target || !SalPacketRepr.TryParse(bytes, out var p, out var off, out var len, out _) || p.Auth is not { } auth)
            {
                return;
            }

            var receiver = sender == a ? b : a;
            var senderNonce = nonces.GetValueOrDefault(p.SourceFlow.Value);
            var packets = new List<byte[]>();
            for (var i = 0; i < 8 && forged + packets.Count < Target; i++)
            {
                var kind = (forged + packets.Count) % 6;
                var tag = random.Next(3) switch
                {
                    0 => (SalPacketAuth?)null,
                    1 => new SalPacketAuth(auth.PacketNumber + 1 + (ulong)random.Next(4), (ulong)random.NextInt64(), (ulong)random.NextInt64()),
                    _ => auth with { PacketNumber = auth.PacketNumber + 1 }, // the genuine tag on other contents
                };
                var verno = p.Control?.Verno ?? 0u;
                var ackno = p.Control?.Ackno ?? 0u;
                var baseRepr = new SalPacketRepr { SourceFlow = p.SourceFlow, DestinationFlow = p.DestinationFlow, Protocol = SalPacketRepr.ProtocolTcp, Auth = tag };
                var payload = Array.Empty<byte>();
                SalPacketRepr f;
                switch (kind)
                {
                    case 0:
                        f = baseRepr with { Control = new SalControl(SalControlFlags.Rst | SalControlFlags.Ack, verno, ackno, senderNonce), ControlOnly = true };
                        break;
                    case 1:
                        f = baseRepr with { Control = new SalControl(SalControlFlags.Fin, verno, ackno, senderNonce), ControlOnly = true };
                        break;
                    case 2:
                        f = baseRepr with { Control = new SalControl(SalControlFlags.Rsyn, verno, ackno, senderNonce), ControlOnly = true };
                        break;
                    case 3:
                        f = baseRepr with { Tcp = p.Tcp with { Flags = TcpFlags.Ack, AckNumber = p.Tcp.AckNumber + (uint)random.Next(1, 100_000) } };
                        break;
                    case 4:
                        payload = new byte[random.Next(1, 1200)];
                        random.NextBytes(payload);
                        f = baseRepr with { Tcp = p.Tcp with { Flags = TcpFlags.Ack | TcpFlags.Psh, SequenceNumber = p.Tcp.SequenceNumber + (uint)len } };
                        break;
                    default:
                        packets.Add(bytes); // an exact replay of the genuine packet
                        kinds[kind]++;
                        continue;
                }

                var n = f.ControlOnly ? f.Emit(buffer, [], TransportPseudoHeader.ForLink(src, dst)) : f.Emit(buffer, payload, TransportPseudoHeader.ForLink(src, dst));
                packets.Add(buffer[..n]);
                kinds[kind]++;
            }

            forged += packets.Count;
            net.Schedule(net.Now, () =>
            {
                foreach (var packet in packets)
                {
                    receiver.Engine.Receive(0, src, dst, packet, receiver.Now);
                }

                receiver.Pump();
            });
        };

        var data = SimApp.RandomBytes(4 << 20, 7);
        var got = SimApp.Transfer(net, a, c, b, s, data, TimeSpan.FromMinutes(30), closeAfter: false);
        Assert.Equal(SimApp.Sha(data), SimApp.Sha(got));
        var back = SimApp.RandomBytes(1 << 20, 8);
        var gotBack = SimApp.Transfer(net, b, s, a, c, back, TimeSpan.FromMinutes(30), closeAfter: false);
        Assert.Equal(SimApp.Sha(back), SimApp.Sha(gotBack));
        while (forged < Target)
        {
            var more = SimApp.RandomBytes(1 << 20, forged);
            Assert.Equal(SimApp.Sha(more), SimApp.Sha(SimApp.Transfer(net, a, c, b, s, more, TimeSpan.FromMinutes(30), closeAfter: false)));
        }

        net.RunFor(TimeSpan.FromSeconds(1));
        Assert.True(forged >= Target, $"only {forged} forged packets were sent");
        Assert.Equal(forged, Rejected() - rejectedBefore);
        Assert.Equal(SalState.Connected, a.Engine.GetState(c));
        Assert.Equal(SalState.Connected, b.Engine.GetState(s));
        Assert.All(kinds, k => Assert.True(k >= Target / 7, $"forged kinds: {string.Join(',', kinds)}"));

        long Rejected() =>
            a.Engine.Counters.UnauthenticatedPackets + a.Engine.Counters.ReplayedPackets
            + b.Engine.Counters.UnauthenticatedPackets + b.Engine.Counters.ReplayedPackets;
    }
}
