using System.Buffers.Binary;
using Serval.Simulation;
using Serval.Stack;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>Bursts, floods and faults: the engine keeps serving (docs/engine.md, "Faults", "SYN cookies", "TIME-WAIT").</summary>
public sealed class OverloadTests
{
    private static readonly ServiceId Echo = ServiceId.FromName("overload");
    private static readonly LinkAddress ClientAddress = LinkAddress.Parse("10.7.0.1");
    private static readonly LinkAddress ServerAddress = LinkAddress.Parse("10.7.0.2");

    private static (SimulatedNetwork Net, SimHost Client, SimHost Server, int ServerIface) Pair(ulong seed, EngineOptions? server = null)
    {
        var net = new SimulatedNetwork(seed);
        var link = net.AddLink("lan", LinkConditions.Perfect with { Delay = TimeSpan.FromMilliseconds(1) });
        var a = net.AddHost("client");
        var b = net.AddHost("server", server);
        var ai = a.Attach(link, ClientAddress);
        var bi = b.Attach(link, ServerAddress);
        a.AddForward(ServicePrefix.Default, ServerAddress, ai);
        return (net, a, b, bi);
    }

    [Fact]
    public void Syn_ack_retransmission_after_a_full_accept_queue_does_not_fault()
    {
        var (net, a, b, _) = Pair(11);
        var l = b.Listen(Echo, backlog: 1);
        var first = a.Connect(Echo);
        var second = a.Connect(Echo);

        // Nobody accepts: the second handshake ACK meets a full accept queue; the server's SYN-ACK timer fires again and
        // again while the request waits (this used to throw from the stream on the engine thread).
        net.RunFor(TimeSpan.FromSeconds(20));
        Assert.Equal(0, b.Engine.Counters.FlowFaults);
        Assert.True(b.Engine.Counters.SynDropped > 0, "the second handshake ACK met a full accept queue");

        var c1 = net.AcceptOne(b, l);
        var c2 = net.AcceptOne(b, l);
        Assert.NotEqual(c1, c2);
        var data = SimApp.RandomBytes(64 * 1024, 3);
        Assert.Equal(SimApp.Sha(data), SimApp.Sha(SimApp.Transfer(net, a, second, b, c2, data, SimApp.Patience)));
        Assert.True(a.IsConnected(first));
    }

    [Fact]
    public void A_syn_that_meets_a_full_accept_queue_is_not_dropped_and_completes_when_the_application_accepts()
    {
        var (net, a, b, _) = Pair(20);
        var l = b.Listen(Echo, backlog: 1);
        var first = a.Connect(Echo);
        Assert.True(net.RunUntil(() => b.Engine.PendingAccepts(l) == 1, SimApp.Patience));

        // The accept queue is full when the second SYN arrives: it used to be dropped, costing the client a whole
        // initial RTO (1 s). Now the request waits and its handshake completes as soon as the application accepts.
        var second = a.Connect(Echo);
        net.RunFor(TimeSpan.FromMilliseconds(100));
        Assert.True(a.IsConnected(second));
        Assert.Equal(0, a.Engine.Counters.ControlRetransmissions);
        Assert.Equal(ServalError.None, b.Engine.Accept(l, out _));
        Assert.True(net.RunUntil(() => b.Engine.PendingAccepts(l) == 1, TimeSpan.FromMilliseconds(1)), "the waiting handshake completes at once");
        Assert.True(a.IsConnected(first));
        Assert.Equal(0, a.Engine.Counters.ControlRetransmissions);
    }

