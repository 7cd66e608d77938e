using System.Diagnostics;
using Serval.Simulation;
using Serval.Stack;
using Serval.Stack.Services;
using Serval.Testing;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>
/// Live-engine fuzz (docs/testing.md): a server host and a service router in a realistic state receive random and
/// mutated packets, many carrying the flowIDs, nonces and headers of live flows, interleaved with time and Poll. No
/// exception escapes, no flow faults, state stays bounded, and the flows the fuzz does not know carry on byte-exact.
/// </summary>
public sealed class EngineFuzzTests(ITestOutputHelper output)
{
    /// <summary>The seed; a failure message repeats it with the packet's bytes.</summary>
    private const int Seed = 0x5E12_7A2;

    /// <summary>Packets of the slow tier's run (the parser fuzz in Serval.Wire.Tests feeds as many again).</summary>
    private const int DefaultPackets = 500_000;

    private const int Batch = 16;

    private static readonly ServiceId StreamService = ServiceId.FromName("fuzz-stream");
    private static readonly ServiceId DatagramService = ServiceId.FromName("fuzz-dgram");
    private static readonly ServiceId UnconnectedService = ServiceId.FromName("fuzz-unconnected");
    private static readonly ServiceId DelayService = ServiceId.FromName("fuzz-delay");
    private static readonly LinkAddress ClientAddress = LinkAddress.Parse("10.9.0.1");
    private static readonly LinkAddress ServerAddress = LinkAddress.Parse("10.9.0.2");
    private static readonly LinkAddress FakeAddress = LinkAddress.Parse("10.9.0.66");
    private static readonly LinkAddress RouterAddress = LinkAddress.Parse("10.9.0.254");

    /// <summary>A live flow the fuzz knows: its flowIDs at client and server and the client's nonce.</summary>
    private sealed record Target(string Name, FlowId Client, FlowId Server, Nonce ClientNonce, byte Protocol, SocketHandle ClientSocket, SocketHandle ServerSocket);

    /// <summary>A SYN the fuzz sent from a fake address, and the SYN-ACK (maybe a cookie) that answered it.</summary>
    private sealed record Handshake(FlowId Ours, Nonce Nonce, uint Verno, uint Sequence, byte Protocol, ServiceId Service, LinkAddress From)
    {
        public SalPacketRepr? SynAck { get; set; }
    }

    [Fact]
    [Trait("Tier", "slow")]
    public void Live_engines_survive_random_and_mutated_packets_and_unknown_flows_carry_on() => Fuzz(PacketFuzzer.Count(DefaultPackets));

    /// <summary>The same seed and checks with a tenth of the packets (the fast tier).</summary>
    [Fact]
    public void Live_engines_survive_a_shorter_fuzz_of_the_same_seed() => Fuzz(DefaultPackets / 10);

