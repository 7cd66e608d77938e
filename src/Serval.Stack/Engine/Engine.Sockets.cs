using Serval.Stack.Services;
using Serval.Stack.Streams;
using Serval.Wire;

namespace Serval.Stack;

public sealed partial class Engine
{
    /// <summary>Stream transport settings for new connections (the MSS is derived per path).</summary>
    public StreamOptions StreamOptions { get; set; } = StreamOptions.Default;

    /// <summary>
    /// Binds a listening socket to <paramref name="prefix"/>: installs its DEMUX rule (priority 32000, weight 1024)
    /// and emits <see cref="EngineEventKind.ServiceRegistered"/>. A stream and a datagram listener may share a prefix.
    /// </summary>
    public ServalError Listen(ServicePrefix prefix, TransportProtocol protocol, int backlog, TimeSpan now, out SocketHandle handle) =>
        Listen(prefix, protocol, backlog, now, out handle, null);

    /// <summary>
    /// Binds a listening socket as <see cref="Listen(ServicePrefix, TransportProtocol, int, TimeSpan, out SocketHandle)"/>
    /// does; with <paramref name="key"/>, SYNs that offer a key exchange for the key's self-certifying serviceID are
    /// answered with a proof of ownership (docs/security.md). The key's serviceID must be within the prefix.
    /// </summary>
    public ServalError Listen(ServicePrefix prefix, TransportProtocol protocol, int backlog, TimeSpan now, out SocketHandle handle, ServiceKey? key)
    {
        _now = now;
        handle = SocketHandle.None;
        if (backlog < 1 || (prefix.Length == 0 && prefix.Id.IsZero) || !Enum.IsDefined(protocol) || (key is not null && !prefix.Contains(key.ServiceId)))
        {
            return ServalError.InvalidArgument;
        }

        if (HasDemuxFor(prefix, protocol))
        {
            return ServalError.AddressInUse;
        }

        var h = NewHandle();
        var r = Services.Add(prefix, ServiceTarget.Demux(h.Value, (byte)protocol), ServiceTable.SocketPriority, ServiceTable.SocketWeight, now: now);
        if (r != ServiceTableResult.Ok)
        {
            return r == ServiceTableResult.AlreadyExists || HasDemuxFor(prefix, protocol) ? ServalError.AddressInUse : ServalError.InvalidArgument;
        }

        var l = new ListenerSocket(h, protocol, prefix, backlog) { Key = key };
        _sockets.Add(h.Value, l);
        handle = h;
        Emit(new EngineEvent(EngineEventKind.ServiceRegistered, h, prefix, protocol));
        return ServalError.None;
    }

    /// <summary>
    /// Whether a socket of <paramref name="protocol"/> binds exactly <paramref name="prefix"/> (a DEMUX rule for it):
    /// <see cref="Listen(ServicePrefix, TransportProtocol, int, TimeSpan, out SocketHandle)"/> and <see cref="BindDatagram"/> then answer <see cref="ServalError.AddressInUse"/>.
    /// </summary>
    private bool HasDemuxFor(ServicePrefix prefix, TransportProtocol protocol) =>
        Services.TryGetExact(prefix, out var e) && e.Rules.Any(r => r.Target.Type == ServiceTargetType.Demux && r.Target.Protocol == (byte)protocol);

    /// <summary>Takes an established connection from a listener's accept queue.</summary>
    public ServalError Accept(SocketHandle listener, out SocketHandle connection)
    {
        connection = SocketHandle.None;
        if (!_sockets.TryGetValue(listener.Value, out var s) || s is not ListenerSocket l || l.Released)
        {
            return ServalError.BadHandle;
        }

        while (l.AcceptQueue.TryDequeue(out var flow))
        {
            if (flow.State == SalState.Closed)
            {
                flow.LeaveAcceptQueue(accepted: false);
                continue;
            }

            flow.LeaveAcceptQueue(accepted: true);
            connection = flow.Handle;
            if (l.Deferred.Count > 0)
            {
                PromoteDeferred(l, _now);
            }

            return ServalError.None;
        }

        return ServalError.WouldBlock;
    }

