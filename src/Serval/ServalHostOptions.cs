using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Serval.Links;
using Serval.Stack;
using Serval.Stack.Streams;
using Serval.Wire;

namespace Serval;

/// <summary>Settings of a <see cref="ServalHost"/>. Validated once by <see cref="ServalHost.StartAsync"/>.</summary>
public sealed record ServalHostOptions
{
    /// <summary>A host with no links (only the engine's loopback interface) and default settings.</summary>
    public static ServalHostOptions Default { get; } = new();

    /// <summary>A readable name for logs and metrics (tag <c>serval.host</c>).</summary>
    public string Name { get; init; } = "serval";

    /// <summary>
    /// The host's links, each becoming one interface (index 1, 2, … in this order). The host owns them: it starts them
    /// and disposes them when it stops. None is needed for services used only inside the host (loopback).
    /// </summary>
    public IReadOnlyList<ServalLink> Links { get; init; } = [];

    /// <summary>
    /// Links that follow the host's addresses (docs/runtime.md, "Link policies"; Linux): for every address of the
    /// operating system's interfaces that a policy matches, the host creates a link — at start (after
    /// <see cref="Links"/>, in the order the kernel lists the addresses) and whenever one appears — and retires it when
    /// the address goes away: its interface goes down for good and its flows move to a remaining link of their family
    /// (an RSYN from the new address) or wait for one, up to their user timeout
    /// (<see cref="Stack.Streams.StreamOptions.UserTimeout"/>), then fail with <see cref="ServalError.NetworkDown"/>.
    /// A retired link's index is given to a later link once no flow uses it. Needs <see cref="MonitorInterfaces"/>.
    /// Empty (default): only <see cref="Links"/>.
    /// </summary>
    public IReadOnlyList<LinkPolicy> LinkPolicies { get; init; } = [];

    /// <summary>Engine settings, including <see cref="EngineOptions.Mode"/> (host or service router).</summary>
    public EngineOptions Engine { get; init; } = EngineOptions.Default;

    /// <summary>Stream transport settings for new connections.</summary>
    public StreamOptions Stream { get; init; } = StreamOptions.Default;

    /// <summary>
    /// When set, a default FORWARD rule (prefix /0) to this address is installed at start: every serviceID not served
    /// locally resolves through this service router. The rule uses the first up link of the same address family, and
    /// moves to another when that link goes down or is retired (or comes with the first link of the family).
    /// </summary>
    public LinkAddress DefaultRouter { get; init; }

    /// <summary>Where the host logs (default: nowhere).</summary>
    public ILoggerFactory LoggerFactory { get; init; } = NullLoggerFactory.Instance;

    /// <summary>
    /// Creates the host's meter (<see cref="ServalHost.MeterName"/>), for example the application's
    /// <see cref="IMeterFactory"/> from dependency injection; null (default) creates a meter of its own.
    /// </summary>
    public IMeterFactory? MeterFactory { get; init; }

    /// <summary>
    /// A service router to register this host's bound services with (docs/control-protocol.md): the host's controller
    /// registers each bind, refreshes on a lease, unregisters on close, and installs its default rule toward the router.
    /// <see cref="LinkAddress.None"/> (default) runs no registration.
    /// </summary>
    public LinkAddress RegisterWithRouter { get; init; }

    /// <summary>
    /// Registration settings (refresh, lease, weights, key). <see cref="RegisterWithRouter"/> is added in front of
    /// <see cref="Stack.ControlPlane.HostControllerOptions.Routers"/>; a non-empty routers list alone also runs registration.
    /// </summary>
    public Stack.ControlPlane.HostControllerOptions Registration { get; init; } = Stack.ControlPlane.HostControllerOptions.Default;

    /// <summary>
    /// Router discovery (docs/control-protocol.md §12) for a host with no configured router (neither
    /// <see cref="RegisterWithRouter"/> nor <see cref="Stack.ControlPlane.HostControllerOptions.Routers"/>) and no
    /// <see cref="RouterControl"/>: once a link with a broadcast address is up, the host listens for router
    /// advertisements and solicits them, and registers its bound services with every router it hears (with the
    /// <see cref="Registration"/> settings) until the router's advertised lifetime lapses. Without its own key, the
    /// registration key (if any) authenticates the advertisements too. Default on; null disables it.
    /// </summary>
    public Stack.ControlPlane.RouterDiscoveryOptions? RouterDiscovery { get; init; } = Stack.ControlPlane.RouterDiscoveryOptions.Default;

