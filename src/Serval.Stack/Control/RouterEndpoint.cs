using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>Where a service router is: its link address (with port on UDP links), the interface that reaches it, and the serviceID it listens on.</summary>
/// <param name="Address">The router's link address.</param>
/// <param name="Interface">Index of the local interface that reaches it.</param>
/// <param name="ServiceId">The serviceID its controller is bound to (<see cref="ControlProtocol.RouterServiceId"/> unless configured otherwise).</param>
public readonly record struct RouterEndpoint(LinkAddress Address, int Interface, ServiceId ServiceId)
{
    /// <summary>A router listening on the well-known <see cref="ControlProtocol.RouterServiceId"/>.</summary>
    public RouterEndpoint(LinkAddress address, int interfaceIndex)
        : this(address, interfaceIndex, ControlProtocol.RouterServiceId)
    {
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Address} if {Interface} ({ServiceId.ToString("s", null)})";
}
