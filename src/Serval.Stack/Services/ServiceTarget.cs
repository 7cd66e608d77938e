using System.Globalization;
using System.Runtime.InteropServices;
using Serval.Wire;

namespace Serval.Stack.Services;

/// <summary>
/// Where a service-table rule sends a packet. Build one with <see cref="Forward(LinkAddress, int)"/>,
/// <see cref="Demux(long, byte)"/>, <see cref="Delay"/> or <see cref="Drop"/>.
/// </summary>
/// <remarks>
/// Identity (what makes two targets "the same" for duplicate checks, removal and modification) depends on the
/// type: FORWARD is identified by (<see cref="Address"/>, <see cref="Interface"/>), DEMUX by <see cref="Socket"/>
/// alone (the protocol is an attribute of the socket), DELAY and DROP by their type. See <see cref="IsSameTarget"/>.
/// Record equality compares every field.
/// </remarks>
/// <param name="Type">The rule type.</param>
/// <param name="Address">FORWARD: the next hop's link address; <see cref="LinkAddress.None"/> otherwise.</param>
/// <param name="Interface">FORWARD: the index of the interface to send on (0 or more); 0 otherwise.</param>
/// <param name="Socket">DEMUX: the engine's handle of the local socket (not 0); 0 otherwise.</param>
/// <param name="Protocol">DEMUX: the socket's transport protocol, 6 (stream) or 17 (datagram); 0 otherwise.</param>
[StructLayout(LayoutKind.Auto)]
public readonly record struct ServiceTarget(ServiceTargetType Type, LinkAddress Address, int Interface, long Socket, byte Protocol)
{
    /// <summary>Transport protocol number of stream (TCP-semantics) sockets.</summary>
    public const byte TcpProtocol = 6;

    /// <summary>Transport protocol number of datagram (UDP-semantics) sockets.</summary>
    public const byte UdpProtocol = 17;

    /// <summary>A FORWARD target: send to <paramref name="address"/> on interface <paramref name="interfaceIndex"/>.</summary>
    public static ServiceTarget Forward(LinkAddress address, int interfaceIndex) =>
        new(ServiceTargetType.Forward, address, interfaceIndex, 0, 0);

    /// <summary>A DEMUX target: deliver to local socket <paramref name="socket"/> whose transport is <paramref name="protocol"/> (6 or 17).</summary>
    public static ServiceTarget Demux(long socket, byte protocol) =>
        new(ServiceTargetType.Demux, LinkAddress.None, 0, socket, protocol);

    /// <summary>A DELAY target: queue the packet and notify the controller.</summary>
    public static ServiceTarget Delay() => new(ServiceTargetType.Delay, LinkAddress.None, 0, 0, 0);

    /// <summary>A DROP target: discard the packet.</summary>
    public static ServiceTarget Drop() => new(ServiceTargetType.Drop, LinkAddress.None, 0, 0, 0);

    /// <summary>
    /// Whether this target is well formed for its type: FORWARD has an address and an interface ≥ 0; DEMUX has a
    /// socket handle other than 0 and protocol 6 or 17; no type carries fields of another type.
    /// </summary>
    public bool IsValid => Type switch
    {
        ServiceTargetType.Forward => !Address.IsNone && Interface >= 0 && Socket == 0 && Protocol == 0,
        ServiceTargetType.Demux => Socket != 0 && Protocol is TcpProtocol or UdpProtocol && Address.IsNone && Interface == 0,
        ServiceTargetType.Delay or ServiceTargetType.Drop => Address.IsNone && Interface == 0 && Socket == 0 && Protocol == 0,
        _ => false,
    };

    /// <summary>
    /// Whether the fields that make up this target's identity are usable to name an existing target (what removal
    /// and modification need): a defined type, FORWARD with an address, DEMUX with a socket handle.
    /// </summary>
    internal bool HasValidIdentity => Type switch
    {
        ServiceTargetType.Forward => !Address.IsNone,
        ServiceTargetType.Demux => Socket != 0,
        ServiceTargetType.Delay or ServiceTargetType.Drop => true,
        _ => false,
    };

    /// <summary>
    /// Whether <paramref name="other"/> names the same target: same type and, for FORWARD, same address (with
    /// port) and interface; for DEMUX, same socket (whatever the protocol).
    /// </summary>
    public bool IsSameTarget(ServiceTarget other) => Type == other.Type && Type switch
    {
        ServiceTargetType.Forward => Address == other.Address && Interface == other.Interface,
        ServiceTargetType.Demux => Socket == other.Socket,
        _ => true,
    };

    /// <summary>Short text form: <c>FWD addr if N</c>, <c>DMX sock N TCP|UDP</c>, <c>DLY</c>, <c>DRP</c>.</summary>
    public override string ToString() => Type switch
    {
        ServiceTargetType.Forward => string.Create(CultureInfo.InvariantCulture, $"FWD {Address} if {Interface}"),
        ServiceTargetType.Demux => string.Create(CultureInfo.InvariantCulture, $"DMX sock {Socket} {ProtocolName(Protocol)}"),
        ServiceTargetType.Delay => "DLY",
        ServiceTargetType.Drop => "DRP",
        _ => string.Create(CultureInfo.InvariantCulture, $"UDF {(byte)Type}"),
    };

    private static string ProtocolName(byte protocol) => protocol switch
    {
        TcpProtocol => "TCP",
        UdpProtocol => "UDP",
        _ => protocol.ToString(CultureInfo.InvariantCulture),
    };
}
