using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Serval.Stack.Streams;
using Serval.Wire;

namespace Serval.Stack;

/// <summary>
/// SYN cookies adapted to the SAL (docs/engine.md, "SYN cookies"). When a listener's pending-request table is full, a
/// SYN is answered without keeping any state: everything the connection needs later is either echoed by the client's
/// handshake ACK (its flowID, nonce and verno, its TCP sequence number) or derived from a keyed hash of those values,
/// carried in the values the client must echo (our verno, our TCP ISN). The handshake ACK is verified against the hash
/// and the connection created from it.
/// </summary>
public sealed partial class Engine
{
    /// <summary>How long one cookie secret slot lasts; a cookie is valid in its slot and the next (16–32 s).</summary>
    private static readonly long CookieSlotTicks = TimeSpan.FromSeconds(16).Ticks;

    /// <summary>The MSS values a cookie can record (3 bits): the largest not above the peer's is used.</summary>
    private static readonly ushort[] CookieMss = [536, 1200, 1360, 1400, 1428, 1440, 8948, 64968];

    private byte[]? _cookieSecret;

    private byte[] CookieSecret
    {
        get
        {
            if (_cookieSecret is null)
            {
                _cookieSecret = new byte[32];
                for (var i = 0; i < 32; i += 8)
                {
                    BinaryPrimitives.WriteUInt64BigEndian(_cookieSecret.AsSpan(i), _random.NextUInt64());
                }
            }

            return _cookieSecret;
        }
    }

    /// <summary>The values a cookie determines for one (slot, client request).</summary>
    private readonly record struct CookieValues(uint Verno, Nonce Nonce, uint IsnMask, uint TimestampOffset);

    private CookieValues ComputeCookie(uint slot, FlowId local, FlowId peer, Nonce peerNonce, uint peerVerno, uint peerIsn, byte protocol, ServiceId service)
    {
        Span<byte> input = stackalloc byte[4 + 4 + 4 + 8 + 4 + 4 + 1 + ServiceId.Size];
        BinaryPrimitives.WriteUInt32BigEndian(input, slot);
        BinaryPrimitives.WriteUInt32BigEndian(input[4..], local.Value);
        BinaryPrimitives.WriteUInt32BigEndian(input[8..], peer.Value);
        BinaryPrimitives.WriteUInt64BigEndian(input[12..], peerNonce.Value);
        BinaryPrimitives.WriteUInt32BigEndian(input[20..], peerVerno);
        BinaryPrimitives.WriteUInt32BigEndian(input[24..], peerIsn);
        input[28] = protocol;
        service.WriteTo(input[29..]);
        Span<byte> hash = stackalloc byte[32];
        HMACSHA256.HashData(CookieSecret, input, hash);
        var verno = (BinaryPrimitives.ReadUInt32BigEndian(hash) & ~3u) | (slot & 3u);
        var nonce = BinaryPrimitives.ReadUInt64BigEndian(hash[4..]);
        return new CookieValues(verno, new Nonce(nonce == 0 ? 1 : nonce), BinaryPrimitives.ReadUInt32BigEndian(hash[12..]), BinaryPrimitives.ReadUInt32BigEndian(hash[16..]));
    }

    private static uint CookieSlot(TimeSpan now) => (uint)(now.Ticks / CookieSlotTicks);

    /// <summary>Stream options encoded in a cookie's ISN (9 low bits): MSS index, peer window scale (15 = none), SACK, timestamps.</summary>
    private static uint EncodeCookieOptions(in TcpRepr syn)
    {
        var mss = syn.MaxSegmentSize ?? 536;
        var index = 0;
        for (var i = CookieMss.Length - 1; i >= 0; i--)
        {
            if (CookieMss[i] <= mss)
            {
                index = i;
                break;
            }
        }

        var ws = syn.WindowScale is { } w ? Math.Min((int)w, 14) : 15;
        return (uint)index | ((uint)ws << 3) | (syn.SackPermitted ? 1u << 7 : 0) | (syn.Timestamp.HasValue ? 1u << 8 : 0);
    }

    private const int CookieBudgetSources = 4096;