    private void Fuzz(int count)
    {
        var fuzzer = new PacketFuzzer(Seed);
        fuzzer.Services.AddRange([StreamService, DatagramService, UnconnectedService, DelayService]);
        fuzzer.Addresses.AddRange([ClientAddress, ServerAddress, FakeAddress, RouterAddress]);

        // Topology: client → router (SYNs) → server; everything after the handshake directly between client and server.
        var net = new SimulatedNetwork((ulong)Seed);
        var lan = net.AddLink("lan", LinkConditions.Perfect with { Delay = TimeSpan.FromMilliseconds(1) });
        var client = net.AddHost("client");
        var server = net.AddHost("server", EngineOptions.Default with { MaxPendingRequests = 8, MaxTimeWaitFlows = 64 });
        var router = net.AddHost("router", EngineOptions.Default with { Mode = EngineMode.ServiceRouter });
        var ci = client.Attach(lan, ClientAddress);
        var si = server.Attach(lan, ServerAddress);
        var ri = router.Attach(lan, RouterAddress);
        client.AddForward(ServicePrefix.Default, RouterAddress, ci);
        router.AddForward(ServicePrefix.Exact(StreamService), ServerAddress, ri);
        router.AddForward(ServicePrefix.Exact(DatagramService), ServerAddress, ri);
        router.AddForward(ServicePrefix.Exact(UnconnectedService), ServerAddress, ri);
        Assert.Equal(ServiceTableResult.Ok, router.Engine.Services.Add(ServicePrefix.Exact(DelayService), ServiceTarget.Delay(), 10, 1));
        var streamListener = server.Listen(StreamService, TransportProtocol.Stream, backlog: 8);
        var datagramListener = server.Listen(DatagramService, TransportProtocol.Datagram, backlog: 8);
        Assert.Equal(ServalError.None, server.Do(e => e.BindDatagram(ServicePrefix.Exact(UnconnectedService), server.Now, out _)));

        // Witnesses: stream flows whose identifiers the fuzz never learns; they transfer data both ways throughout.
        var witnesses = new List<(SocketHandle Client, SocketHandle Server)>();
        for (var i = 0; i < 2; i++)
        {
            var c = client.Connect(StreamService);
            Assert.True(net.RunUntil(() => client.IsConnected(c), SimApp.Patience));
            witnesses.Add((c, net.AcceptOne(server, streamListener)));
        }

        var witnessFlows = new HashSet<uint>();
        foreach (var (c, s) in witnesses)
        {
            witnessFlows.Add(client.Engine.GetFlow(c)!.LocalFlow.Value);
            witnessFlows.Add(server.Engine.GetFlow(s)!.LocalFlow.Value);
        }

        // From here on the fuzz watches the link: packets of other flows feed its corpus, SYNs give away nonces.
        var nonces = new Dictionary<uint, Nonce>();
        var handshakes = new List<Handshake>();
        var recent = new List<byte[]>();
        lan.Observer = (_, _, src, dst, bytes) =>
        {
            if (!SalPacketRepr.TryParse(bytes, out var p, out _, out _, out _)
                || witnessFlows.Contains(p.SourceFlow.Value) || witnessFlows.Contains(p.DestinationFlow.Value))
            {
                return;
            }

            if (p.Control is { } c && c.Has(SalControlFlags.Syn))
            {
                nonces[p.SourceFlow.Value] = c.Nonce;
                if (c.Has(SalControlFlags.Ack) && dst.SameAddress(FakeAddress))
                {
                    var answered = handshakes.FindLast(x => x.Ours == p.DestinationFlow);
                    if (answered is not null)
                    {
                        answered.SynAck = p;
                    }
                }
            }

            if (recent.Count < 256)
            {
                recent.Add(bytes);
            }
            else
            {
                recent[fuzzer.Rng.Next(recent.Count)] = bytes;
            }

            if (fuzzer.Corpus.Count < 2048)
            {
                fuzzer.Corpus.Add(bytes);
            }
            else
            {
                fuzzer.Corpus[fuzzer.Rng.Next(fuzzer.Corpus.Count)] = bytes;
            }
        };

        // Targets: flows the fuzz knows (two streams, a datagram flow, a compact TIME-WAIT record).
        var targets = new List<Target>();
        for (var i = 0; i < 3; i++)
        {
            var protocol = i < 2 ? TransportProtocol.Stream : TransportProtocol.Datagram;
            var c = client.Connect(i < 2 ? StreamService : DatagramService, protocol);
            Assert.True(net.RunUntil(() => client.IsConnected(c), SimApp.Patience));
            var s = net.AcceptOne(server, i < 2 ? streamListener : datagramListener);
            targets.Add(NewTarget($"target{i}", client, c, server, s, nonces));
        }

        var tw = client.Connect(StreamService);
        Assert.True(net.RunUntil(() => client.IsConnected(tw), SimApp.Patience));
        var twServer = net.AcceptOne(server, streamListener);
        var timeWait = NewTarget("time-wait", client, tw, server, twServer, nonces);
        server.Do(e => e.Close(twServer, server.Now));
        net.RunFor(TimeSpan.FromMilliseconds(20));
        client.Do(e => e.Close(tw, client.Now));
        net.RunFor(TimeSpan.FromMilliseconds(50));
        Assert.Equal(1, server.Engine.CompactTimeWaitCount);
        targets.Add(timeWait);

        // A pending request from an address nobody answers for.
        InjectSyn(fuzzer, server, si, handshakes, StreamService, SalPacketRepr.ProtocolTcp);
        Assert.True(server.Engine.FlowCount > 2 + 3 + 1, "the pending request is held");

        var witnessData = Enumerable.Range(0, 4).Select(k => SimApp.RandomBytes(384 * 1024, 100 + k)).ToArray();
        var witnessSent = new int[4];
        var witnessReceived = Enumerable.Range(0, 4).Select(_ => new MemoryStream()).ToArray();
        var readBuffer = new byte[64 * 1024];
        var junk = new byte[2 * 1024];
        fuzzer.Rng.NextBytes(junk);

        var kinds = new long[8];
        var ended = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var maxServerFlows = 0;
        var maxDelayed = 0;
        var fed = 0;
        var batch = new List<byte[]>(Batch);
        var clock = Stopwatch.StartNew();
        while (fed < count)
        {
            batch.Clear();
            for (var k = 0; k < Batch && fed < count; k++, fed++)
            {
                var toRouter = fuzzer.Rng.Next(10) < 3;
                var from = fuzzer.Rng.Next(10) switch
                {
                    < 5 => ClientAddress,
                    < 8 => FakeAddress,
                    _ => LinkAddress.FromIPv4(0x0A090000 + (uint)fuzzer.Rng.Next(1, 255)),
                };
                var to = toRouter ? RouterAddress : ServerAddress;
                var pseudo = new TransportPseudoHeader(from, to);
                var kind = fuzzer.Rng.Next(100) switch
                {
                    < 30 => 0,
                    < 55 => 1,
                    < 70 => 2,
                    < 80 => 3,
                    < 90 => 4,
                    _ => 5,
                };
                var packet = kind switch
                {
                    0 => fuzzer.Next(pseudo),
                    1 => Spliced(fuzzer, targets, pseudo),
                    2 => recent.Count > 0 ? MutatedLiveHeader(fuzzer, recent[fuzzer.Rng.Next(recent.Count)], targets, pseudo) : fuzzer.Next(pseudo),
                    3 => HandshakeAck(fuzzer, handshakes, pseudo),
                    4 => fuzzer.EmitValid(fuzzer.RandomRepr() with { DestinationFlow = FlowId.None }, pseudo),
                    _ => fuzzer.RandomBytes(),
                };
                if (packet is null || ResetsWithRealNonce(packet, targets))
                {
                    packet = fuzzer.RandomBytes();
                }

                kinds[kind]++;
                batch.Add(packet);
                var host = toRouter ? router : server;
                var faults = host.Engine.Counters.FlowFaults;
                try
                {
                    host.Engine.Receive(toRouter ? ri : si, from, to, packet, host.Now);
                }
                catch (Exception e)
                {
                    Assert.Fail($"seed {Seed:x}, packet #{fed} to the {host.Name} from {from}: exception escaped Receive: {e}\npacket: {PacketFuzzer.Hex(packet)}");
                }

                if (host.Engine.Counters.FlowFaults != faults)
                {
                    Assert.Fail($"seed {Seed:x}, packet #{fed} to the {host.Name} from {from}: flow fault {DescribeFault(host)}\npacket: {PacketFuzzer.Hex(packet)}");
                }
            }

            // Time moves, timers fire, the applications work, legitimate traffic flows.
            try
            {
                server.Pump();
                router.Pump();
                Application(fuzzer, client, server, router, witnesses, targets, witnessData, witnessSent, witnessReceived, readBuffer, junk, streamListener, datagramListener, (double)fed / count);
                if (fed % 512 < Batch)
                {
                    InjectSyn(fuzzer, server, si, handshakes, fuzzer.Rng.Next(3) == 0 ? DatagramService : StreamService, fuzzer.Rng.Next(3) == 0 ? SalPacketRepr.ProtocolUdp : SalPacketRepr.ProtocolTcp);
                }

                net.RunFor(TimeSpan.FromMilliseconds(1));
            }
            catch (Exception e) when (e is not Xunit.Sdk.XunitException)
            {
                Assert.Fail($"seed {Seed:x}: exception while polling after packet #{fed}: {e}\nlast packets:\n{string.Join('\n', batch.Select(b => PacketFuzzer.Hex(b)))}");
            }

            foreach (var h in new[] { client, server, router })
            {
                if (h.Engine.Counters.FlowFaults != 0)
                {
                    Assert.Fail($"seed {Seed:x}: flow fault at the {h.Name} while polling after packet #{fed}: {DescribeFault(h)}\nlast packets:\n{string.Join('\n', batch.Select(b => PacketFuzzer.Hex(b)))}");
                }
            }

            // A target the fuzz ended legitimately (its nonce is known: a FIN, an RSYN to nowhere, a forged segment)
            // is replaced, so that live flows are always there to be hit.
            for (var i = 0; i < targets.Count; i++)
            {
                var t = targets[i];
                if (t == timeWait || (client.Engine.GetState(t.ClientSocket) is SalState.Connected && server.Engine.GetState(t.ServerSocket) is SalState.Connected))
                {
                    continue;
                }

                var why = $"{client.Engine.GetState(t.ClientSocket)}/{server.Engine.GetError(t.ServerSocket)}";
                ended[why] = ended.GetValueOrDefault(why) + 1;
                client.Do(e => e.Abort(t.ClientSocket, client.Now));
                server.Do(e => e.Abort(t.ServerSocket, server.Now));
                var protocol = t.Protocol == SalPacketRepr.ProtocolTcp ? TransportProtocol.Stream : TransportProtocol.Datagram;
                var c = client.Connect(protocol == TransportProtocol.Stream ? StreamService : DatagramService, protocol);
                Assert.True(net.RunUntil(() => client.IsConnected(c), SimApp.Patience), $"seed {Seed:x}: a new target connects after packet #{fed}");
                var s = AcceptReal(net, server, protocol == TransportProtocol.Stream ? streamListener : datagramListener, client, c);
                targets[i] = NewTarget(t.Name, client, c, server, s, nonces);
            }

            maxServerFlows = Math.Max(maxServerFlows, server.Engine.FlowCount);
            maxDelayed = Math.Max(maxDelayed, router.Engine.DelayedCount);
            Assert.True(server.Engine.FlowCount <= 256, $"seed {Seed:x}: {server.Engine.FlowCount} flows at the server after packet #{fed}: {FlowStates(server)}");
            Assert.True(router.Engine.FlowCount <= 16, $"seed {Seed:x}: {router.Engine.FlowCount} flows at the router after packet #{fed}");
            Assert.True(router.Engine.DelayedCount <= router.Engine.Options.DelayQueueCapacity);
        }

        clock.Stop();
        var fuzzTime = clock.Elapsed;

        // The fuzz stops: the witnesses finish their transfers byte-exact, and a new connection works.
        lan.Observer = null;
        Assert.True(
            net.RunUntil(
                () =>
                {
                    Application(fuzzer, client, server, router, witnesses, targets, witnessData, witnessSent, witnessReceived, readBuffer, junk, streamListener, datagramListener, 1);
                    return witnessReceived.Select((m, k) => m.Length >= witnessData[k].Length).All(x => x);
                },
                SimApp.Patience),
            $"witness transfers incomplete: {string.Join(", ", witnessReceived.Select((m, k) => $"{m.Length}/{witnessData[k].Length}"))}; {string.Join("; ", witnesses.Select(w => SimApp.Describe(client, w.Client)))}");
        for (var k = 0; k < 4; k++)
        {
            Assert.Equal(SimApp.Sha(witnessData[k]), SimApp.Sha(witnessReceived[k].ToArray()));
        }

        foreach (var (c, s) in witnesses)
        {
            Assert.Equal(SalState.Connected, client.Engine.GetState(c));
            Assert.Equal(SalState.Connected, server.Engine.GetState(s));
        }

        var fresh = client.Connect(StreamService);
        Assert.True(net.RunUntil(() => client.IsConnected(fresh), SimApp.Patience), "a new connection after the fuzz");
        var freshServer = AcceptReal(net, server, streamListener, client, fresh);
        var data = SimApp.RandomBytes(128 * 1024, 7);
        Assert.Equal(SimApp.Sha(data), SimApp.Sha(SimApp.Transfer(net, client, fresh, server, freshServer, data, SimApp.Patience)));
        var back = SimApp.RandomBytes(64 * 1024, 8);
        Assert.Equal(SimApp.Sha(back), SimApp.Sha(SimApp.Transfer(net, server, witnesses[0].Server, client, witnesses[0].Client, back, SimApp.Patience)));

        foreach (var h in new[] { client, server, router })
        {
            Assert.True(h.Engine.Counters.FlowFaults == 0, $"seed {Seed:x}: flow fault at the {h.Name}: {DescribeFault(h)}");
        }

        // State drains: pending requests, TIME-WAIT, delayed packets expire; closes towards silent peers give up. What
        // is left are the application's own connections (two witnesses, the new one, three targets).
        net.RunFor(TimeSpan.FromMinutes(15));
        Assert.True(server.Engine.FlowCount <= 6, $"{server.Engine.FlowCount} flows at the server long after the fuzz: {FlowStates(server)}");
        Assert.Equal(0, router.Engine.DelayedCount);

        var sc = server.Engine.Counters;
        var rc = router.Engine.Counters;
        output.WriteLine(
            $"engine fuzz: {count:N0} packets in {fuzzTime.TotalSeconds:F1} s ({count / fuzzTime.TotalSeconds:N0}/s), virtual {net.Now.TotalSeconds:F0} s; " +
            $"kinds [generic {kinds[0]:N0}, spliced {kinds[1]:N0}, live-header {kinds[2]:N0}, handshake-ack {kinds[3]:N0}, first {kinds[4]:N0}, random {kinds[5]:N0}]");
        output.WriteLine(
            $"server: malformed {sc.Malformed:N0}, bad transport checksum {sc.BadTransportChecksum:N0}, unknown flow {sc.UnknownFlow:N0}, bad nonce {sc.BadNonce:N0}, old verno {sc.OldVerno:N0}, " +
            $"resets sent {sc.ResetsSent:N0} ignored {sc.ResetsIgnored:N0}, cookies sent {sc.SynCookiesSent:N0} accepted {sc.SynCookiesAccepted:N0} rejected {sc.SynCookiesRejected:N0}, " +
            $"negative answers {sc.NegativeAnswersSent:N0}, path validation failures {sc.PathValidationFailures:N0}, max flows {maxServerFlows}");
        output.WriteLine($"router: malformed {rc.Malformed:N0}, forwarded {rc.Forwarded:N0}, loops {rc.ForwardLoops:N0}, delayed {rc.Delayed:N0} (max queued {maxDelayed}), expired {rc.DelayExpired:N0}, no route {rc.NoRoute:N0}");
        output.WriteLine($"targets ended by the fuzz and replaced (client state/server error): {string.Join(", ", ended.Select(e => $"{e.Key} x{e.Value}"))}");
        output.WriteLine("targets after the fuzz: " + string.Join(", ", targets.Select(t => $"{t.Name} {client.Engine.GetState(t.ClientSocket)}/{server.Engine.GetState(t.ServerSocket)}")));
    }