    [Fact]
    public void A_fault_in_one_flow_resets_that_flow_and_the_others_go_on()
    {
        var (net, a, b, _) = Pair(12);
        var l = b.Listen(Echo);
        var victim = a.Connect(Echo);
        var bystander = a.Connect(Echo);
        Assert.True(net.RunUntil(() => a.IsConnected(victim) && a.IsConnected(bystander), SimApp.Patience));
        var sv = net.AcceptOne(b, l);
        var sb = net.AcceptOne(b, l);
        var victimServerSide = b.Engine.GetFlow(sv)!.LocalFlow;
        b.Engine.FlowPacketProbe = h =>
        {
            if (h == sv)
            {
                throw new InvalidOperationException("injected fault");
            }
        };

        a.Do(e => e.Write(victim, new byte[100], a.Now, out _));
        Assert.True(net.RunUntil(() => a.Events.Any(e => e.Kind == EngineEventKind.Closed && e.Socket == victim), SimApp.Patience), "the victim's peer learns of the reset");
        Assert.Equal(ServalError.ConnectionReset, a.Events.Last(e => e.Kind == EngineEventKind.Closed && e.Socket == victim).Error);
        Assert.Contains(b.Events, e => e.Kind == EngineEventKind.Closed && e.Socket == sv && e.Error == ServalError.ConnectionReset);
        Assert.Equal(1, b.Engine.Counters.FlowFaults);
        Assert.True(b.Engine.TryGetFault(out var fault));
        Assert.Equal(sv, fault!.Socket);
        Assert.Equal(victimServerSide, fault.LocalFlow);
        Assert.Equal("receive", fault.Where);
        Assert.IsType<InvalidOperationException>(fault.Exception);

        var data = SimApp.RandomBytes(256 * 1024, 4);
        Assert.Equal(SimApp.Sha(data), SimApp.Sha(SimApp.Transfer(net, a, bystander, b, sb, data, SimApp.Patience)));
        var next = a.Connect(Echo);
        Assert.True(net.RunUntil(() => a.IsConnected(next), SimApp.Patience), "new connections are still accepted");
    }

    /// <summary>Hands <paramref name="count"/> junk SYNs from <paramref name="from"/> straight to the server's engine.</summary>
    private static void InjectJunkSyns(SimHost server, int iface, Random random, int count, LinkAddress from)
    {
        for (var i = 0; i < count; i++)
        {
            var syn = JunkSyn(random, from);
            server.Do(e => e.Receive(iface, from, ServerAddress, syn, server.Now));
        }
    }

    /// <summary>A stream SYN from a random flowID and nonce, as a flood sends it.</summary>
    private static byte[] JunkSyn(Random random, LinkAddress from)
    {
        var repr = new SalPacketRepr
        {
            SourceFlow = new FlowId((uint)random.Next(1, int.MaxValue)),
            Protocol = SalPacketRepr.ProtocolTcp,
            Control = new SalControl(SalControlFlags.Syn, (uint)random.Next(), 0, new Nonce((ulong)random.NextInt64())),
            DestinationService = Echo,
            Tcp = new TcpRepr { Flags = TcpFlags.Syn, SequenceNumber = (uint)random.Next(), Window = 65535, MaxSegmentSize = 1400 },
        };
        var buf = new byte[256];
        var n = repr.Emit(buf, [], new TransportPseudoHeader(from, ServerAddress));
        return buf[..n];
    }

    [Fact]
    public void During_a_syn_flood_legitimate_clients_connect_with_syn_cookies()
    {
        var options = EngineOptions.Default with { MaxPendingRequests = 64 };
        var (net, a, b, bi) = Pair(13, options);
        var l = b.Listen(Echo, backlog: 512);
        var random = new Random(5);
        var spoofed = LinkAddress.Parse("10.7.0.99");

        // 5,000 junk SYNs: the pending table fills at 64 and stays full of junk for the requests' 30 s lifetime.
        InjectJunkSyns(b, bi, random, 5000, spoofed);

        // One source gets a burst of 1,000 cookies; the rest of its flood is dropped before any hashing or answer.
        Assert.Equal(1000, b.Engine.Counters.SynCookiesSent);
        Assert.Equal(5000 - 64 - 1000, b.Engine.Counters.SynCookiesSuppressed);
        var clients = Enumerable.Range(0, 20).Select(_ => a.Connect(Echo)).ToList();
        Assert.True(net.RunUntil(() => clients.All(a.IsConnected), TimeSpan.FromSeconds(3)), "legitimate clients connect during the flood");
        var accepted = clients.Select(_ => net.AcceptOne(b, l)).ToList();
        Assert.Equal(20, b.Engine.Counters.SynCookiesAccepted);
        var data = SimApp.RandomBytes(1024 * 1024, 6);
        Assert.Equal(SimApp.Sha(data), SimApp.Sha(SimApp.Transfer(net, a, clients[7], b, accepted[7], data, SimApp.Patience, closeAfter: false)));
        var back = SimApp.RandomBytes(512 * 1024, 7);
        Assert.Equal(SimApp.Sha(back), SimApp.Sha(SimApp.Transfer(net, b, accepted[7], a, clients[7], back, SimApp.Patience)));
        Assert.Equal(0, b.Engine.Counters.FlowFaults);
    }

