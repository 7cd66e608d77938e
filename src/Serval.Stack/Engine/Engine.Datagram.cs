using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Stack;

public sealed partial class Engine
{
    /// <summary>
    /// Creates an unconnected datagram socket bound to <paramref name="prefix"/> (DEMUX rule and
    /// <see cref="EngineEventKind.ServiceRegistered"/>), or unbound when <paramref name="prefix"/> is null (it gets
    /// a random serviceID on its first send, without registration, as in the reference).
    /// </summary>
    public ServalError BindDatagram(ServicePrefix? prefix, TimeSpan now, out SocketHandle handle)
    {
        _now = now;
        handle = SocketHandle.None;
        if (prefix is { } pp && pp.Length == 0 && pp.Id.IsZero)
        {
            return ServalError.InvalidArgument;
        }

        if (prefix is { } bound && HasDemuxFor(bound, TransportProtocol.Datagram))
        {
            return ServalError.AddressInUse;
        }

        var flowId = NewFlowId();
        var socket = new DatagramSocket(NewHandle(), flowId);
        if (prefix is { } p)
        {
            var r = Services.Add(p, ServiceTarget.Demux(socket.Handle.Value, SalPacketRepr.ProtocolUdp), ServiceTable.SocketPriority, ServiceTable.SocketWeight, now: now);
            if (r != ServiceTableResult.Ok)
            {
                return r == ServiceTableResult.AlreadyExists ? ServalError.AddressInUse : ServalError.InvalidArgument;
            }

            socket.Bound = p;
            socket.LocalService = p.Length == ServiceId.Bits ? p.Id : p.Apply(RandomServiceId());
            Emit(new EngineEvent(EngineEventKind.ServiceRegistered, socket.Handle, p, TransportProtocol.Datagram));
        }

        _datagramFlowIds.Add(flowId.Value);
        _sockets.Add(socket.Handle.Value, socket);
        handle = socket.Handle;
        return ServalError.None;
    }

    private ServiceId RandomServiceId() =>
        new(_random.NextUInt64(), _random.NextUInt64(), _random.NextUInt64(), _random.NextUInt64());

    /// <summary>The serviceID a datagram socket sends from.</summary>
    public ServiceId GetLocalService(SocketHandle handle) =>
        _sockets.TryGetValue(handle.Value, out var s) && s is DatagramSocket d ? d.LocalService : default;

    /// <summary>
    /// Sends one datagram to <paramref name="destination"/>, resolved through the service table on its own
    /// (destination and source SERVICE extensions, destination flowID 0).
    /// </summary>
    public ServalError SendTo(SocketHandle handle, ServiceId destination, ReadOnlySpan<byte> data, TimeSpan now)
    {
        _now = now;
        if (!_sockets.TryGetValue(handle.Value, out var s) || s is not DatagramSocket d || d.Released)
        {
            return ServalError.BadHandle;
        }

        if (data.IsEmpty || data.Length > _options.MaxDatagramSize || destination.IsZero)
        {
            return ServalError.InvalidArgument;
        }

        if (d.Bound is null && d.LocalService.IsZero)
        {
            // Auto-bind: a random serviceID so that replies find this socket; not registered with routers.
            var id = RandomServiceId();
            if (Services.Add(ServicePrefix.Exact(id), ServiceTarget.Demux(d.Handle.Value, SalPacketRepr.ProtocolUdp), ServiceTable.SocketPriority, ServiceTable.SocketWeight, now: now) != ServiceTableResult.Ok)
            {
                return ServalError.AddressInUse;
            }

            d.LocalService = id;
        }

        return SendDatagram(d, destination, data, now);
    }

    private ServalError SendDatagram(DatagramSocket d, ServiceId destination, ReadOnlySpan<byte> data, TimeSpan now)
    {
        var repr = new SalPacketRepr
        {
            SourceFlow = d.FlowId,
            Protocol = SalPacketRepr.ProtocolUdp,
            DestinationService = destination,
            SourceService = d.LocalService,
            Udp = new UdpRepr { HasChecksum = true },
        };
        return SendFirst(repr, data, destination, null, d, now);
    }

    /// <summary>
    /// Takes the next datagram of an unconnected socket: its length (truncated to <paramref name="buffer"/>), the
    /// sender's serviceID and link address. <see cref="ServalError.WouldBlock"/> when none is queued.
    /// </summary>
    public ServalError ReceiveFrom(SocketHandle handle, Span<byte> buffer, out int read, out ServiceId source, out LinkAddress sourceAddress)
    {
        read = 0;
        source = default;
        sourceAddress = default;
        if (!_sockets.TryGetValue(handle.Value, out var s) || s is not DatagramSocket d || d.Released)
        {
            return ServalError.BadHandle;
        }

        if (!d.Queue.TryDequeue(out var dg))
        {
            return ServalError.WouldBlock;
        }

        read = Math.Min(buffer.Length, dg.Data.Length);
        dg.Data.AsSpan(0, read).CopyTo(buffer);
        source = dg.SourceService;
        sourceAddress = dg.SourceAddress;
        return ServalError.None;
    }

    private void CloseDatagramSocket(DatagramSocket d)
    {
        if (d.Bound is { } p)
        {
            Services.Remove(p, ServiceTarget.Demux(d.Handle.Value, SalPacketRepr.ProtocolUdp));
            Emit(new EngineEvent(EngineEventKind.ServiceUnregistered, d.Handle, p, TransportProtocol.Datagram));
        }
        else if (!d.LocalService.IsZero)
        {
            Services.Remove(ServicePrefix.Exact(d.LocalService), ServiceTarget.Demux(d.Handle.Value, SalPacketRepr.ProtocolUdp));
        }

        _datagramFlowIds.Remove(d.FlowId.Value);
        _sockets.Remove(d.Handle.Value);
        foreach (var delayed in _delayedByExpiry.Where(x => x.DatagramSocket == d.Handle).Select(x => x.Id).ToList())
        {
            RemoveDelayed(delayed);
        }
    }
}
