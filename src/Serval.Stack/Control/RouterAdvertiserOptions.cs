namespace Serval.Stack.ControlPlane;

/// <summary>Settings of a <see cref="RouterAdvertiser"/> (docs/control-protocol.md §12). Validated by its constructor.</summary>
public sealed record RouterAdvertiserOptions
{
    /// <summary>The defaults: an advertisement every second, remembered for 3 s, at most 10 answers to solicitations a second.</summary>
    public static RouterAdvertiserOptions Default { get; } = new();

    /// <summary>Time between unsolicited advertisements on every link (default 1 s; 50 ms to 1 h).</summary>
    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long hosts may remember the router after an advertisement (default 3 s; more than <see cref="Interval"/>, at most 1 h).</summary>
    public TimeSpan Lifetime { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Most advertisements a second sent early because of solicitations or an interface coming up (default 10; a
    /// burst of as many). Solicitations beyond it are counted and wait for the next periodic advertisement.
    /// </summary>
    public double SolicitedRate { get; init; } = 10;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (Interval < TimeSpan.FromMilliseconds(50) || Interval > TimeSpan.FromHours(1))
        {
            throw new ArgumentException($"{nameof(Interval)} must be 50 ms to 1 hour (was {Interval}).", nameof(Interval));
        }

        if (Lifetime <= Interval || Lifetime.TotalMilliseconds > ControlProtocol.MaxLeaseMilliseconds)
        {
            throw new ArgumentException($"{nameof(Lifetime)} ({Lifetime}) must exceed {nameof(Interval)} ({Interval}) and be at most one hour.", nameof(Lifetime));
        }

        if (!(SolicitedRate is >= 0 and <= 10_000))
        {
            throw new ArgumentException($"{nameof(SolicitedRate)} must be 0 to 10000 a second (was {SolicitedRate}).", nameof(SolicitedRate));
        }
    }
}