    /// <summary>Number of connections waiting in a listener's accept queue.</summary>
    public int PendingAccepts(SocketHandle listener) =>
        _sockets.TryGetValue(listener.Value, out var s) && s is ListenerSocket l ? l.AcceptQueue.Count : 0;

    /// <summary>
    /// Opens a connection to <paramref name="service"/>: sends the SYN according to the service table (or straight
    /// to <paramref name="advisoryAddress"/> when given). Completion is reported by <see cref="EngineEventKind.Connected"/>
    /// or <see cref="EngineEventKind.Closed"/> with an error.
    /// </summary>
    public ServalError Connect(ServiceId service, TransportProtocol protocol, TimeSpan now, out SocketHandle handle, LinkAddress advisoryAddress = default) =>
        Connect(service, protocol, now, out handle, advisoryAddress, ConnectSecurity.None);

    /// <summary>
    /// Opens a connection as <see cref="Connect(ServiceId, TransportProtocol, TimeSpan, out SocketHandle, LinkAddress)"/>
    /// does; with <paramref name="security"/> offering a protection, the SYN carries a key exchange and the flow's
    /// packets are authenticated (and encrypted) once the server accepts it (docs/security.md).
    /// </summary>
    public ServalError Connect(ServiceId service, TransportProtocol protocol, TimeSpan now, out SocketHandle handle, LinkAddress advisoryAddress, ConnectSecurity security)
    {
        _now = now;
        handle = SocketHandle.None;
        if (!Enum.IsDefined(protocol) || service.IsZero)
        {
            return ServalError.InvalidArgument;
        }

        var flow = new Flow(NewHandle(), protocol, NewFlowId(), NewNonce(), NewControl(_random.NextUInt32()))
        {
            Service = service,
            AdvisoryAddress = advisoryAddress,
            State = SalState.Request,
            Security = security.Offers ? FlowSecurity.Create(security.Level, security.MustNegotiate, security.RequireOwnershipProof, _random) : null,
        };
        if (protocol == TransportProtocol.Stream)
        {
            flow.Stream = new StreamConnection(StreamOptionsFor(LikelyInterface(service, advisoryAddress), security.Offers), _random, now);
        }

        _flows.Add(flow.LocalFlow.Value, flow);
        _sockets.Add(flow.Handle.Value, flow);
        handle = flow.Handle;

        // SYN consumes verno = ISS.
        flow.Control.OnSynSent();
        flow.Control.Queue(SalControlFlags.Syn, flow.Control.Iss, now);
        var result = SendSyn(flow, now);
        if (result != ServalError.None)
        {
            Fail(flow, result, now);
            return ServalError.None; // Reported through the Closed event and the socket's error.
        }

        Schedule(flow);
        return ServalError.None;
    }

    /// <summary>The state of a connection (or <see cref="SalState.Listen"/> for listeners, <see cref="SalState.Init"/> for datagram sockets).</summary>
    public SalState GetState(SocketHandle handle) => _sockets.TryGetValue(handle.Value, out var s)
        ? s switch
        {
            Flow f => f.State,
            ListenerSocket => SalState.Listen,
            _ => SalState.Init,
        }
        : SalState.Closed;

    /// <summary>The error that ended a connection, or <see cref="ServalError.None"/>.</summary>
    public ServalError GetError(SocketHandle handle) =>
        _sockets.TryGetValue(handle.Value, out var s) ? (s as Flow)?.Error ?? ServalError.None : ServalError.BadHandle;

    /// <summary>The serviceID a connection was made to.</summary>
    public ServiceId GetService(SocketHandle handle) =>
        _sockets.TryGetValue(handle.Value, out var s) && s is Flow f ? f.Service : default;