    [Fact]
    public void A_handshake_ack_lost_on_its_way_to_a_cookie_server_is_repeated_when_the_first_data_goes_unanswered()
    {
        var (net, a, b, bi) = Pair(21, EngineOptions.Default with { MaxPendingRequests = 1 });
        var link = net.Links[0];
        var l = b.Listen(Echo);
        var spoofed = LinkAddress.Parse("10.7.0.99");
        InjectJunkSyns(b, bi, new Random(3), 1, spoofed); // the pending table (1) is now full

        var c = a.Connect(Echo);
        Assert.True(net.RunUntil(() => b.Engine.Counters.SynCookiesSent == 1, TimeSpan.FromSeconds(1)));
        link.Partitioned = true; // the cookie SYN-ACK is on its way; the client's handshake ACK will be lost
        Assert.True(net.RunUntil(() => a.IsConnected(c), TimeSpan.FromSeconds(1)));
        net.RunFor(TimeSpan.FromMilliseconds(5));
        link.Partitioned = false;
        Assert.Equal(0, b.Engine.PendingAccepts(l));

        // The client's data goes unanswered; at its first retransmission timeout it repeats the handshake ACK, which the
        // server verifies as a cookie: the connection is created and the data arrives.
        var data = SimApp.RandomBytes(20_000, 11);
        Assert.Equal(ServalError.None, a.Engine.Write(c, data, a.Now, out var n));
        Assert.Equal(data.Length, n);
        var s = net.AcceptOne(b, l);
        Assert.Equal(1, b.Engine.Counters.SynCookiesAccepted);
        Assert.Equal(SimApp.Sha(data), SimApp.Sha(SimApp.ReadBytes(net, b, s, data.Length, SimApp.Patience)));
    }

    [Fact]
    public void A_flood_from_ever_new_sources_keeps_the_cookie_budget_table_bounded_and_a_known_client_served()
    {
        var (net, a, b, bi) = Pair(22, EngineOptions.Default with { MaxPendingRequests = 1, SynCookiesPerSourcePerSecond = 10 });
        var l = b.Listen(Echo, backlog: 512);
        var random = new Random(12);

        // The client is a known source before the flood starts.
        var first = a.Connect(Echo);
        var spoofed = LinkAddress.Parse("10.7.0.99");
        InjectJunkSyns(b, bi, random, 1, spoofed);
        Assert.True(net.RunUntil(() => a.IsConnected(first), TimeSpan.FromSeconds(1)));

        for (var i = 0; i < 20_000; i++)
        {
            InjectJunkSyns(b, bi, random, 1, LinkAddress.FromIPv4(0x0B000000u + (uint)i));
        }

        Assert.InRange(b.Engine.CookieBudgetSourceCount, 1, 4097);
        Assert.True(b.Engine.Counters.SynCookiesSuppressed > 10_000, "the newcomers beyond the table share one budget");
        var second = a.Connect(Echo);
        Assert.True(net.RunUntil(() => a.IsConnected(second), TimeSpan.FromSeconds(1)), "a tracked source keeps its own budget");
        Assert.Equal(0, b.Engine.Counters.FlowFaults);
    }

    [Fact]
    public void Forged_cookie_acks_are_rejected_and_counted()
    {
        var options = EngineOptions.Default with { MaxPendingRequests = 1 };
        var (net, a, b, bi) = Pair(14, options);
        var l = b.Listen(Echo);
        var random = new Random(8);
        var spoofed = LinkAddress.Parse("10.7.0.99");
        InjectJunkSyns(b, bi, random, 10, spoofed);

        Assert.True(b.Engine.Counters.SynCookiesSent > 0);
        var buf = new byte[512];
        for (var i = 0; i < 10_000; i++)
        {
            var ack = new SalPacketRepr
            {
                SourceFlow = new FlowId((uint)random.Next(1, int.MaxValue)),
                DestinationFlow = new FlowId((uint)random.Next(1, int.MaxValue)),
                Protocol = SalPacketRepr.ProtocolTcp,
                Control = new SalControl(SalControlFlags.Ack, (uint)random.Next(), (uint)random.Next(), new Nonce((ulong)random.NextInt64())),
                DestinationService = Echo,
                Tcp = new TcpRepr { Flags = TcpFlags.Ack, SequenceNumber = (uint)random.Next(), AckNumber = (uint)random.Next(), Window = 1000 },
            };
            var n = ack.Emit(buf, [], new TransportPseudoHeader(spoofed, ServerAddress));
            var bytes = buf[..n];
            b.Do(e => e.Receive(bi, spoofed, ServerAddress, bytes, b.Now));
        }

        Assert.Equal(10_000, b.Engine.Counters.SynCookiesRejected);
        Assert.Equal(0, b.Engine.Counters.SynCookiesAccepted);
        Assert.Equal(0, b.Engine.PendingAccepts(l));

        // A real client still gets in with a cookie; after the cookie's lifetime its ACK would no longer verify.
        var c = a.Connect(Echo);
        Assert.True(net.RunUntil(() => a.IsConnected(c), TimeSpan.FromSeconds(3)));
        Assert.True(net.RunUntil(() => b.Engine.PendingAccepts(l) == 1, TimeSpan.FromSeconds(1)), $"accepted {b.Engine.Counters.SynCookiesAccepted} rejected {b.Engine.Counters.SynCookiesRejected} unknown {b.Engine.Counters.UnknownFlow}");
        Assert.Equal(1, b.Engine.Counters.SynCookiesAccepted);
    }

