using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// Settings of a <see cref="HostController"/> (and of a router's upstream registration,
/// <see cref="RouterControllerOptions.Upstream"/>). Validated once by the controller's constructor.
/// </summary>
public sealed record HostControllerOptions
{
    /// <summary>The default settings (no router: nothing is registered).</summary>
    public static HostControllerOptions Default { get; } = new();

    /// <summary>The service routers to register with: every registration goes to each of them, or (<see cref="RouterSelection.One"/>) to one at a time.</summary>
    public IReadOnlyList<RouterEndpoint> Routers { get; init; } = [];

    /// <summary>
    /// Register with every router (<see cref="RouterSelection.All"/>, default: independent routers, each holding its
    /// own table) or with one at a time (<see cref="RouterSelection.One"/>: a fleet sharing its registrations, where
    /// one router suffices; the next router of the list is used when the current one leaves a round unanswered
    /// <see cref="FailoverAttempts"/> times).
    /// </summary>
    public RouterSelection RouterSelection { get; init; } = RouterSelection.All;

    /// <summary>With <see cref="RouterSelection.One"/>: messages of one round a router leaves unanswered before the next router is used (default 2).</summary>
    public int FailoverAttempts { get; init; } = 2;

    /// <summary>How often an acknowledged registration is refreshed (default 1 s; a random 0–10 % earlier).</summary>
    public TimeSpan RefreshInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The lease asked for: the router removes a registration not refreshed for this long (default 3 s).</summary>
    public TimeSpan Lease { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>Wait before the first retransmission of an unanswered message; doubles per attempt up to <see cref="RefreshInterval"/>.</summary>
    public TimeSpan RetryInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>How many times an Unregister is sent without an answer before the lease is left to expire.</summary>
    public int MaxUnregisterAttempts { get; init; } = 3;

    /// <summary>Shared HMAC-SHA256 key (at least 16 bytes), or empty for unauthenticated messages.</summary>
    public ReadOnlyMemory<byte> Key { get; init; }

    /// <summary>Weight of a registration without an entry in <see cref="Weights"/> (default 1).</summary>
    public uint DefaultWeight { get; init; } = 1;

    /// <summary>Per-prefix weights (exact prefix match); <see cref="HostController.SetWeight"/> overrides at run time.</summary>
    public IReadOnlyDictionary<ServicePrefix, uint>? Weights { get; init; }

    /// <summary>Which bound prefixes to register (null: all of them).</summary>
    public Func<ServicePrefix, bool>? Filter { get; init; }

    /// <summary>Whether to install the default rule (FORWARD, prefix /0) toward each router (default true).</summary>
    public bool InstallDefaultRule { get; init; } = true;

    /// <summary>Priority of the default rule toward the routers (above the broadcast rule's 1; default 10).</summary>
    public uint DefaultRulePriority { get; init; } = 10;

    /// <summary>Most prefixes tracked at once (registered or being unregistered); more are ignored and counted.</summary>
    public int MaxRegistrations { get; init; } = 65_536;

    /// <summary>Resolve messages sent to one router (the first, then retransmissions after <see cref="RetryInterval"/>, doubling) before the next router is asked (default 2).</summary>
    public int ResolveAttempts { get; init; } = 2;

    /// <summary>Most Resolve exchanges in progress at once (default 1024).</summary>
    public int MaxQueries { get; init; } = 1024;

    /// <summary>Checks every value; throws <see cref="ArgumentException"/> naming the bad one.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Routers);
        foreach (var r in Routers)
        {
            if (r.Address.IsNone || r.Interface < 0 || r.ServiceId.IsZero)
            {
                throw new ArgumentException($"Router endpoint {r} needs an address, an interface index ≥ 0 and a serviceID.", nameof(Routers));
            }
        }

        if (RefreshInterval <= TimeSpan.Zero || RetryInterval <= TimeSpan.Zero)
        {
            throw new ArgumentException("RefreshInterval and RetryInterval must be positive.", nameof(RefreshInterval));
        }

        if (Lease <= RefreshInterval || Lease.TotalMilliseconds > ControlProtocol.MaxLeaseMilliseconds)
        {
            throw new ArgumentException($"Lease ({Lease}) must exceed RefreshInterval ({RefreshInterval}) and be at most one hour.", nameof(Lease));
        }

        if (!Enum.IsDefined(RouterSelection) || FailoverAttempts < 1)
        {
            throw new ArgumentException("RouterSelection must be All or One, and FailoverAttempts positive.", nameof(RouterSelection));
        }

        if (MaxUnregisterAttempts < 1 || MaxRegistrations < 1 || ResolveAttempts < 1 || MaxQueries < 1)
        {
            throw new ArgumentException("MaxUnregisterAttempts, MaxRegistrations, ResolveAttempts and MaxQueries must be positive.", nameof(MaxRegistrations));
        }

        if (!Key.IsEmpty && Key.Length < ControlProtocol.MinKeyLength)
        {
            throw new ArgumentException($"A key has at least {ControlProtocol.MinKeyLength} bytes.", nameof(Key));
        }

        if (DefaultWeight is 0 or > ControlProtocol.MaxWeight || (Weights?.Values.Any(w => w is 0 or > ControlProtocol.MaxWeight) ?? false))
        {
            throw new ArgumentException("Weights are 1 to 2^31 - 1.", nameof(Weights));
        }

        if (DefaultRulePriority > ServiceTable.MaxPriority)
        {
            throw new ArgumentException("DefaultRulePriority is above the service table's maximum.", nameof(DefaultRulePriority));
        }
    }
}

/// <summary>Which of its routers a host registers with (<see cref="HostControllerOptions.RouterSelection"/>).</summary>
public enum RouterSelection
{
    /// <summary>Every registration goes to every router.</summary>
    All,

    /// <summary>Every registration goes to one router, the first of the list that answers; the next one when it stops answering.</summary>
    One,
}