    private static Target NewTarget(string name, SimHost client, SocketHandle c, SimHost server, SocketHandle s, Dictionary<uint, Nonce> nonces)
    {
        var cf = client.Engine.GetFlow(c)!;
        var sf = server.Engine.GetFlow(s)!;
        Assert.True(nonces.TryGetValue(cf.LocalFlow.Value, out var nonce), $"{name}: the client's SYN was seen");
        return new Target(name, cf.LocalFlow, sf.LocalFlow, nonce, cf.Protocol == TransportProtocol.Stream ? SalPacketRepr.ProtocolTcp : SalPacketRepr.ProtocolUdp, c, s);
    }

    /// <summary>The flowIDs (and sometimes the nonce) of a live flow with random everything else.</summary>
    private static byte[] Spliced(PacketFuzzer fuzzer, List<Target> targets, in TransportPseudoHeader pseudo)
    {
        var t = targets[fuzzer.Rng.Next(targets.Count)];
        var repr = fuzzer.RandomRepr(t.Client, t.Server, fuzzer.Rng.Next(8) == 0 ? t.ClientNonce : null);
        if (fuzzer.Rng.Next(4) != 0)
        {
            repr = repr with { Protocol = t.Protocol };
            if (!repr.ControlOnly)
            {
                repr = t.Protocol == SalPacketRepr.ProtocolTcp
                    ? repr with { Tcp = fuzzer.RandomTcp(TcpFlags.Ack) with { Flags = (TcpFlags)fuzzer.Rng.Next(0x200) & ~TcpFlags.Rst } }
                    : repr with { Udp = new UdpRepr { HasChecksum = true } };
            }
        }

        if (fuzzer.Rng.Next(3) == 0)
        {
            repr = repr with { Control = null, DestinationService = null, SourceService = null };
        }

        var p = fuzzer.EmitValid(repr, pseudo);
        if (fuzzer.Rng.Next(3) == 0)
        {
            p = fuzzer.Mutate(p);
            fuzzer.FixUp(p, pseudo);
        }

        return p;
    }