    [Fact]
    public void Released_time_wait_flows_are_compact_capped_and_still_acknowledge_a_retransmitted_fin()
    {
        var options = EngineOptions.Default with { MaxTimeWaitFlows = 100 };
        var (net, a, b, _) = Pair(15, options);
        var l = b.Listen(Echo, backlog: 512);
        for (var round = 0; round < 3; round++)
        {
            var conns = Enumerable.Range(0, 50).Select(_ => a.Connect(Echo)).ToList();
            Assert.True(net.RunUntil(() => conns.All(a.IsConnected), SimApp.Patience));
            var served = conns.Select(_ => net.AcceptOne(b, l)).ToList();

            // The server closes first (it ends in TIME-WAIT) and releases its handles at once.
            foreach (var s in served)
            {
                b.Do(e => e.Close(s, b.Now));
            }

            net.RunFor(TimeSpan.FromMilliseconds(50));
            foreach (var c in conns)
            {
                a.Do(e => e.Close(c, a.Now));
            }

            net.RunFor(TimeSpan.FromSeconds(1));
        }

        Assert.Equal(100, b.Engine.CompactTimeWaitCount);
        Assert.Equal(50, b.Engine.Counters.TimeWaitRecycled);
        // The released flows are gone from the timer heap too (stale entries would keep each whole flow reachable).
        Assert.True(b.Engine.TimerHeapCount <= 64 && a.Engine.TimerHeapCount <= 64, $"timer heap {b.Engine.TimerHeapCount} / {a.Engine.TimerHeapCount}");
        Assert.All(b.Engine.GetFlows(), f => Assert.True(f.State == SalState.TimeWait && f.Stream is null && f.Socket.IsNone));
        Assert.Equal(100, b.Engine.GetFlows().Count);
        Assert.Equal(0, a.Engine.FlowCount);
        net.RunFor(TimeSpan.FromSeconds(61));
        Assert.Equal(0, b.Engine.CompactTimeWaitCount);
        Assert.Equal(0, b.Engine.FlowCount);
    }

    [Fact]
    public void A_syn_for_a_service_no_router_knows_fails_with_service_not_found_within_a_round_trip()
    {
        var net = new SimulatedNetwork(16);
        var link = net.AddLink("lan", LinkConditions.Perfect with { Delay = TimeSpan.FromMilliseconds(1) });
        var a = net.AddHost("client");
        var r = net.AddHost("router", EngineOptions.Default with { Mode = EngineMode.ServiceRouter });
        var ai = a.Attach(link, ClientAddress);
        r.Attach(link, LinkAddress.Parse("10.7.0.254"));
        a.AddForward(ServicePrefix.Default, LinkAddress.Parse("10.7.0.254"), ai);

        var c = a.Connect(ServiceId.FromName("mistyped"));
        var started = net.Now;
        Assert.True(net.RunUntil(() => a.Events.Any(e => e.Kind == EngineEventKind.Closed && e.Socket == c), TimeSpan.FromSeconds(5)));
        Assert.Equal(ServalError.ServiceNotFound, a.Events.Single(e => e.Kind == EngineEventKind.Closed && e.Socket == c).Error);
        Assert.True(net.Now - started <= TimeSpan.FromMilliseconds(10), $"failed after {net.Now - started}, not within a round trip");
        Assert.Equal(1, r.Engine.Counters.NegativeAnswersSent);
        Assert.Equal(0, a.Engine.Counters.ControlRetransmissions);
    }

