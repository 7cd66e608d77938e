using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>A snapshot of one registration a <see cref="RouterController"/> holds.</summary>
/// <param name="Prefix">The registered prefix.</param>
/// <param name="Address">The registering host's link address (the FORWARD target).</param>
/// <param name="Interface">The interface the FORWARD rule uses.</param>
/// <param name="Weight">The rule's weight.</param>
/// <param name="Draining">Whether the host asked for no new connections (no FORWARD rule is installed meanwhile).</param>
/// <param name="Transports">Transports the host reported.</param>
/// <param name="Sender">The registering controller's sender identifier.</param>
/// <param name="ExpiresAt">When the lease runs out unless refreshed.</param>
public readonly record struct RouterRegistration(
    ServicePrefix Prefix,
    LinkAddress Address,
    int Interface,
    uint Weight,
    bool Draining,
    ServiceTransports Transports,
    ulong Sender,
    TimeSpan ExpiresAt)
{
    /// <summary>Whether the router itself drains it (<see cref="RouterController.SetDraining"/>): no FORWARD rule, whatever <see cref="Draining"/> says.</summary>
    public bool DrainedByRouter { get; init; }
}