    /// <summary>A packet seen on the link with its TCP fields, flags, options or control fields changed.</summary>
    private static byte[]? MutatedLiveHeader(PacketFuzzer fuzzer, byte[] seen, List<Target> targets, in TransportPseudoHeader pseudo)
    {
        if (!SalPacketRepr.TryParse(seen, out var p, out var offset, out var length, out _))
        {
            return null;
        }

        if (fuzzer.Rng.Next(2) == 0)
        {
            // Turn it around when it was sent by the server: the fuzz plays the client.
            var target = targets.Find(x => x.Server == p.SourceFlow);
            if (target is not null)
            {
                p = p with { SourceFlow = target.Client, DestinationFlow = target.Server };
            }
        }

        var tcp = p.Tcp;
        switch (fuzzer.Rng.Next(7))
        {
            case 0:
                tcp = tcp with { SequenceNumber = tcp.SequenceNumber + (uint)fuzzer.Rng.Next(-70_000, 70_000) };
                break;
            case 1:
                tcp = tcp with { AckNumber = tcp.AckNumber + (uint)fuzzer.Rng.Next(-70_000, 70_000) };
                break;
            case 2:
                tcp = tcp with { Flags = (TcpFlags)fuzzer.Rng.Next(0x200) & ~TcpFlags.Rst };
                break;
            case 3:
                tcp = fuzzer.RandomTcp(tcp.Flags & ~TcpFlags.Rst) with { SequenceNumber = tcp.SequenceNumber, AckNumber = tcp.AckNumber };
                break;
            case 4:
                tcp = tcp with { Window = (ushort)fuzzer.Rng.Next(0x10000), UrgentPointer = (ushort)fuzzer.Rng.Next(0x10000) };
                break;
            case 5:
                if (p.Control is { } c)
                {
                    var flags = (SalControlFlags)fuzzer.Rng.Next(256) & ~SalControlFlags.Rst;
                    p = p with { Control = c with { Flags = flags, Verno = c.Verno + (uint)fuzzer.Rng.Next(-3, 4), Ackno = c.Ackno + (uint)fuzzer.Rng.Next(-3, 4) } };
                }

                break;
            default:
                p = p with { PathProbe = new SalPathProbe(fuzzer.Rng.Next(2) == 0, fuzzer.NextUInt64()) };
                break;
        }

        if (p.Protocol == SalPacketRepr.ProtocolTcp && !p.ControlOnly)
        {
            p = p with { Tcp = tcp };
        }

        var payload = seen.AsSpan(offset, length).ToArray();
        if (payload.Length > 0 && fuzzer.Rng.Next(3) == 0)
        {
            payload = new byte[fuzzer.Rng.Next(0, 1400)];
        }

        var buf = new byte[payload.Length + 512];
        var n = p.Emit(buf, p.ControlOnly ? [] : payload, pseudo);
        return n == 0 ? null : buf[..n];
    }