    [Fact]
    public void A_syn_to_a_host_without_a_listener_is_refused_within_a_round_trip()
    {
        var (net, a, b, _) = Pair(17);
        var c = a.Connect(Echo);
        var started = net.Now;
        Assert.True(net.RunUntil(() => a.Events.Any(e => e.Kind == EngineEventKind.Closed && e.Socket == c), TimeSpan.FromSeconds(5)));
        Assert.Equal(ServalError.ConnectionRefused, a.Events.Single(e => e.Kind == EngineEventKind.Closed && e.Socket == c).Error);
        Assert.True(net.Now - started <= TimeSpan.FromMilliseconds(10));

        // Resolved by the service table, the refused SYN is resolved once more before the connect fails.
        Assert.Equal(2, b.Engine.Counters.NegativeAnswersSent);
        Assert.Equal(1, a.Engine.Counters.RefusalRetries);
    }

    [Fact]
    public void Negative_answers_are_rate_limited_and_need_the_syn_nonce()
    {
        var (net, a, b, bi) = Pair(18, EngineOptions.Default with { NegativeAnswersPerSecond = 5 });
        var random = new Random(9);
        var spoofed = LinkAddress.Parse("10.7.0.99");
        InjectJunkSyns(b, bi, random, 20, spoofed);

        Assert.Equal(5, b.Engine.Counters.NegativeAnswersSent);
        Assert.Equal(15, b.Engine.Counters.NegativeAnswersSuppressed);

        // An answer that does not echo the SYN's nonce is ignored: the client keeps trying.
        var c = a.Connect(Echo);
        var flow = a.Engine.GetFlow(c)!;
        var forged = new SalPacketRepr
        {
            DestinationFlow = flow.LocalFlow,
            Protocol = SalPacketRepr.ProtocolTcp,
            Control = new SalControl(SalControlFlags.Rst | SalControlFlags.Ack | SalControlFlags.Nack, 0, 1, new Nonce(42)),
            ControlOnly = true,
        };
        var buf = new byte[128];
        var n = forged.Emit(buf, [], new TransportPseudoHeader(ServerAddress, ClientAddress));
        a.Do(e => e.Receive(1, ServerAddress, ClientAddress, buf.AsSpan(0, n), a.Now));
        Assert.Equal(SalState.Request, a.Engine.GetState(c));
        Assert.Equal(1, a.Engine.Counters.ResetsIgnored);
        net.RunFor(TimeSpan.FromSeconds(1.5));
        Assert.Equal(ServalError.ConnectionRefused, a.Events.Single(e => e.Kind == EngineEventKind.Closed && e.Socket == c).Error);
    }

    [Fact]
    public void A_dead_peer_fails_a_connection_with_unacknowledged_data_after_the_user_timeout()
    {
        var (net, a, b, _) = Pair(19);
        var l = b.Listen(Echo);
        var c = a.Connect(Echo);
        Assert.True(net.RunUntil(() => a.IsConnected(c), SimApp.Patience));
        var s = net.AcceptOne(b, l);
        var data = SimApp.RandomBytes(64 * 1024, 10);
        Assert.Equal(SimApp.Sha(data), SimApp.Sha(SimApp.Transfer(net, a, c, b, s, data, SimApp.Patience, closeAfter: false)));

        // The peer vanishes (every packet to it is lost) while we send.
        SetLoss(net, LinkConditions.Perfect with { Loss = 1.0 });
        var sentAt = net.Now;
        a.Do(e => e.Write(c, new byte[1000], a.Now, out _));
        Assert.True(net.RunUntil(() => a.Events.Any(e => e.Kind == EngineEventKind.Closed && e.Socket == c), TimeSpan.FromMinutes(5)));
        var failedAfter = net.Now - sentAt;
        Assert.Equal(ServalError.TimedOut, a.Events.Single(e => e.Kind == EngineEventKind.Closed && e.Socket == c).Error);
        Assert.InRange(failedAfter, TimeSpan.FromSeconds(20), TimeSpan.FromSeconds(28));
        Assert.Equal(1, a.Engine.Counters.UserTimeouts);
    }

    private static void SetLoss(SimulatedNetwork net, LinkConditions conditions)
    {
        foreach (var link in net.Links)
        {
            link.Conditions = conditions;
        }
    }
}
