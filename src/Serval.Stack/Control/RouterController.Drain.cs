using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// Draining decided at the router (an operator taking a host out of rotation): registrations of a drained host, or
/// of one prefix of it, keep their lease but get no FORWARD rule and are not exported upstream, exactly as if the
/// host had set the draining flag itself. A drain outlives the registrations it covers: a host that re-registers
/// (for example after restarting) stays drained until <see cref="SetDraining"/> lifts it.
/// </summary>
public sealed partial class RouterController
{
    private readonly HashSet<(LinkAddress Host, ServicePrefix? Prefix)> _drains = [];

    /// <summary>
    /// Drains (or undrains) the registrations of <paramref name="host"/>: all of them when <paramref name="prefix"/> is
    /// null, else only that prefix. A host address with port 0 matches every port of that IP address.
    /// </summary>
    /// <returns>True when the set of drains changed; false when it was already so.</returns>
    /// <exception cref="ArgumentException"><paramref name="host"/> is <see cref="LinkAddress.None"/>.</exception>
    public bool SetDraining(LinkAddress host, ServicePrefix? prefix, bool draining, TimeSpan now)
    {
        if (host.IsNone)
        {
            throw new ArgumentException("A drain names a host address.", nameof(host));
        }

        var changed = draining ? _drains.Add((host, prefix)) : _drains.Remove((host, prefix));
        if (!changed)
        {
            return false;
        }

        if (_registry is not null)
        {
            var key = RegistryCodec.DrainKey(host, prefix);
            if (draining)
            {
                _registry.PutPermanent(key, RegistryCodec.EncodeDrainValue(FleetName, _registry.UnixTimeMilliseconds));
            }
            else
            {
                _registry.DeletePermanent(key);
            }
        }

        ReapplyDrains(host, prefix, now);
        RegistrationEvent?.Invoke(new RouterRegistrationEvent(draining ? RouterRegistrationEventKind.DrainStarted : RouterRegistrationEventKind.DrainEnded, prefix, host, 0, ByRouter: true));
        return true;
    }

    /// <summary>Applies the drains of <paramref name="host"/> again to its registrations, local and of the fleet.</summary>
    private void ReapplyDrains(LinkAddress host, ServicePrefix? prefix, TimeSpan now)
    {
        foreach (var peer in _peers.Values)
        {
            if (!Covers(host, peer.Address))
            {
                continue;
            }

            foreach (var reg in peer.Registrations.Values)
            {
                if (prefix is null || prefix.Value == reg.Prefix)
                {
                    ApplyRule(reg, now);
                    UpdateExport(reg, now);
                }
            }
        }

        ReapplyFleetDrains(host, prefix, now);
    }

    /// <summary>The drains in force at this router, set here or (in a fleet) at any router (host address, and prefix or null for all of the host's prefixes).</summary>
    public IReadOnlyList<(LinkAddress Host, ServicePrefix? Prefix)> GetDrains() => [.. _drains];

    private static bool Covers(LinkAddress drain, LinkAddress address) =>
        drain.Port == 0 ? drain.SameAddress(address) : drain == address;

    /// <summary>Whether the router drains this registration (not counting the host's own draining flag).</summary>
    private bool IsDrainedHere(Registration reg) => IsDrainedHere(reg.Peer.Address, reg.Prefix);

    /// <summary>Whether a drain (set here or, in a fleet, anywhere) covers <paramref name="prefix"/> at <paramref name="address"/>.</summary>
    private bool IsDrainedHere(LinkAddress address, ServicePrefix prefix) =>
        _drains.Count != 0
        && (_drains.Contains((address, null)) || _drains.Contains((address, prefix))
            || _drains.Contains((address.WithPort(0), null)) || _drains.Contains((address.WithPort(0), prefix)));

    /// <summary>Whether the registration gets no new connections: the host asked for it or the router drains it.</summary>
    private bool IsDraining(Registration reg) => reg.Draining || IsDrainedHere(reg);
}
