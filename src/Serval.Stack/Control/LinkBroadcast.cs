using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// Sends a control datagram to every host of one link (router discovery, docs/control-protocol.md §12). The engine
/// has no "send to this address" call, so an exact FORWARD rule for the destination serviceID toward the interface's
/// broadcast (IPv4) or discovery multicast (IPv6) address is installed for the duration of one
/// <see cref="Engine.SendTo"/> (the datagram is resolved and queued inside the call) and removed again.
/// </summary>
internal static class LinkBroadcast
{
    /// <summary>Priority of the transient rule: above every rule a controller installs, below socket DEMUX rules.</summary>
    public const uint Priority = 31_000;

    /// <summary>The up, non-loopback interfaces that have a broadcast (or multicast discovery) address.</summary>
    public static IEnumerable<InterfaceInfo> Interfaces(Engine engine) =>
        engine.Interfaces.Where(i => i.IsUp && i.Index != 0 && !i.Broadcast.IsNone);

    /// <summary>Sends <paramref name="data"/> from <paramref name="socket"/> to <paramref name="service"/> on every host of <paramref name="iface"/>'s link.</summary>
    public static ServalError Send(Engine engine, SocketHandle socket, ServiceId service, InterfaceInfo iface, ReadOnlySpan<byte> data, TimeSpan now)
    {
        var prefix = ServicePrefix.Exact(service);
        var target = ServiceTarget.Forward(iface.Broadcast, iface.Index);
        var added = engine.Services.Add(prefix, target, Priority, 1, now: now) == ServiceTableResult.Ok;
        try
        {
            return engine.SendTo(socket, service, data, now);
        }
        finally
        {
            if (added)
            {
                engine.Services.Remove(prefix, target);
            }
        }
    }

    /// <summary>
    /// The up, non-loopback interface of <paramref name="address"/>'s family whose own address shares the most leading
    /// bits with it (the link a datagram from there most likely came over); 0 when there is none.
    /// </summary>
    public static int InterfaceToward(Engine engine, LinkAddress address)
    {
        Span<byte> a = stackalloc byte[16];
        Span<byte> b = stackalloc byte[16];
        var n = address.WriteAddress(a);
        var best = 0;
        var bestBits = -1;
        foreach (var i in engine.Interfaces)
        {
            if (i.Index == 0 || !i.IsUp || i.Address.Family != address.Family)
            {
                continue;
            }

            i.Address.WriteAddress(b);
            var bits = 0;
            while (bits < n * 8 && ((a[bits >> 3] ^ b[bits >> 3]) & (0x80 >> (bits & 7))) == 0)
            {
                bits++;
            }

            if (bits > bestBits)
            {
                best = i.Index;
                bestBits = bits;
            }
        }

        return best;
    }
}
