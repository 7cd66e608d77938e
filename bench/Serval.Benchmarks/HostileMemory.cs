using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Benchmarks;

/// <summary>
/// Two engines wired back to back in memory on one thread (as in <see cref="StreamSimBenchmark"/>), with a view of the
/// TCP headers on the wire (for the spoofing attacker's best guesses of the windows).
/// </summary>
internal sealed class MemNet
{
    public static readonly ServiceId Service = ServiceId.FromName("bench.hostile");
    public static readonly LinkAddress AddrA = LinkAddress.Parse("10.0.0.1");
    public static readonly LinkAddress AddrB = LinkAddress.Parse("10.0.0.2");

    public MemNet(EngineOptions options, ulong seed)
    {
        A = new Engine(options, new SeededRandomSource(seed));
        B = new Engine(options, new SeededRandomSource(seed + 1));
        Ai = A.AddInterface(new InterfaceConfig { Name = "mem", Address = AddrA, Mtu = 1500 });
        Bi = B.AddInterface(new InterfaceConfig { Name = "mem", Address = AddrB, Mtu = 1500 });
        A.SetInterfaceUp(Ai, true, Now);
        B.SetInterfaceUp(Bi, true, Now);
        A.Services.Add(ServicePrefix.Default, ServiceTarget.Forward(AddrB, Ai));
        ToB = new MemoryWire(B, Bi, observeTcp: true);
        ToA = new MemoryWire(A, Ai, observeTcp: true);
        B.Listen(ServicePrefix.Exact(Service), TransportProtocol.Stream, 4096, Now, out var listener);
        Listener = listener;
    }

    public Engine A { get; }

    public Engine B { get; }

    public int Ai { get; }

    public int Bi { get; }

    public SocketHandle Listener { get; }

    public MemoryWire ToB { get; }

    public MemoryWire ToA { get; }

    public TimeSpan Now { get; private set; } = TimeSpan.FromSeconds(1);

    public void Step(TimeSpan dt)
    {
        Now += dt;
        A.Poll(Now, ToB);
        ToB.Deliver(Now);
        B.Poll(Now, ToA);
        ToA.Deliver(Now);
        while (A.TryGetEvent(out _))
        {
        }

        while (B.TryGetEvent(out _))
        {
        }
    }

    /// <summary>
    /// <see cref="Step(TimeSpan)"/>, adding the seconds spent by A (its poll, what it receives, its events) to
    /// <paramref name="parts"/>[1] and by B to <paramref name="parts"/>[2].
    /// </summary>
    public void Step(TimeSpan dt, double[] parts)
    {
        Now += dt;
        var t = Stopwatch.GetTimestamp();
        A.Poll(Now, ToB);
        parts[1] += Stopwatch.GetElapsedTime(t).TotalSeconds;
        t = Stopwatch.GetTimestamp();
        ToB.Deliver(Now);
        B.Poll(Now, ToA);
        while (B.TryGetEvent(out _))
        {
        }

        parts[2] += Stopwatch.GetElapsedTime(t).TotalSeconds;
        t = Stopwatch.GetTimestamp();
        ToA.Deliver(Now);
        while (A.TryGetEvent(out _))
        {
        }

        parts[1] += Stopwatch.GetElapsedTime(t).TotalSeconds;
    }