    /// <summary>
    /// The ACK that completes a handshake the fuzz began from a fake address (a SYN cookie when the pending table was
    /// full), right or with one field wrong.
    /// </summary>
    private static byte[] HandshakeAck(PacketFuzzer fuzzer, List<Handshake> handshakes, in TransportPseudoHeader pseudo)
    {
        var answered = handshakes.Where(h => h.SynAck is not null).TakeLast(32).ToList();
        if (answered.Count == 0)
        {
            return fuzzer.Next(pseudo);
        }

        var h = answered[fuzzer.Rng.Next(answered.Count)];
        var sa = h.SynAck!.Value;
        var verno = h.Verno + 1;
        var ackno = sa.Control!.Value.Verno + 1;
        var nonce = h.Nonce;
        var seq = h.Sequence + 1;
        var ack = sa.Tcp.SequenceNumber + 1;
        var svc = (ServiceId?)h.Service;
        var src = h.Ours;
        var dst = sa.SourceFlow;
        switch (fuzzer.Rng.Next(9))
        {
            case 0: verno += (uint)fuzzer.Rng.Next(-2, 3); break;
            case 1: ackno += (uint)fuzzer.Rng.Next(-2, 3); break;
            case 2: nonce = new Nonce(fuzzer.NextUInt64()); break;
            case 3: ack += (uint)fuzzer.Rng.Next(-2, 3); break;
            case 4: svc = fuzzer.Rng.Next(2) == 0 ? null : ServiceId.FromName("elsewhere"); break;
            case 5: dst = new FlowId(dst.Value ^ (1u << fuzzer.Rng.Next(32))); break;
            case 6: src = new FlowId(fuzzer.NextUInt32()); break;
            default: break;
        }

        var repr = new SalPacketRepr
        {
            SourceFlow = src,
            DestinationFlow = dst,
            Protocol = h.Protocol,
            Control = new SalControl(SalControlFlags.Ack, verno, ackno, nonce),
            DestinationService = svc,
            Tcp = h.Protocol == SalPacketRepr.ProtocolTcp ? new TcpRepr { Flags = TcpFlags.Ack, SequenceNumber = seq, AckNumber = ack, Window = 65535 } : default,
            Udp = new UdpRepr { HasChecksum = true },
        };
        var p = fuzzer.EmitValid(repr, new TransportPseudoHeader(h.From, pseudo.Destination), 200);
        if (fuzzer.Rng.Next(4) == 0)
        {
            p = fuzzer.Mutate(p);
            fuzzer.FixUp(p, new TransportPseudoHeader(h.From, pseudo.Destination));
        }

        return p;
    }

