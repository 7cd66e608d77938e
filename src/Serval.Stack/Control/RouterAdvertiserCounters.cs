namespace Serval.Stack.ControlPlane;

/// <summary>Counters of a <see cref="RouterAdvertiser"/>. Read from any thread.</summary>
public sealed class RouterAdvertiserCounters
{
    private long _advertisementsSent;
    private long _solicitations;
    private long _solicitationsRateLimited;
    private long _malformed;
    private long _unauthenticated;
    private long _sendFailures;

    internal RouterAdvertiserCounters()
    {
    }

    /// <summary>Advertisements handed to the engine (one per link per round).</summary>
    public long AdvertisementsSent => CrossThread.Read(ref _advertisementsSent);

    /// <summary>Valid solicitations received.</summary>
    public long Solicitations => CrossThread.Read(ref _solicitations);

    /// <summary>Solicitations (and interface changes) not answered early because of <see cref="RouterAdvertiserOptions.SolicitedRate"/>.</summary>
    public long SolicitationsRateLimited => CrossThread.Read(ref _solicitationsRateLimited);

    /// <summary>Datagrams on the solicitation serviceID that were not a valid solicitation.</summary>
    public long Malformed => CrossThread.Read(ref _malformed);

    /// <summary>With a key: solicitations without a MAC or with a wrong one.</summary>
    public long Unauthenticated => CrossThread.Read(ref _unauthenticated);

    /// <summary>Advertisements the engine refused to send.</summary>
    public long SendFailures => CrossThread.Read(ref _sendFailures);

    internal void CountAdvertisementSent() => CrossThread.Increment(ref _advertisementsSent);

    internal void CountSolicitation() => CrossThread.Increment(ref _solicitations);

    internal void CountRateLimited() => CrossThread.Increment(ref _solicitationsRateLimited);

    internal void CountMalformed() => CrossThread.Increment(ref _malformed);

    internal void CountUnauthenticated() => CrossThread.Increment(ref _unauthenticated);

    internal void CountSendFailure() => CrossThread.Increment(ref _sendFailures);
}