    /// <summary>A new connection from A to B's listener, accepted; false if it did not come up.</summary>
    public bool Establish(out SocketHandle client, out SocketHandle server)
    {
        A.Connect(Service, TransportProtocol.Stream, Now, out client);
        server = default;
        for (var i = 0; i < 1000; i++)
        {
            Step(TimeSpan.FromMilliseconds(1));
            if (server.IsNone)
            {
                B.Accept(Listener, out server);
            }

            if (!server.IsNone && A.GetState(client) == SalState.Connected && B.GetState(server) == SalState.Connected)
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>The kinds of spoofed packets, all with the right flowIDs of an established flow.</summary>
internal enum SpoofKind
{
    TransportRst,
    TransportFin,
    SalRst,
    SalFin,
    RsynWrongNonce,
    TcpSynInWindow,
    DataInWindow,
    DataOutOfWindow,
    ForgedAck,
}

/// <summary>
/// Part 2 of <c>bench/run.sh hostile</c>: an off-path attacker who knows an established flow's flowIDs (not its
/// nonces; its sequence numbers only as far as the windows go) sends spoofed packets of one kind into a pair of engines
/// in memory while a legitimate transfer runs. A spoof is <em>accepted</em> when it changes what the application sees:
/// foreign bytes delivered, the stream truncated (end of stream or a peer FIN before the sender finished), the flow
/// reset or closed, the peer address moved (RSYN), or the sender discarding data the receiver never got (forged ACK) —
/// after each acceptance the flow is torn down and a new one established.
/// </summary>
internal static class SpoofBenchmark
{
    private const int PatternLength = 1_000_003;
    private const int SpoofsPerStep = 16;
    private const int WritePerStep = 4096;

    public sealed record KindResult(SpoofKind Kind, long Sent, long Accepted, long LegitBytes, int Flows, string? FirstAcceptance, double Seconds, long Faults);

    public static List<KindResult> Run(long perKind, TimeSpan limitPerKind)
    {
        var results = new List<KindResult>();
        var pattern = new byte[PatternLength];
        new Random(77).NextBytes(pattern);
        foreach (var kind in Enum.GetValues<SpoofKind>())
        {
            results.Add(RunKind(kind, perKind, limitPerKind, pattern));
            var r = results[^1];
            Console.Error.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"  spoof {Name(kind),-18} sent={r.Sent} accepted={r.Accepted} legit_bytes={r.LegitBytes} flows={r.Flows} faults={r.Faults} ({r.Seconds:F1} s){(r.FirstAcceptance is null ? string.Empty : " first: " + r.FirstAcceptance)}"));
        }

        return results;
    }

    public static string Name(SpoofKind kind) => kind switch
    {
        SpoofKind.TransportRst => "tcp_rst",
        SpoofKind.TransportFin => "tcp_fin",
        SpoofKind.SalRst => "sal_rst",
        SpoofKind.SalFin => "sal_fin",
        SpoofKind.RsynWrongNonce => "rsyn_wrong_nonce",
        SpoofKind.TcpSynInWindow => "tcp_syn_in_window",
        SpoofKind.DataInWindow => "data_in_window",
        SpoofKind.DataOutOfWindow => "data_out_of_window",
        SpoofKind.ForgedAck => "forged_ack",
        _ => kind.ToString(),
    };

    private static KindResult RunKind(SpoofKind kind, long total, TimeSpan limit, byte[] pattern)
    {
        var net = new MemNet(EngineOptions.Default, 1000 + (ulong)kind * 10);
        var random = new Random(500 + (int)kind);
        var attacker = LinkAddress.Parse("10.0.0.66");
        var buf = new byte[2048];
        var payload = new byte[100];
        var readBuf = new byte[64 * 1024];
        var stopwatch = Stopwatch.StartNew();
        long sent = 0, accepted = 0, legitBytes = 0;
        var flows = 0;
        string? first = null;

        SocketHandle a = default, b = default;
        long written = 0, read = 0;
        uint aIss = 0, bIss = 0;
        NewFlow();

        while (sent < total && stopwatch.Elapsed < limit)
        {
            // The legitimate transfer: A writes the pattern, B reads and checks every byte.
            if (net.A.SendBufferFree(a) > 0)
            {
                var offset = (int)(written % PatternLength);
                net.A.Write(a, pattern.AsSpan(offset, Math.Min(WritePerStep, PatternLength - offset)), net.Now, out var n);
                written += n;
            }

            net.Step(TimeSpan.FromTicks(100));
            var violation = ReadAndCheck();
            violation ??= CheckStates();
            if (violation is not null)
            {
                Accept(violation);
                continue;
            }

            for (var j = 0; j < SpoofsPerStep && sent < total; j++)
            {
                var before = net.B.Available(b);
                var ackedBefore = kind == SpoofKind.ForgedAck ? Acked() : 0;
                var (target, iface, src, dst, packet) = Build();
                target.Receive(iface, src, dst, packet, net.Now);
                sent++;
                violation = CheckStates();
                if (violation is null && net.B.Available(b) > before)
                {
                    violation = $"{net.B.Available(b) - before} spoofed bytes made readable";
                }

                if (violation is null && kind == SpoofKind.RsynWrongNonce && net.B.GetFlow(b)?.PeerAddress != MemNet.AddrA)
                {
                    violation = "peer address moved to the attacker";
                }

                if (violation is null && kind == SpoofKind.ForgedAck)
                {
                    var acked = Acked();
                    if (acked > ackedBefore && acked > read + net.B.Available(b))
                    {
                        violation = $"sender dropped {acked - (read + net.B.Available(b))} bytes the receiver never got";
                    }
                }

                if (violation is not null)
                {
                    Accept(violation);
                    break;
                }
            }
        }

        return new KindResult(kind, sent, accepted, legitBytes + read, flows, first, stopwatch.Elapsed.TotalSeconds, net.A.Counters.FlowFaults + net.B.Counters.FlowFaults);

        long Acked() => net.A.GetFlow(a)?.Stream?.BytesAcked ?? 0;

        void Accept(string violation)
        {
            accepted++;
            first ??= violation;
            legitBytes += read;
            net.A.Abort(a, net.Now);
            net.B.Abort(b, net.Now);
            for (var i = 0; i < 10; i++)
            {
                net.Step(TimeSpan.FromMilliseconds(1));
            }

            NewFlow();
        }

        void NewFlow()
        {
            if (!net.Establish(out a, out b))
            {
                throw new InvalidOperationException("spoof benchmark: a legitimate flow did not come up");
            }

            flows++;
            written = 0;
            read = 0;
            aIss = net.ToB.SynSequence;
            bIss = net.ToA.SynSequence;
        }

        string? CheckStates()
        {
            if (net.B.GetState(b) != SalState.Connected || net.B.GetError(b) != ServalError.None)
            {
                return $"receiver flow {net.B.GetState(b)} ({net.B.GetError(b)})";
            }

            if (net.A.GetState(a) != SalState.Connected || net.A.GetError(a) != ServalError.None)
            {
                return $"sender flow {net.A.GetState(a)} ({net.A.GetError(a)})";
            }

            return null;
        }

        string? ReadAndCheck()
        {
            while (net.B.Read(b, readBuf, net.Now, out var r, out var completed) == ServalError.None)
            {
                if (r > 0)
                {
                    var offset = (int)(read % PatternLength);
                    var firstPart = Math.Min(r, PatternLength - offset);
                    if (!readBuf.AsSpan(0, firstPart).SequenceEqual(pattern.AsSpan(offset, firstPart)) ||
                        !readBuf.AsSpan(firstPart, r - firstPart).SequenceEqual(pattern.AsSpan(0, r - firstPart)))
                    {
                        return $"foreign bytes delivered near offset {read}";
                    }

                    read += r;
                }

                if (completed)
                {
                    return $"stream truncated at {read} of {written} bytes";
                }

                if (r == 0)
                {
                    break;
                }
            }

            return null;
        }

        (Engine Target, int Iface, LinkAddress Src, LinkAddress Dst, byte[] Packet) Build()
        {
            var toB = kind != SpoofKind.ForgedAck;
            var (src, dst) = toB ? (MemNet.AddrA, MemNet.AddrB) : (MemNet.AddrB, MemNet.AddrA);
            var bFlow = net.B.GetFlow(b)!;
            var (srcFlow, dstFlow) = toB ? (bFlow.PeerFlow, bFlow.LocalFlow) : (bFlow.LocalFlow, bFlow.PeerFlow);

            // The attacker's best case short of being on the path: B's next expected sequence number and a window
            // guess that is never larger than the real one (the unscaled window field).
            var bRcvNxt = unchecked(aIss + 1 + (uint)(read + net.B.Available(b)));
            var bWindow = Math.Max(1, (int)net.ToA.LastWindow);
            var aRcvNxt = unchecked(bIss + 1);
            var aWindow = Math.Max(1, (int)net.ToB.LastWindow);
            uint InWindowB() => unchecked(bRcvNxt + (uint)random.Next(bWindow));
            var nonce = new Nonce((ulong)random.NextInt64() ^ ((ulong)random.Next() << 63));
            var control = kind switch
            {
                SpoofKind.SalRst => new SalControl(SalControlFlags.Rst, (uint)random.Next(), (uint)random.Next(), nonce),
                SpoofKind.SalFin => new SalControl(SalControlFlags.Fin | SalControlFlags.Ack, (uint)random.Next(), (uint)random.Next(), nonce),
                SpoofKind.RsynWrongNonce => new SalControl(SalControlFlags.Rsyn, (uint)random.Next(), (uint)random.Next(), nonce),
                _ => (SalControl?)null,
            };
            var ts = new TcpTimestamp((uint)random.Next(), (uint)random.Next());
            var tcp = kind switch
            {
                SpoofKind.TransportRst => new TcpRepr { Flags = TcpFlags.Rst, SequenceNumber = InWindowB() },
                SpoofKind.TransportFin => new TcpRepr { Flags = TcpFlags.Fin | TcpFlags.Ack, SequenceNumber = InWindowB(), AckNumber = (uint)random.Next(), Window = 65535, Timestamp = ts },
                SpoofKind.TcpSynInWindow => new TcpRepr { Flags = TcpFlags.Syn, SequenceNumber = InWindowB(), Window = 65535, MaxSegmentSize = 1400 },
                SpoofKind.DataInWindow => new TcpRepr { Flags = TcpFlags.Ack | TcpFlags.Psh, SequenceNumber = InWindowB(), AckNumber = (uint)random.Next(), Window = 65535, Timestamp = ts },
                SpoofKind.DataOutOfWindow => new TcpRepr
                {
                    Flags = TcpFlags.Ack | TcpFlags.Psh,
                    SequenceNumber = unchecked(bRcvNxt + (uint)random.NextInt64(16L << 20, (1L << 32) - (16L << 20))),
                    AckNumber = (uint)random.Next(),
                    Window = 65535,
                    Timestamp = ts,
                },
                SpoofKind.ForgedAck => new TcpRepr
                {
                    Flags = TcpFlags.Ack,
                    SequenceNumber = unchecked(aRcvNxt + (uint)random.Next(aWindow)),
                    AckNumber = unchecked((uint)random.NextInt64(1L << 32)),
                    Window = (ushort)random.Next(65536),
                    Timestamp = ts,
                },
                _ => default,
            };
            var repr = new SalPacketRepr
            {
                SourceFlow = srcFlow,
                DestinationFlow = dstFlow,
                Protocol = SalPacketRepr.ProtocolTcp,
                Control = control,
                ControlOnly = control is not null,
                Tcp = tcp,
            };
            var data = kind is SpoofKind.DataInWindow or SpoofKind.DataOutOfWindow ? payload : [];
            random.NextBytes(payload);
            var from = kind == SpoofKind.RsynWrongNonce ? attacker : src;
            var n = repr.Emit(buf, data, TransportPseudoHeader.ForLink(from, dst));
            return toB ? (net.B, net.Bi, from, dst, buf[..n]) : (net.A, net.Ai, from, dst, buf[..n]);
        }
    }
}

/// <summary>
/// Part 3 of <c>bench/run.sh hostile</c>: the managed memory a released TIME-WAIT flow costs. N connections between
/// two engines in memory, each carrying a few bytes, closed by the server first with the application releasing its
/// handles at once; the managed heap after a full blocking collection, before and after, divided by N.
/// </summary>
internal static class TimeWaitBenchmark
{
    public static (double BytesPerFlow, int Compact, long Faults) Run(int flows)
    {
        // Warm-up on a throw-away pair (JIT, pools), then the measured pair.
        Cycle(new MemNet(EngineOptions.Default, 7), Math.Min(flows, 500), out _);
        var net = new MemNet(EngineOptions.Default, 9);
        var before = HostileBenchmark.Heap();
        if (!Cycle(net, flows, out var why))
        {
            throw new InvalidOperationException("time-wait benchmark: " + why);
        }

        net.ToA.TrimPool();
        net.ToB.TrimPool();
        var after = HostileBenchmark.Heap();
        var perFlow = (double)(after - before) / flows;
        Console.Error.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"  time-wait: {flows} flows closed by the server; heap {before} -> {after} bytes ({perFlow:F1} bytes/flow); server CompactTimeWaitCount={net.B.CompactTimeWaitCount} FlowCount={net.B.FlowCount}, client FlowCount={net.A.FlowCount}, virtual time {net.Now.TotalSeconds:F2} s"));
        var compact = net.B.CompactTimeWaitCount;
        var faults = net.A.Counters.FlowFaults + net.B.Counters.FlowFaults;
        GC.KeepAlive(net);
        return (perFlow, compact, faults);
    }

    private static bool Cycle(MemNet net, int flows, out string why)
    {
        const int Batch = 500;
        var message = new byte[5];
        var buf = new byte[64];
        var done = 0;
        var clients = new List<SocketHandle>(Batch);
        var servers = new List<SocketHandle>(Batch);
        while (done < flows)
        {
            var count = Math.Min(Batch, flows - done);
            clients.Clear();
            servers.Clear();
            for (var i = 0; i < count; i++)
            {
                net.A.Connect(MemNet.Service, TransportProtocol.Stream, net.Now, out var c);
                clients.Add(c);
            }

            // Handshakes; each client writes a few bytes; the server accepts and reads them.
            var read = new int[count];
            for (var step = 0; step < 5000 && (servers.Count < count || read.Any(r => r < message.Length)); step++)
            {
                net.Step(TimeSpan.FromMilliseconds(1));
                while (servers.Count < count && net.B.Accept(net.Listener, out var s) == ServalError.None && !s.IsNone)
                {
                    servers.Add(s);
                }

                foreach (var c in clients)
                {
                    if (net.A.GetState(c) == SalState.Connected && net.A.Available(c) == 0 && net.A.SendBufferFree(c) > 0 && net.A.GetFlow(c)?.Stream?.BytesSent == 0)
                    {
                        net.A.Write(c, message, net.Now, out _);
                    }
                }

                for (var i = 0; i < servers.Count; i++)
                {
                    while (net.B.Read(servers[i], buf, net.Now, out var r, out _) == ServalError.None && r > 0)
                    {
                        read[i] += r;
                    }
                }
            }

            if (servers.Count < count || read.Any(r => r < message.Length))
            {
                why = $"batch at {done}: {servers.Count} of {count} accepted, {read.Count(r => r >= message.Length)} delivered";
                return false;
            }

            // The server closes first and releases its handles; the clients close when they read end of stream.
            foreach (var s in servers)
            {
                net.B.Close(s, net.Now);
            }

            var open = new HashSet<SocketHandle>(clients);
            var target = net.B.CompactTimeWaitCount + count;
            for (var step = 0; step < 5000 && (open.Count > 0 || net.B.CompactTimeWaitCount < target || net.A.FlowCount > 0); step++)
            {
                net.Step(TimeSpan.FromMilliseconds(1));
                foreach (var c in clients)
                {
                    if (open.Contains(c) && net.A.Read(c, buf, net.Now, out _, out var completed) is var e && (completed || e != ServalError.None))
                    {
                        net.A.Close(c, net.Now);
                        open.Remove(c);
                    }
                }
            }

            if (net.B.CompactTimeWaitCount < target || net.A.FlowCount > 0)
            {
                why = $"batch at {done}: server compact TIME-WAIT {net.B.CompactTimeWaitCount} of {target}, client flows {net.A.FlowCount}";
                return false;
            }

            done += count;
        }

        why = string.Empty;
        return true;
    }
}
