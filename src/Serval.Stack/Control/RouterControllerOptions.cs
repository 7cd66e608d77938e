using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>Settings of a <see cref="RouterController"/>. Validated once by its constructor.</summary>
public sealed record RouterControllerOptions
{
    /// <summary>The default settings.</summary>
    public static RouterControllerOptions Default { get; } = new();

    /// <summary>The serviceID the router listens on (default <see cref="ControlProtocol.RouterServiceId"/>).</summary>
    public ServiceId ServiceId { get; init; } = ControlProtocol.RouterServiceId;

    /// <summary>
    /// Interface on which registered hosts are reached; null (default) picks, per host, the up interface of the
    /// same address family whose address shares the longest prefix with the host's address.
    /// </summary>
    public int? Interface { get; init; }

    /// <summary>Shared HMAC-SHA256 key (at least 16 bytes); when set, unauthenticated, stale and replayed messages are ignored and counted.</summary>
    public ReadOnlyMemory<byte> Key { get; init; }

    /// <summary>
    /// Where self-certifying serviceIDs live (docs/control-protocol.md §5.1; default none): a Register or Unregister
    /// for a prefix that lies within one of these, or contains one, is accepted only when it is signed by the key of
    /// its serviceID (a /256 prefix), fresh (this router's epoch, a timestamp within <see cref="ReplayWindow"/>, a
    /// sequence number not seen before) and, for a router with a <see cref="Key"/>, authenticated as well. Signed
    /// registrations of serviceIDs outside these prefixes are checked the same way; unsigned ones there keep the
    /// rules of §5.
    /// </summary>
    public IReadOnlyList<ServicePrefix> SelfCertifyingPrefixes { get; init; } = [];

    /// <summary>With a key, and for signed registrations: how far a request's timestamp may be from the router clock (default 10 s).</summary>
    public TimeSpan ReplayWindow { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a sender's state (reply route, replay window) is kept after its last accepted message once it has no registration (default 30 s; above <see cref="ReplayWindow"/>).</summary>
    public TimeSpan PeerRetention { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Shortest lease granted (longer asked leases are granted up to <see cref="MaxLease"/>).</summary>
    public TimeSpan MinLease { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Longest lease granted.</summary>
    public TimeSpan MaxLease { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Priority of the FORWARD rules registrations install (default 10).</summary>
    public uint RulePriority { get; init; } = 10;

    /// <summary>Priority of the exact-match routes toward each sender's control socket (default 30000, below socket DEMUX rules).</summary>
    public uint ReplyRoutePriority { get; init; } = 30_000;

    /// <summary>Shortest prefix a host may register (default 1: nobody registers the default prefix).</summary>
    public int MinPrefixLength { get; init; } = 1;

    /// <summary>Most registrations held; more are rejected and counted.</summary>
    public int MaxRegistrations { get; init; } = 100_000;

    /// <summary>Most registrations one sender may hold.</summary>
    public int MaxRegistrationsPerPeer { get; init; } = 10_000;

    /// <summary>Most senders tracked.</summary>
    public int MaxPeers { get; init; } = 10_000;

    /// <summary>
    /// How long a host may use a Resolve answer (the lease field of a ResolveAck Ok; default 5 s): the rules it installs
    /// from the answer expire after this long, so a replica that leaves is forgotten by then.
    /// </summary>
    public TimeSpan ResolveLifetime { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a host may remember that this router knew nothing about a serviceID (ResolveAck NotFound; default 2 s).</summary>
    public TimeSpan ResolveNegativeLifetime { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Registration of this router's services with an upstream router (hierarchy), or null.</summary>
    public HostControllerOptions? Upstream { get; init; }

    /// <summary>
    /// Prefixes exported upstream in place of the registrations they cover: an aggregate is registered while at
    /// least one non-draining registration falls inside it, with the sum of their weights.
    /// </summary>
    public IReadOnlyList<ServicePrefix> UpstreamAggregates { get; init; } = [];

    /// <summary>Whether registrations no aggregate covers are exported upstream as they are (default true).</summary>
    public bool ExportUncovered { get; init; } = true;

    /// <summary>
    /// In a fleet (<see cref="RouterController.Registry"/>): the name this router writes as the accepting router of its
    /// registrations (shown by <c>servalctl router registrations</c>); null uses the epoch in hex.
    /// </summary>
    public string? FleetName { get; init; }

    /// <summary>Checks every value; throws <see cref="ArgumentException"/> naming the bad one.</summary>
    public void Validate()
    {
        if (ResolveLifetime <= TimeSpan.Zero || ResolveLifetime.TotalMilliseconds > ControlProtocol.MaxLeaseMilliseconds
            || ResolveNegativeLifetime <= TimeSpan.Zero || ResolveNegativeLifetime.TotalMilliseconds > ControlProtocol.MaxLeaseMilliseconds)
        {
            throw new ArgumentException("ResolveLifetime and ResolveNegativeLifetime must be positive and at most an hour.", nameof(ResolveLifetime));
        }

        if (ServiceId.IsZero)
        {
            throw new ArgumentException("The router needs a serviceID.", nameof(ServiceId));
        }

        if (Interface < 0)
        {
            throw new ArgumentException("Interface must be ≥ 0.", nameof(Interface));
        }

        if (!Key.IsEmpty && Key.Length < ControlProtocol.MinKeyLength)
        {
            throw new ArgumentException($"A key has at least {ControlProtocol.MinKeyLength} bytes.", nameof(Key));
        }

        if (ReplayWindow <= TimeSpan.Zero || PeerRetention <= ReplayWindow)
        {
            throw new ArgumentException("ReplayWindow must be positive and PeerRetention longer than it.", nameof(PeerRetention));
        }

        if (MinLease <= TimeSpan.Zero || MaxLease < MinLease || MaxLease.TotalMilliseconds > ControlProtocol.MaxLeaseMilliseconds)
        {
            throw new ArgumentException("Leases must satisfy 0 < MinLease ≤ MaxLease ≤ 1 hour.", nameof(MaxLease));
        }

        if (RulePriority > ServiceTable.MaxPriority || ReplyRoutePriority > ServiceTable.MaxPriority)
        {
            throw new ArgumentException("Priorities must not exceed the service table's maximum.", nameof(RulePriority));
        }

        if (MinPrefixLength is < 0 or > ServiceId.Bits)
        {
            throw new ArgumentException("MinPrefixLength is 0 to 256.", nameof(MinPrefixLength));
        }

        if (MaxRegistrations < 1 || MaxRegistrationsPerPeer < 1 || MaxPeers < 1)
        {
            throw new ArgumentException("Limits must be positive.", nameof(MaxRegistrations));
        }

        if (FleetName is { } name && (name.Length is 0 or > 128 || name.Any(c => char.IsControl(c) || c == '/')))
        {
            throw new ArgumentException("FleetName is 1 to 128 characters, without '/' or control characters.", nameof(FleetName));
        }

        ArgumentNullException.ThrowIfNull(UpstreamAggregates);
        if (Upstream is { } up)
        {
            up.Validate();
            if (up.Routers.Any(r => r.ServiceId == ServiceId))
            {
                throw new ArgumentException(
                    "An upstream router must listen on a serviceID other than this router's own (its exact DEMUX rule would capture the messages).",
                    nameof(Upstream));
            }
        }
    }
}