    /// <summary>A valid SYN from the fake address; its SYN-ACK (observed on the link) lets the fuzz answer it.</summary>
    private static void InjectSyn(PacketFuzzer fuzzer, SimHost server, int iface, List<Handshake> handshakes, ServiceId service, byte protocol)
    {
        var h = new Handshake(new FlowId(fuzzer.NextUInt32() | 1), new Nonce(fuzzer.NextUInt64()), fuzzer.NextUInt32(), fuzzer.NextUInt32(), protocol, service, FakeAddress);
        if (handshakes.Count > 256)
        {
            handshakes.RemoveRange(0, 128);
        }

        handshakes.Add(h);
        var syn = new SalPacketRepr
        {
            SourceFlow = h.Ours,
            Protocol = protocol,
            Control = new SalControl(SalControlFlags.Syn, h.Verno, 0, h.Nonce),
            DestinationService = service,
            Tcp = new TcpRepr { Flags = TcpFlags.Syn, SequenceNumber = h.Sequence, Window = 65535, MaxSegmentSize = 1400, SackPermitted = true, Timestamp = new TcpTimestamp(1, 0) },
            Udp = new UdpRepr { HasChecksum = true },
        };
        var buf = new byte[256];
        var n = syn.Emit(buf, [], new TransportPseudoHeader(FakeAddress, ServerAddress));
        var bytes = buf[..n];
        server.Do(e => e.Receive(iface, FakeAddress, ServerAddress, bytes, server.Now));
    }