    /// <summary>
    /// Queues <paramref name="data"/> for sending: on a stream, as much as the send buffer takes (the count is returned
    /// in <paramref name="written"/>; 0 means full, wait for <see cref="EngineEventKind.Writable"/>); on a connected
    /// datagram flow, one datagram.
    /// </summary>
    public ServalError Write(SocketHandle handle, ReadOnlySpan<byte> data, TimeSpan now, out int written)
    {
        try
        {
            return WriteCore(handle, data, now, out written);
        }
        catch (Exception e)
        {
            written = 0;
            return OnCallFault(handle, "write", e, now);
        }
    }

    private ServalError WriteCore(SocketHandle handle, ReadOnlySpan<byte> data, TimeSpan now, out int written)
    {
        _now = now;
        written = 0;
        if (!_sockets.TryGetValue(handle.Value, out var s) || s is not Flow flow || flow.Released)
        {
            return ServalError.BadHandle;
        }

        if (flow.Error != ServalError.None)
        {
            return flow.Error;
        }

        if (flow.Protocol == TransportProtocol.Stream)
        {
            if (flow.State is SalState.Request or SalState.Respond)
            {
                // Data written before establishment waits in the send buffer.
                written = flow.Stream!.Write(data);
                return ServalError.None;
            }

            if (!flow.IsSynchronized || flow.CloseRequested || flow.Stream!.WritesCompleted)
            {
                return ServalError.InvalidState;
            }

            written = flow.Stream.Write(data);
            MarkTransmit(flow);
            return ServalError.None;
        }

        if (data.IsEmpty || data.Length > Math.Min(_options.MaxDatagramSize, PathPayloadLimit(flow)))
        {
            return ServalError.InvalidArgument;
        }

        if (flow.State is not (SalState.Connected or SalState.CloseWait) || flow.CloseRequested)
        {
            return ServalError.InvalidState;
        }

        var repr = new SalPacketRepr
        {
            SourceFlow = flow.LocalFlow,
            DestinationFlow = flow.PeerFlow,
            Protocol = SalPacketRepr.ProtocolUdp,
            Udp = new UdpRepr { HasChecksum = true },
        };
        SendOnFlow(flow, repr, data);
        written = data.Length;
        return ServalError.None;
    }

    private int PathPayloadLimit(Flow flow) =>
        (uint)flow.Interface < (uint)_interfaces.Count
            ? _interfaces[flow.Interface].Mtu - SalHeaderView.BaseLength - UdpRepr.HeaderLength - (flow.Security is null ? 0 : SalPacketAuth.Length)
            : _options.MaxDatagramSize;

    /// <summary>
    /// Reads from a connection: stream bytes in order, or one datagram of a connected datagram flow (truncated to the
    /// buffer). <paramref name="read"/> 0 with <see cref="ServalError.None"/> and <paramref name="completed"/> true
    /// means end of stream (a stream: the peer's transport FIN, every byte before it read — its SAL FIN is not waited
    /// for; a datagram flow: the peer's SAL FIN); 0 with <paramref name="completed"/> false means nothing yet.
    /// </summary>
    public ServalError Read(SocketHandle handle, Span<byte> buffer, TimeSpan now, out int read, out bool completed)
    {
        try
        {
            return ReadCore(handle, buffer, now, out read, out completed);
        }
        catch (Exception e)
        {
            read = 0;
            completed = false;
            return OnCallFault(handle, "read", e, now);
        }
    }

    private ServalError ReadCore(SocketHandle handle, Span<byte> buffer, TimeSpan now, out int read, out bool completed)
    {
        _now = now;
        read = 0;
        completed = false;
        if (!_sockets.TryGetValue(handle.Value, out var s) || s is not Flow flow || flow.Released)
        {
            return ServalError.BadHandle;
        }

        if (flow.Protocol == TransportProtocol.Stream)
        {
            var st = flow.Stream!;
            var before = st.BytesAvailable;
            read = st.Read(buffer);
            completed = read == 0 && st.ReadsCompleted;
            if (read > 0 && before >= st.Options.ReceiveBufferSize / 2)
            {
                MarkTransmit(flow); // window update
            }
            else if (read > 0)
            {
                MarkTransmit(flow);
            }

            if (read == 0 && flow.Error != ServalError.None)
            {
                // A failed flow never reads as end of stream, even when the peer's FIN came before the reset.
                completed = false;
                return flow.Error;
            }

            return ServalError.None;
        }

        if (flow.TryDequeueDatagram(out var d))
        {
            read = Math.Min(d.Length, buffer.Length);
            d.AsSpan(0, read).CopyTo(buffer);
            return ServalError.None;
        }

        completed = flow.PeerClosed || flow.State is SalState.Closed;
        return flow.Error;
    }