    /// <summary>
    /// With <see cref="RouterControl"/>: announce the router on every link with a broadcast address (router
    /// advertisements, docs/control-protocol.md §12), so that hosts find it without configuration. Default on; null
    /// disables it.
    /// </summary>
    public Stack.ControlPlane.RouterAdvertiserOptions? RouterAdvertisement { get; init; } = Stack.ControlPlane.RouterAdvertiserOptions.Default;

    /// <summary>
    /// Runs the router controller: accepts registrations and installs (and expires) FORWARD rules for them. Use with
    /// <see cref="EngineOptions.Mode"/> = <see cref="EngineMode.ServiceRouter"/>; null (default) runs none.
    /// </summary>
    public Stack.ControlPlane.RouterControllerOptions? RouterControl { get; init; }

    /// <summary>
    /// With <see cref="RouterControl"/>: the registry shared by a fleet of routers (docs/router-fleet.md): registrations
    /// accepted here are written to it and every registration of the fleet is installed here. Null (default): the
    /// router keeps its registrations in its own memory.
    /// </summary>
    public Stack.ControlPlane.IRouterRegistry? RouterRegistry { get; init; }

    /// <summary>
    /// On-demand resolution (docs/resolution.md): a default DELAY rule holds the first packet of a service no other rule
    /// resolves, the sources (and optionally the registration routers) are asked, and the answer is installed as FORWARD
    /// rules that release the packet at once. Null (default) runs none.
    /// </summary>
    public Resolution.ServalResolverOptions? Resolver { get; init; }

    /// <summary>
    /// With <see cref="RouterControl"/>: publish the registrations in DNS with dynamic updates (docs/resolution.md,
    /// "Publishing registrations"), so that hosts resolving through DNS find the registered replicas. Null (default): not.
    /// </summary>
    public Resolution.DnsUpdateOptions? PublishRegistrations { get; init; }

    /// <summary>The engine's random source; null uses the cryptographic source.</summary>
    public IRandomSource? Random { get; init; }

    /// <summary>
    /// Watch the operating-system interfaces that carry the UDP and raw IP links (default true, Linux): when a link's
    /// interface goes down or loses the link's address, the link is set down in the engine and its flows migrate to
    /// a remaining link (<see cref="Stack.EngineOptions.AutoMigrate"/>); when it comes back, the link is set up again.
    /// The same monitor creates and retires the links of <see cref="LinkPolicies"/>. It watches the network namespace
    /// of the thread that calls <see cref="ServalHost.StartAsync"/>.
    /// </summary>
    public bool MonitorInterfaces { get; init; } = true;

    /// <summary>How often the interface monitor rescans without a netlink notification (default 1 s).</summary>
    public TimeSpan InterfaceMonitorInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Most received packets waiting for the engine thread; more are dropped and counted (default 65536).</summary>
    public int InboundQueueCapacity { get; init; } = 65_536;

    /// <summary>
    /// The Linux nice value (-20 to 19) of the engine thread ("serval engine NAME"), or null to inherit the process's
    /// (the default). Below the process's own value needs CAP_SYS_NICE; a value the kernel refuses is logged and the
    /// thread keeps its priority. Ignored on other systems. docs/runtime.md, "Threads".
    /// </summary>
    public int? EngineThreadNice { get; init; }

    /// <summary>
    /// The Linux nice value (-20 to 19) of the links' receive threads ("serval rx LINK"), or null to inherit (the
    /// default); as <see cref="EngineThreadNice"/>.
    /// </summary>
    public int? ReceiveThreadNice { get; init; }

