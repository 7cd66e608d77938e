using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>What happened to a registration at a router (<see cref="RouterController.RegistrationEvent"/>), for logs.</summary>
public enum RouterRegistrationEventKind
{
    /// <summary>A host registered a prefix it had not registered here.</summary>
    Added,

    /// <summary>A host renewed a registration's lease.</summary>
    Refreshed,

    /// <summary>A registration's lease ran out without a refresh: its rule was removed.</summary>
    Expired,

    /// <summary>A host unregistered a prefix: its rule was removed.</summary>
    Withdrawn,

    /// <summary>A drain began: the host asked for it (its draining flag) or the router drains the host's registrations.</summary>
    DrainStarted,

    /// <summary>A drain ended: the host cleared its draining flag or the router's drain was lifted.</summary>
    DrainEnded,
}

/// <summary>A registration event at a router.</summary>
/// <param name="Kind">What happened.</param>
/// <param name="Prefix">The registered prefix; null for a router drain of all of a host's prefixes.</param>
/// <param name="Host">The registered host's address (port 0 in a router drain: any port).</param>
/// <param name="Weight">The registration's weight (0 when not known).</param>
/// <param name="ByRouter">For drains: set at the router (operator) rather than by the host.</param>
public readonly record struct RouterRegistrationEvent(RouterRegistrationEventKind Kind, ServicePrefix? Prefix, LinkAddress Host, uint Weight, bool ByRouter = false);