    private readonly Dictionary<(LinkAddress Link, LinkAddress Origin), TokenBucket> _cookieBudgets = [];
    private TimeSpan? _cookieBudgetsPrunedAt;

    /// <summary>Sources with a cookie budget of their own (at most 4,096 plus the shared one).</summary>
    internal int CookieBudgetSourceCount => _cookieBudgets.Count;

    /// <summary>
    /// Per-source budget of cookie SYN-ACKs (<see cref="EngineOptions.SynCookiesPerSourcePerSecond"/>): a flood from one
    /// source is dropped after parsing, before the keyed hash and the answer, so the engine keeps up and other sources'
    /// SYNs are answered at once. The source is the link source address with the SYN's originator (SOURCE[0]) when it
    /// came through a router. At most 4,096 sources are tracked; beyond, new sources share one budget.
    /// </summary>
    private bool TakeCookieBudget(LinkAddress linkSource, in SalPacketRepr p, TimeSpan now)
    {
        var rate = _options.SynCookiesPerSourcePerSecond;
        if (rate <= 0)
        {
            return true;
        }

        var key = (linkSource.WithPort(0), p.SourceRoute is { } r ? r.First.WithPort(0) : default);
        if (!_cookieBudgets.ContainsKey(key))
        {
            // Forget idle sources, at most once a second (a flood of new sources must not make every SYN scan the table).
            if (_cookieBudgets.Count >= CookieBudgetSources && (_cookieBudgetsPrunedAt is not { } pruned || now - pruned >= TimeSpan.FromSeconds(1)))
            {
                _cookieBudgetsPrunedAt = now;
                foreach (var (k, v) in _cookieBudgets)
                {
                    if (now - v.LastUsed > TimeSpan.FromSeconds(1))
                    {
                        _cookieBudgets.Remove(k);
                    }
                }
            }

            if (_cookieBudgets.Count >= CookieBudgetSources)
            {
                key = default; // more sources than tracked: the newcomers share one budget
            }
        }

        ref var bucket = ref CollectionsMarshal.GetValueRefOrAddDefault(_cookieBudgets, key, out _);
        return bucket.TryTake(rate, now);
    }

    /// <summary>Answers a SYN with a stateless SYN-ACK (the pending-request table is full).</summary>
    private void SendCookieSynAck(ListenerSocket l, EngineInterface iface, LinkAddress source, in SalPacketRepr p, SalControl c, TimeSpan now)
    {
        if (!TakeCookieBudget(source, p, now))
        {
            Counters.SynCookieSuppressed();
            return;
        }

        var protocol = p.Protocol;
        if (protocol == SalPacketRepr.ProtocolTcp && !p.Tcp.Has(TcpFlags.Syn))
        {
            Counters.MalformedPacket();
            return;
        }

        var local = NewFlowId();
        var slot = CookieSlot(now);
        var isn = protocol == SalPacketRepr.ProtocolTcp ? p.Tcp.SequenceNumber : 0u;
        var cookie = ComputeCookie(slot, local, p.SourceFlow, c.Nonce, c.Verno, isn, protocol, p.DestinationService!.Value);
        var route = SynAckRoute(p.SourceRoute, iface.Address);
        var tcp = default(TcpRepr);
        if (l.Protocol == TransportProtocol.Stream)
        {
            var options = StreamOptionsFor(iface);
            tcp = StreamConnection.CreateCookieSynAck(options, p.Tcp, cookie.IsnMask ^ EncodeCookieOptions(p.Tcp), cookie.TimestampOffset, now);
        }

        var repr = new SalPacketRepr
        {
            SourceFlow = local,
            DestinationFlow = p.SourceFlow,
            Protocol = protocol,
            Control = new SalControl(SalControlFlags.Syn | SalControlFlags.Ack, cookie.Verno, c.Verno + 1, cookie.Nonce),
            SourceRoute = route,
            Tcp = tcp,
            Udp = new UdpRepr { HasChecksum = false },
        };
        var peer = p.SourceRoute is { } r ? AdoptPort(r.First, source, iface) : source;
        Send(iface.Index, iface.Address, peer, repr, []);
        l.LastCookieAt = now;
        Counters.SynCookieSent();
    }