    /// <summary>Bytes (stream) or datagrams (datagram flow) ready to read.</summary>
    public int Available(SocketHandle handle) => _sockets.TryGetValue(handle.Value, out var s) && s is Flow f
        ? f.Stream?.BytesAvailable ?? f.DatagramCount
        : s is DatagramSocket d ? d.Queue.Count : 0;

    /// <summary>Free space in a stream's send buffer.</summary>
    public int SendBufferFree(SocketHandle handle) =>
        _sockets.TryGetValue(handle.Value, out var s) && s is Flow { Stream: { } st } ? st.SendBufferFree : 0;

    /// <summary>
    /// Half-close: a stream sends its transport FIN after the queued data, and the SAL FIN as soon as that is
    /// acknowledged (FIN-WAIT-1, or LAST-ACK when the peer closed first); the connection stays open for reading until the
    /// peer's FIN. A later <see cref="Close"/> sends nothing more (an RST if received data is left unread).
    /// </summary>
    public ServalError CompleteWrites(SocketHandle handle, TimeSpan now)
    {
        try
        {
            return CompleteWritesCore(handle, now);
        }
        catch (Exception e)
        {
            return OnCallFault(handle, "complete-writes", e, now);
        }
    }

    private ServalError CompleteWritesCore(SocketHandle handle, TimeSpan now)
    {
        _now = now;
        if (!_sockets.TryGetValue(handle.Value, out var s) || s is not Flow flow || flow.Released)
        {
            return ServalError.BadHandle;
        }

        if (flow.Stream is null)
        {
            return ServalError.InvalidState;
        }

        flow.Stream.CompleteWrites();
        MarkTransmit(flow);
        return ServalError.None;
    }

    /// <summary>
    /// Closes a socket and releases its handle. Listeners and datagram sockets remove their DEMUX rule
    /// (<see cref="EngineEventKind.ServiceUnregistered"/>). A connection closes gracefully (transport FIN, then SAL
    /// FIN once that is acknowledged, docs/protocol.md §6 — both may already be out after <see cref="CompleteWrites"/>) and
    /// lingers until the exchange ends; with unread data it is reset instead (in any state before TIME-WAIT).
    /// </summary>
    public ServalError Close(SocketHandle handle, TimeSpan now)
    {
        try
        {
            return CloseCore(handle, now);
        }
        catch (Exception e)
        {
            return OnCallFault(handle, "close", e, now);
        }
    }

    private ServalError CloseCore(SocketHandle handle, TimeSpan now)
    {
        _now = now;
        if (!_sockets.TryGetValue(handle.Value, out var s) || s.Released)
        {
            return ServalError.BadHandle;
        }

        s.Released = true;
        switch (s)
        {
            case ListenerSocket l:
                CloseListener(l, now);
                break;
            case DatagramSocket d:
                CloseDatagramSocket(d);
                break;
            case Flow f:
                CloseFlow(f, now);
                break;
        }

        return ServalError.None;
    }

    /// <summary>Aborts a connection: sends an RST at once and releases the handle.</summary>
    public ServalError Abort(SocketHandle handle, TimeSpan now)
    {
        _now = now;
        if (!_sockets.TryGetValue(handle.Value, out var s) || s.Released)
        {
            return ServalError.BadHandle;
        }

        if (s is not Flow f)
        {
            return Close(handle, now);
        }

        f.Released = true;
        if (f.State == SalState.Closed)
        {
            Destroy(f); // already ended (refused, reset, timed out): just release the handle
            return ServalError.None;
        }

        ResetFlow(f, now, ServalError.Aborted);
        return ServalError.None;
    }

