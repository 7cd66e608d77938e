using Serval.Stack.ControlPlane;
using Serval.Wire;

namespace Serval;

/// <summary>Router control: the router controller of a host started with <see cref="ServalHostOptions.RouterControl"/>, and the host's own registrations and router discovery.</summary>
public sealed partial class ServalHostAdministration
{
    /// <summary>Whether this host runs a router controller (<see cref="ServalHostOptions.RouterControl"/>); false on an attached host (ask servald: <c>servalctl router registrations</c>).</summary>
    public bool IsRegistrationRouter => !_host.IsAttached && _host.Options.RouterControl is not null;

    /// <summary>The router controller's registrations and drains, read on the engine thread.</summary>
    /// <exception cref="InvalidOperationException">The host runs no router controller.</exception>
    /// <exception cref="NotSupportedException">The host is attached to servald.</exception>
    public async ValueTask<RouterSnapshot> GetRouterSnapshotAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var driver = _host.Backend.RequireEngine("Admin." + nameof(GetRouterSnapshotAsync));
        RequireRouter();
        return await driver.InvokeAsync(d =>
        {
            var router = d.RouterController!;
            var now = d.Now;
            return new RouterSnapshot
            {
                Epoch = router.Epoch,
                Registrations = [.. router.GetRegistrations().Select(r => new RouterRegistrationInfo
                {
                    Prefix = r.Prefix,
                    Host = r.Address,
                    Interface = r.Interface,
                    Weight = r.Weight,
                    Draining = r.Draining,
                    DrainedByRouter = r.DrainedByRouter,
                    Transports = r.Transports,
                    Sender = r.Sender,
                    LeaseRemaining = r.ExpiresAt > now ? r.ExpiresAt - now : TimeSpan.Zero,
                })],
                Drains = [.. router.GetDrains().Select(x => new RouterDrain(x.Host, x.Prefix))],
                Counters = router.Counters,
                AdvertiserCounters = d.RouterAdvertiser?.Counters,
                FleetName = router.Registry is null ? null : router.FleetName,
                FleetRevision = router.FleetRevision,
                Fleet = [.. router.GetFleetRegistrations()],
                Registry = router.Registry?.Status,
            };
        }).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Drains (or undrains) at the router the registrations of <paramref name="registeredHost"/> (all of them, or only
    /// <paramref name="prefix"/>): they keep their lease but get no new connections. Port 0 matches every port.
    /// </summary>
    /// <returns>True when this changed the drains; false when it was already so.</returns>
    /// <exception cref="InvalidOperationException">The host runs no router controller.</exception>
    /// <exception cref="ArgumentException"><paramref name="registeredHost"/> is <see cref="LinkAddress.None"/>.</exception>
    /// <exception cref="NotSupportedException">The host is attached to servald.</exception>
    public async ValueTask<bool> SetRouterDrainingAsync(LinkAddress registeredHost, ServicePrefix? prefix, bool draining, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        RequireRouter();
        if (registeredHost.IsNone)
        {
            throw new ArgumentException("A drain names a host address.", nameof(registeredHost));
        }

        return await _host.Backend.RequireEngine("Admin." + nameof(SetRouterDrainingAsync)).InvokeAsync(d => d.RouterController!.SetDraining(registeredHost, prefix, draining, d.Now)).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The prefixes this host keeps registered with service routers (<see cref="ServalHostOptions.RegisterWithRouter"/>,
    /// <see cref="ServalHostOptions.Registration"/>, or the routers found by <see cref="ServalHostOptions.RouterDiscovery"/>),
    /// each with how many routers acknowledged its current registration; empty when the host registers with no router.
    /// Read on the engine thread.
    /// </summary>
    /// <exception cref="NotSupportedException">The host is attached to servald (servald registers the services).</exception>
    public async ValueTask<IReadOnlyList<HostRegistration>> GetRegistrationsAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return await _host.Backend.RequireEngine("Admin." + nameof(GetRegistrationsAsync)).InvokeAsync(d =>
        {
            var all = new List<HostRegistration>();
            if (d.HostController is { } host)
            {
                all.AddRange(host.GetRegistrations());
            }

            if (d.RouterDiscovery is { } discovery)
            {
                all.AddRange(discovery.GetControllers().SelectMany(c => c.GetRegistrations()));
            }

            // One row per prefix: the acknowledgements of every router added up.
            return (IReadOnlyList<HostRegistration>)[.. all.GroupBy(r => r.Prefix).Select(g => g.First() with { AcknowledgedBy = g.Sum(r => r.AcknowledgedBy) })];
        }).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// What router discovery (<see cref="ServalHostOptions.RouterDiscovery"/>) knows now: the routers heard and not yet
    /// expired, with how many of this host's prefixes each acknowledged, and the counters. Null when the host runs no
    /// discovery (routers configured, a router itself, or disabled); read on the engine thread.
    /// </summary>
    /// <exception cref="NotSupportedException">The host is attached to servald.</exception>
    public async ValueTask<RouterDiscoverySnapshot?> GetRouterDiscoveryAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return await _host.Backend.RequireEngine("Admin." + nameof(GetRouterDiscoveryAsync)).InvokeAsync(d => d.RouterDiscovery is { } discovery
            ? new RouterDiscoverySnapshot { Routers = discovery.GetRouters(), Counters = discovery.Counters, Listening = discovery.Started }
            : null).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private void RequireRouter()
    {
        if (_host.Options.RouterControl is null)
        {
            throw new InvalidOperationException($"The Serval host '{_host.Name}' runs no router controller (ServalHostOptions.RouterControl is not set).");
        }
    }
}

/// <summary>A snapshot of a host's router controller (<see cref="ServalHostAdministration.GetRouterSnapshotAsync"/>).</summary>
public sealed record RouterSnapshot
{
    /// <summary>The router incarnation's epoch (random per start; hosts re-register when it changes).</summary>
    public ulong Epoch { get; init; }

    /// <summary>Every registration held.</summary>
    public IReadOnlyList<RouterRegistrationInfo> Registrations { get; init; } = [];

    /// <summary>The drains set at the router.</summary>
    public IReadOnlyList<RouterDrain> Drains { get; init; } = [];

    /// <summary>The controller's counters (live).</summary>
    public required RouterControllerCounters Counters { get; init; }

    /// <summary>In a fleet (<see cref="ServalHostOptions.RouterRegistry"/>): the name this router writes as the accepting router; null otherwise.</summary>
    public string? FleetName { get; init; }

    /// <summary>In a fleet: the registry revision the fleet view reflects.</summary>
    public long FleetRevision { get; init; }

    /// <summary>In a fleet: every registration of the fleet, with the router that accepted it; empty otherwise.</summary>
    public IReadOnlyList<RegistryRecord> Fleet { get; init; } = [];

    /// <summary>In a fleet: the registry's health (live); null otherwise.</summary>
    public RegistryStatus? Registry { get; init; }

    /// <summary>The router advertiser's counters (live), or null when the router does not advertise.</summary>
    public RouterAdvertiserCounters? AdvertiserCounters { get; init; }
}

/// <summary>A snapshot of a host's router discovery (<see cref="ServalHostAdministration.GetRouterDiscoveryAsync"/>).</summary>
public sealed record RouterDiscoverySnapshot
{
    /// <summary>Whether discovery listens (a link with a broadcast address came up).</summary>
    public bool Listening { get; init; }

    /// <summary>The routers heard and not expired.</summary>
    public IReadOnlyList<DiscoveredRouter> Routers { get; init; } = [];

    /// <summary>The discovery counters (live).</summary>
    public required RouterDiscoveryCounters Counters { get; init; }
}

/// <summary>One registration held by a router controller.</summary>
public sealed record RouterRegistrationInfo
{
    /// <summary>The registered prefix.</summary>
    public required ServicePrefix Prefix { get; init; }

    /// <summary>The registering host's link address (the FORWARD target).</summary>
    public LinkAddress Host { get; init; }

    /// <summary>The interface the FORWARD rule uses.</summary>
    public int Interface { get; init; }

    /// <summary>The rule's weight.</summary>
    public uint Weight { get; init; }

    /// <summary>Whether the host asked for no new connections.</summary>
    public bool Draining { get; init; }

    /// <summary>Whether the router drains it (<see cref="ServalHostAdministration.SetRouterDrainingAsync"/>).</summary>
    public bool DrainedByRouter { get; init; }

    /// <summary>Transports the host reported.</summary>
    public ServiceTransports Transports { get; init; }

    /// <summary>The registering controller's sender identifier.</summary>
    public ulong Sender { get; init; }

    /// <summary>Time left on the lease unless refreshed.</summary>
    public TimeSpan LeaseRemaining { get; init; }
}

/// <summary>A drain set at a router: a registered host's address (port 0: any port) and a prefix, or null for all of its prefixes.</summary>
/// <param name="Host">The host address.</param>
/// <param name="Prefix">The drained prefix, or null for every prefix of the host.</param>
public sealed record RouterDrain(LinkAddress Host, ServicePrefix? Prefix);