    /// <summary>Whether a packet would reset a live flow legitimately (a SAL RST with a real nonce): never sent.</summary>
    private static bool ResetsWithRealNonce(byte[] packet, List<Target> targets) =>
        SalPacketRepr.TryParse(packet, out var p, out _, out _, out _)
        && p.Control is { } c && c.Has(SalControlFlags.Rst)
        && targets.Exists(t => t.ClientNonce == c.Nonce);

    /// <summary>
    /// The applications: witnesses write their data (released in step with the fuzz so some is always in flight) and
    /// read everything; targets exchange junk; extra connections the fuzz completed are accepted and closed or
    /// aborted; the unconnected socket is drained; delayed packets at the router are released or dropped.
    /// </summary>
    private static void Application(
        PacketFuzzer fuzzer,
        SimHost client,
        SimHost server,
        SimHost router,
        List<(SocketHandle Client, SocketHandle Server)> witnesses,
        List<Target> targets,
        byte[][] witnessData,
        int[] witnessSent,
        MemoryStream[] witnessReceived,
        byte[] buffer,
        byte[] junk,
        SocketHandle streamListener,
        SocketHandle datagramListener,
        double progress)
    {
        for (var k = 0; k < 4; k++)
        {
            var (c, s) = witnesses[k / 2];
            var (from, fromSocket, to, toSocket) = k % 2 == 0 ? (client, c, server, s) : (server, s, client, c);
            var allowed = (int)Math.Min(witnessData[k].Length, (witnessData[k].Length * progress * 1.25) + 1);
            if (witnessSent[k] < allowed)
            {
                from.Engine.Write(fromSocket, witnessData[k].AsSpan(witnessSent[k], allowed - witnessSent[k]), from.Now, out var n);
                witnessSent[k] += n;
            }

            while (to.Engine.Read(toSocket, buffer, to.Now, out var read, out _) == ServalError.None && read > 0)
            {
                witnessReceived[k].Write(buffer, 0, read);
            }
        }

        foreach (var t in targets)
        {
            foreach (var (h, s) in new[] { (client, t.ClientSocket), (server, t.ServerSocket) })
            {
                if (h.Engine.GetState(s) is not SalState.Connected)
                {
                    continue;
                }

                if (fuzzer.Rng.Next(8) == 0 && h.Engine.SendBufferFree(s) > 0)
                {
                    h.Engine.Write(s, junk.AsSpan(0, fuzzer.Rng.Next(1, t.Protocol == SalPacketRepr.ProtocolTcp ? junk.Length : 512)), h.Now, out _);
                }

                while (h.Engine.Read(s, buffer, h.Now, out var read, out _) == ServalError.None && read > 0)
                {
                }
            }
        }

        foreach (var l in new[] { streamListener, datagramListener })
        {
            while (server.Engine.Accept(l, out var extra) == ServalError.None)
            {
                // A graceful close towards a peer that never answers lingers until the user timeout (streams, 20 s)
                // or the control channel gives up (datagram flows, minutes): only some streams are closed so.
                if (l == streamListener && fuzzer.Rng.Next(8) == 0)
                {
                    server.Engine.Close(extra, server.Now);
                }
                else
                {
                    server.Engine.Abort(extra, server.Now);
                }
            }
        }

        while (router.Engine.TryGetEvent(out var e))
        {
            router.Events.Add(e);
        }

        foreach (var e in router.Events)
        {
            if (e.Kind == EngineEventKind.PacketDelayed)
            {
                switch (fuzzer.Rng.Next(3))
                {
                    case 0: router.Engine.ReleaseDelayed(e.DelayedPacketId, router.Now); break;
                    case 1: router.Engine.DropDelayed(e.DelayedPacketId, router.Now); break;
                    default: break; // left to expire
                }
            }
        }

        router.Events.Clear();
        server.Events.Clear();
        client.Events.Clear();
        client.Pump();
        server.Pump();
        router.Pump();
    }

