namespace Serval.Stack.ControlPlane;

/// <summary>Counters of a <see cref="RouterDiscoveryController"/>. Read from any thread.</summary>
public sealed class RouterDiscoveryCounters
{
    private long _advertisements;
    private long _malformed;
    private long _unauthenticated;
    private long _rateLimited;
    private long _routersDiscovered;
    private long _routersRefused;
    private long _routersExpired;
    private long _solicitationsSent;

    internal RouterDiscoveryCounters()
    {
    }

    /// <summary>Valid advertisements processed.</summary>
    public long Advertisements => CrossThread.Read(ref _advertisements);

    /// <summary>Datagrams on the advertisement serviceID that were not a valid advertisement.</summary>
    public long Malformed => CrossThread.Read(ref _malformed);

    /// <summary>With a key: advertisements without a MAC or with a wrong one.</summary>
    public long Unauthenticated => CrossThread.Read(ref _unauthenticated);

    /// <summary>Datagrams dropped unread because more arrived than <see cref="RouterDiscoveryOptions.AdvertisementRate"/>.</summary>
    public long RateLimited => CrossThread.Read(ref _rateLimited);

    /// <summary>Routers the host started registering with.</summary>
    public long RoutersDiscovered => CrossThread.Read(ref _routersDiscovered);

    /// <summary>Advertisements of new routers ignored because <see cref="RouterDiscoveryOptions.MaxRouters"/> were known.</summary>
    public long RoutersRefused => CrossThread.Read(ref _routersRefused);

    /// <summary>Routers forgotten because no advertisement came within their lifetime.</summary>
    public long RoutersExpired => CrossThread.Read(ref _routersExpired);

    /// <summary>Solicitations handed to the engine (one per link per round).</summary>
    public long SolicitationsSent => CrossThread.Read(ref _solicitationsSent);

    internal void CountAdvertisement() => CrossThread.Increment(ref _advertisements);

    internal void CountMalformed() => CrossThread.Increment(ref _malformed);

    internal void CountUnauthenticated() => CrossThread.Increment(ref _unauthenticated);

    internal void CountRateLimited() => CrossThread.Increment(ref _rateLimited);

    internal void CountDiscovered() => CrossThread.Increment(ref _routersDiscovered);

    internal void CountRefused() => CrossThread.Increment(ref _routersRefused);

    internal void CountExpired() => CrossThread.Increment(ref _routersExpired);

    internal void CountSolicitationSent() => CrossThread.Increment(ref _solicitationsSent);
}
