using Serval.Stack.ControlPlane;
using Serval.Wire;

namespace Serval;

/// <summary>
/// The administration of a <see cref="ServalHost"/> (<see cref="ServalHost.Admin"/>): what an operator or a daemon does
/// to the host as a whole, apart from the application's own listeners, connections and sockets: the service table's
/// rules, link state, migration of any application's flows, router control and registrations, service names for
/// logs (docs/api.md, "Administration"). Failures throw <see cref="ServalException"/> with a <see cref="ServalError"/>,
/// as everywhere else in the API; members that need the engine in this process throw
/// <see cref="NotSupportedException"/> on an attached host.
/// </summary>
public sealed partial class ServalHostAdministration
{
    private readonly ServalHost _host;

    internal ServalHostAdministration(ServalHost host) => _host = host;

    /// <summary>The host administered.</summary>
    public ServalHost Host => _host;

    /// <summary>
    /// Names <paramref name="service"/> in this host's log lines and spans (<c>name (1a2b3c4d…)</c>) when
    /// <paramref name="name"/> is the name its ID was hashed from (<see cref="ServiceId.FromName(string)"/>); other names are
    /// ignored. The host remembers a bounded number of names. Attached: no effect (the daemon logs).
    /// </summary>
    public void NameService(ServiceId service, string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        _host.Backend.NameService(service, name);
    }

    /// <summary>
    /// A service as this host's log lines show it: <c>name (1a2b3c4d…)</c> when the host knows the name of a whole
    /// serviceID (<see cref="NameService"/>, or bound by name), else the prefix's text. Attached: the prefix's text.
    /// </summary>
    public string DescribeService(ServicePrefix prefix) => _host.Backend.DescribeService(prefix);

    /// <summary>The counters of the host's resolver controller, or null when the host resolves no services (no <see cref="ServalHostOptions.Resolver"/>).</summary>
    /// <exception cref="NotSupportedException">The host is attached (servalctl stats shows the daemon's counters).</exception>
    public async ValueTask<ResolverControllerCounters?> GetResolverCountersAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return await _host.Backend.RequireEngine(nameof(GetResolverCountersAsync)).InvokeAsync(d => d.ResolverController?.Counters).WaitAsync(cancellationToken).ConfigureAwait(false);
    }
}