    /// <summary>Whether a link, or a link policy, can have an address of <paramref name="family"/>.</summary>
    private bool Reaches(System.Net.Sockets.AddressFamily family) =>
        Links.Any(l => l.LocalAddress.Family == family)
        || LinkPolicies.Any(p => family == System.Net.Sockets.AddressFamily.InterNetwork ? p.IPv4 : family == System.Net.Sockets.AddressFamily.InterNetworkV6 && p.IPv6);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Name))
        {
            throw new ArgumentException("A host needs a name.", nameof(Name));
        }

        ArgumentNullException.ThrowIfNull(Links, nameof(Links));
        ArgumentNullException.ThrowIfNull(Engine, nameof(Engine));
        ArgumentNullException.ThrowIfNull(Stream, nameof(Stream));
        ArgumentNullException.ThrowIfNull(LoggerFactory, nameof(LoggerFactory));
        if (Links.Any(l => l is null))
        {
            throw new ArgumentException("A link is null.", nameof(Links));
        }

        if (Links.Distinct().Count() != Links.Count)
        {
            throw new ArgumentException("The same link is listed twice.", nameof(Links));
        }

        Engine.Validate();
        Stream.Validate();
        if (InterfaceMonitorInterval < TimeSpan.FromMilliseconds(10) || InterfaceMonitorInterval > TimeSpan.FromHours(1))
        {
            throw new ArgumentException($"{nameof(InterfaceMonitorInterval)} must be 10 ms to 1 hour (was {InterfaceMonitorInterval}).", nameof(InterfaceMonitorInterval));
        }

        if (InboundQueueCapacity < 16)
        {
            throw new ArgumentException($"{nameof(InboundQueueCapacity)} must be at least 16 (was {InboundQueueCapacity}).", nameof(InboundQueueCapacity));
        }

        ArgumentNullException.ThrowIfNull(LinkPolicies, nameof(LinkPolicies));
        if (LinkPolicies.Any(p => p is null))
        {
            throw new ArgumentException("A link policy is null.", nameof(LinkPolicies));
        }

        foreach (var policy in LinkPolicies)
        {
            policy.Validate();
        }

        if (LinkPolicies.Count > 0 && !MonitorInterfaces)
        {
            throw new ArgumentException($"{nameof(LinkPolicies)} need {nameof(MonitorInterfaces)}: links follow addresses through the interface monitor.", nameof(LinkPolicies));
        }

        if (!RegisterWithRouter.IsNone && !Reaches(RegisterWithRouter.Family))
        {
            throw new ArgumentException($"No link (nor link policy) has the address family of the registration router {RegisterWithRouter}.", nameof(RegisterWithRouter));
        }

        ArgumentNullException.ThrowIfNull(Registration, nameof(Registration));
        Registration.Validate();
        foreach (var r in Registration.Routers)
        {
            // With link policies the links (and their indices) come and go: the controller follows the family.
            var valid = LinkPolicies.Count > 0
                ? Reaches(r.Address.Family)
                : r.Interface >= 1 && r.Interface <= Links.Count && Links[r.Interface - 1].LocalAddress.Family == r.Address.Family;
            if (!valid)
            {
                throw new ArgumentException($"Registration router {r} needs the index of a link (1 to {Links.Count}) of its address family.", nameof(Registration));
            }
        }

        RouterControl?.Validate();
        RouterDiscovery?.Validate();
        RouterAdvertisement?.Validate();
        Resolver?.Validate();
        PublishRegistrations?.Validate();
        if (RouterRegistry is not null && RouterControl is null)
        {
            throw new ArgumentException("RouterRegistry needs RouterControl (the router whose registrations it shares).", nameof(RouterRegistry));
        }

        if (PublishRegistrations is not null && RouterControl is null)
        {
            throw new ArgumentException("PublishRegistrations needs RouterControl (the registrations it publishes).", nameof(PublishRegistrations));
        }

        if (Resolver is { AskRouters: true } && RegisterWithRouter.IsNone && Registration.Routers.Count == 0)
        {
            throw new ArgumentException("Resolver.AskRouters needs routers (RegisterWithRouter or Registration.Routers).", nameof(Resolver));
        }

        if (!DefaultRouter.IsNone && !Reaches(DefaultRouter.Family))
        {
            throw new ArgumentException($"No link (nor link policy) has the address family of the default router {DefaultRouter}.", nameof(DefaultRouter));
        }
    }
}