    /// <summary>
    /// A handshake ACK for a flowID we do not have: if its listener sent cookies lately and the cookie verifies, creates
    /// the connection. Returns false when it is not a valid cookie ACK (the caller treats it as an unknown flow).
    /// </summary>
    private bool TryCookieAck(EngineInterface iface, LinkAddress source, in SalPacketRepr p, ReadOnlySpan<byte> payload, TimeSpan now)
    {
        if (p.Control is not { } c || (c.Flags & ~SalControlFlags.Reserved) != SalControlFlags.Ack || p.DestinationService is not { } service
            || !Services.TryLookupDemux(service, p.Protocol, out _, out var rule)
            || !_sockets.TryGetValue(rule.Target.Socket, out var s) || s is not ListenerSocket l || l.Released || (byte)l.Protocol != p.Protocol
            || l.LastCookieAt is not { } last || now - last > TimeSpan.FromTicks(2 * CookieSlotTicks))
        {
            return false;
        }

        var verno = c.Ackno - 1;
        var current = CookieSlot(now);
        var slot = current - ((current - verno) & 3u);
        var stream = l.Protocol == TransportProtocol.Stream;
        if (current - slot > 1 || (stream && (p.ControlOnly || p.Protocol != SalPacketRepr.ProtocolTcp || !p.Tcp.Has(TcpFlags.Ack) || p.Tcp.Has(TcpFlags.Syn | TcpFlags.Rst))))
        {
            Counters.SynCookieRejected();
            return false;
        }

        var peerIsn = stream ? p.Tcp.SequenceNumber - 1 : 0u;
        var cookie = ComputeCookie(slot, p.DestinationFlow, p.SourceFlow, c.Nonce, c.Verno - 1, peerIsn, p.Protocol, service);
        var optionBits = stream ? (p.Tcp.AckNumber - 1) ^ cookie.IsnMask : 0u;
        if (cookie.Verno != verno || optionBits >> 9 != 0 || (optionBits & 7) >= CookieMss.Length)
        {
            Counters.SynCookieRejected();
            return false;
        }

        if (l.AcceptQueue.Count >= l.Backlog)
        {
            Counters.SynDroppedPacket();
            return true; // A valid cookie, but no room: drop it like a full accept queue drops any handshake ACK.
        }

        var flow = new Flow(NewHandle(), l.Protocol, p.DestinationFlow, cookie.Nonce, NewControl(verno))
        {
            State = SalState.Respond,
            Service = service,
            Listener = l,
        };
        flow.UsePeer(p.SourceFlow, c.Nonce);
        flow.UsePath(iface.Index, iface.Address);
        flow.UsePeerAddress(source);
        flow.Control.OnSynSent();
        flow.Control.OnPeerVerno(c.Verno - 1); // The handshake ACK carries the client's verno V + 1.
        if (stream)
        {
            var ws = (int)((optionBits >> 3) & 15);
            var syn = new TcpRepr
            {
                SequenceNumber = peerIsn,
                Flags = TcpFlags.Syn,
                Window = p.Tcp.Window,
                MaxSegmentSize = CookieMss[optionBits & 7],
                WindowScale = ws == 15 ? null : (byte)ws,
                SackPermitted = (optionBits & (1u << 7)) != 0,
                Timestamp = (optionBits & (1u << 8)) != 0 ? new TcpTimestamp(p.Tcp.Timestamp?.Value ?? 0, 0) : null,
            };
            var st = new StreamConnection(StreamOptionsFor(iface), _random, now, p.Tcp.AckNumber - 1, cookie.TimestampOffset);
            if (!st.EstablishFromCookie(syn, p.Tcp, payload, now))
            {
                Counters.SynCookieRejected();
                return true;
            }

            flow.Stream = st;
        }

        _flows.Add(flow.LocalFlow.Value, flow);
        _sockets.Add(flow.Handle.Value, flow);
        _faultFlow = flow;
        Counters.SynCookieAccepted();
        CompleteHandshake(flow, l, p, payload, now);
        return true;
    }
}