    private void CloseListener(ListenerSocket l, TimeSpan now)
    {
        Services.Remove(l.Prefix, ServiceTarget.Demux(l.Handle.Value, (byte)l.Protocol));
        Emit(new EngineEvent(EngineEventKind.ServiceUnregistered, l.Handle, l.Prefix, l.Protocol));
        foreach (var p in l.Pending.Values.ToList())
        {
            ResetFlow(p, now, ServalError.Aborted);
        }

        while (l.AcceptQueue.TryDequeue(out var f))
        {
            f.Released = true;
            ResetFlow(f, now, ServalError.Aborted);
        }

        _sockets.Remove(l.Handle.Value);
    }

    private void CloseFlow(Flow f, TimeSpan now)
    {
        switch (f.State)
        {
            case SalState.Init or SalState.Request or SalState.Respond or SalState.Closed:
                Destroy(f);
                return;
            case SalState.TimeWait when f.Security is null:
                f.RequestClose();
                CompactTimeWait(f);
                return;
            case SalState.TimeWait:
                // A secured flow keeps its keys through TIME-WAIT: its answers must be sealed.
                f.RequestClose();
                return;
            case SalState.FinWait1 or SalState.FinWait2 or SalState.Closing or SalState.LastAck:
                // Our SAL FIN is already out (the writes were completed before the close): no second FIN. Unread data
                // still resets, as in CONNECTED; a FIN-WAIT-2 flow now waits at most FinWait2Timeout for the peer.
                f.RequestClose();
                if (f.Stream is { BytesAvailable: > 0 })
                {
                    ResetFlow(f, now, ServalError.Aborted);
                    return;
                }

                if (f.State == SalState.FinWait2 && f.StateTimerAt is null)
                {
                    f.StateTimerAt = now + _options.FinWait2Timeout;
                    Schedule(f);
                }

                return;
        }

        f.RequestClose();
        if (f.Stream is { } st)
        {
            if (st.BytesAvailable > 0)
            {
                // Unread data: reset (docs/protocol.md §6).
                ResetFlow(f, now, ServalError.Aborted);
                return;
            }

            st.CompleteWrites();
            MarkTransmit(f);
            return;
        }

        // Datagram flows send the SAL FIN at once.
        SendFin(f, now);
    }

    /// <summary>Snapshot of every connection and pending request.</summary>
    public IReadOnlyList<FlowInfo> GetFlows() => [.. _flows.Values.Select(ToInfo), .. CompactTimeWaitInfo()];

    /// <summary>Snapshot of one connection.</summary>
    public FlowInfo? GetFlow(SocketHandle handle) =>
        _sockets.TryGetValue(handle.Value, out var s) && s is Flow f ? ToInfo(f) : null;

    private static FlowInfo ToInfo(Flow f) => new()
    {
        Socket = f.Handle,
        Protection = f.Security is { Established: true } security ? security.Level : FlowProtection.None,
        OwnershipProved = f.Security is { Established: true, OwnershipProved: true },
        LocalFlow = f.LocalFlow,
        PeerFlow = f.PeerFlow,
        Service = f.Service,
        Protocol = f.Protocol,
        State = f.State,
        Migration = f.Migration,
        Interface = f.Interface,
        LocalAddress = f.LocalAddress,
        PeerAddress = f.PeerAddress,
        PacketsSent = f.PacketsSent,
        PacketsReceived = f.PacketsReceived,
        BytesSent = f.BytesSent,
        BytesReceived = f.BytesReceived,
        ControlSrtt = f.Control.Rtt.SmoothedRtt,
        Stream = f.Stream?.Statistics,
    };

    /// <summary>A socket call threw: the flow behind it is reset (see <see cref="Fault"/>), the call reports the reset.</summary>
    private ServalError OnCallFault(SocketHandle handle, string where, Exception e, TimeSpan now)
    {
        Fault(handle, where, e, now);
        return ServalError.ConnectionReset;
    }
}