    /// <summary>Accepts the server side of <paramref name="clientSocket"/>, closing the fuzz's extra connections.</summary>
    private static SocketHandle AcceptReal(SimulatedNetwork net, SimHost server, SocketHandle listener, SimHost client, SocketHandle clientSocket)
    {
        var want = client.Engine.GetFlow(clientSocket)!.LocalFlow;
        SocketHandle found = default;
        Assert.True(
            net.RunUntil(
                () =>
                {
                    while (server.Engine.Accept(listener, out var s) == ServalError.None)
                    {
                        if (server.Engine.GetFlow(s)?.PeerFlow == want)
                        {
                            found = s;
                            return true;
                        }

                        server.Do(e => e.Abort(s, server.Now));
                    }

                    return false;
                },
                SimApp.Patience),
            "the new connection is accepted");
        return found;
    }

    private static string FlowStates(SimHost host) =>
        string.Join(", ", host.Engine.GetFlows().GroupBy(f => (f.State, f.Protocol, Accepted: !f.Socket.IsNone, Stream: f.Stream is not null)).Select(g => $"{g.Key} x{g.Count()}"));

    private static string DescribeFault(SimHost host)
    {
        var parts = new List<string>();
        while (host.Engine.TryGetFault(out var f))
        {
            parts.Add($"{f!.Where} flow {f.LocalFlow} peer {f.PeerFlow} at {f.PeerAddress}: {f.Exception}");
        }

        return parts.Count == 0 ? "(none recorded)" : string.Join("\n", parts);
    }
}
