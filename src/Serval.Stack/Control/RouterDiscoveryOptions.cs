namespace Serval.Stack.ControlPlane;

/// <summary>Settings of a <see cref="RouterDiscoveryController"/> (docs/control-protocol.md §12). Validated by its constructor.</summary>
public sealed record RouterDiscoveryOptions
{
    /// <summary>The defaults.</summary>
    public static RouterDiscoveryOptions Default { get; } = new();

    /// <summary>
    /// Most routers registered with at once (default 4, 1 to 64). An advertisement from another router while this many
    /// are known is ignored and counted (<see cref="RouterDiscoveryCounters.RoutersRefused"/>), so a flood of forged
    /// advertisements cannot make the host register with more.
    /// </summary>
    public int MaxRouters { get; init; } = 4;

    /// <summary>Most advertisements processed a second (default 50; a burst of as many); more are dropped and counted.</summary>
    public double AdvertisementRate { get; init; } = 50;

    /// <summary>Shortest time a router is remembered after an advertisement, whatever it says (default 1 s).</summary>
    public TimeSpan MinLifetime { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest time a router is remembered after an advertisement, whatever it says (default 60 s).</summary>
    public TimeSpan MaxLifetime { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Solicitations sent (on every link with a broadcast address) at start and when an interface comes up, while no router is known (default 3; 0: none).</summary>
    public int SolicitAttempts { get; init; } = 3;

    /// <summary>Time between those solicitations (default 1 s).</summary>
    public TimeSpan SolicitInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Shared HMAC-SHA256 key (at least 16 bytes): advertisements without a valid MAC are ignored and solicitations
    /// carry one. Empty (default): unauthenticated. The registrations use the key of the registration settings.
    /// </summary>
    public ReadOnlyMemory<byte> Key { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (MaxRouters is < 1 or > 64)
        {
            throw new ArgumentException($"{nameof(MaxRouters)} must be 1 to 64 (was {MaxRouters}).", nameof(MaxRouters));
        }

        if (!(AdvertisementRate is >= 1 and <= 100_000))
        {
            throw new ArgumentException($"{nameof(AdvertisementRate)} must be 1 to 100000 a second (was {AdvertisementRate}).", nameof(AdvertisementRate));
        }

        if (MinLifetime <= TimeSpan.Zero || MaxLifetime < MinLifetime || MaxLifetime.TotalMilliseconds > ControlProtocol.MaxLeaseMilliseconds)
        {
            throw new ArgumentException($"{nameof(MinLifetime)} must be positive and at most {nameof(MaxLifetime)}, itself at most one hour.", nameof(MinLifetime));
        }

        if (SolicitAttempts is < 0 or > 100 || SolicitInterval < TimeSpan.FromMilliseconds(10) || SolicitInterval > TimeSpan.FromHours(1))
        {
            throw new ArgumentException($"{nameof(SolicitAttempts)} must be 0 to 100 and {nameof(SolicitInterval)} 10 ms to 1 hour.", nameof(SolicitAttempts));
        }

        if (!Key.IsEmpty && Key.Length < ControlProtocol.MinKeyLength)
        {
            throw new ArgumentException($"A key has at least {ControlProtocol.MinKeyLength} bytes.", nameof(Key));
        }
    }
}
