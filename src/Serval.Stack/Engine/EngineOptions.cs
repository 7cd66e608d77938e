using Serval.Wire;

namespace Serval.Stack;

/// <summary>
/// Engine settings. Defaults follow docs/protocol.md (ours where it differs from the reference). Validated once by the
/// <see cref="Engine"/> constructor.
/// </summary>
public sealed record EngineOptions
{
    /// <summary>The default settings.</summary>
    public static EngineOptions Default { get; } = new();

    /// <summary>Host or service-router resolution.</summary>
    public EngineMode Mode { get; init; } = EngineMode.Host;

    /// <summary>Initial control-channel retransmission timeout (docs/protocol.md §6: 1 s).</summary>
    public TimeSpan InitialRto { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Lower bound of the control-channel RTO.</summary>
    public TimeSpan MinRto { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Upper bound of the control-channel RTO.</summary>
    public TimeSpan MaxRto { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Control packets are retransmitted this many times before the flow fails with a timeout.</summary>
    public int MaxControlRetransmissions { get; init; } = 15;

    /// <summary>How long a pending connection request lives without the client's ACK.</summary>
    public TimeSpan PendingRequestLifetime { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How many times the server retransmits a SYN-ACK on its own timer.</summary>
    public int MaxSynAckRetransmissions { get; init; } = 5;

    /// <summary>Most pending connection requests per listener; SYNs beyond are dropped and counted.</summary>
    public int MaxPendingRequests { get; init; } = 1024;

    /// <summary>
    /// Answer SYNs without state (SYN cookies) while a listener's pending-request table is full, so that junk SYNs cannot
    /// lock legitimate clients out; off: such SYNs are dropped.
    /// </summary>
    public bool SynCookies { get; init; } = true;

    /// <summary>
    /// Most cookie SYN-ACKs per second to one source (link source address, with the SYN's originator when it came through
    /// a router), burst the same; beyond, the source's SYNs are dropped (counted as SynCookiesSuppressed) before the keyed
    /// hash and the answer. 0 for no limit.
    /// </summary>
    public int SynCookiesPerSourcePerSecond { get; init; } = 1000;

    /// <summary>
    /// Most negative answers (service not found, refused) sent per second, with a burst of the same size (like ICMP
    /// error rate limits); 0 sends none.
    /// </summary>
    public int NegativeAnswersPerSecond { get; init; } = 100;

    /// <summary>TIME-WAIT duration.</summary>
    public TimeSpan TimeWait { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Most released flows kept in TIME-WAIT (as compact records); at the cap the oldest is ended first (like Linux's
    /// tcp_max_tw_buckets).
    /// </summary>
    public int MaxTimeWaitFlows { get; init; } = 65_536;

    /// <summary>
    /// How long FIN-WAIT-2 waits for the peer's FIN once the application has closed the flow (a half-closed flow it still
    /// holds waits as long as the peer keeps it open).
    /// </summary>
    public TimeSpan FinWait2Timeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Most packets held by DELAY rules at once.</summary>
    public int DelayQueueCapacity { get; init; } = 1024;

    /// <summary>How long a delayed packet waits for a verdict before it is dropped.</summary>
    public TimeSpan DelayQueueLifetime { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Most datagrams queued for reading per datagram socket or flow; more are dropped and counted.</summary>
    public int DatagramQueueCapacity { get; init; } = 1024;

    /// <summary>Largest datagram payload accepted by a send.</summary>
    public int MaxDatagramSize { get; init; } = 65000;

    /// <summary>
    /// How many service routers a first packet (SYN or unconnected datagram) sent through a FORWARD rule must be able to
    /// cross: each adds its address to the packet's SOURCE extension, so the sender refuses a first packet that would
    /// not fit the interface's MTU after that growth (docs/engine.md, "Forwarding and the MTU"). 0 to 18; default 2 (a
    /// host's router and one router above it: 16 bytes over IPv4, 52 over IPv6).
    /// </summary>
    public int ReservedRouterHops { get; init; } = 2;

    /// <summary>Most events held for the driver; the oldest are discarded beyond (and counted).</summary>
    public int EventQueueCapacity { get; init; } = 65536;

    /// <summary>
    /// Move flows automatically (RSYN) when their interface goes down — to the first remaining up interface of the
    /// same address family — or when their interface's address changes (to the new address).
    /// </summary>
    public bool AutoMigrate { get; init; } = true;

    /// <summary>
    /// While our RSYN is unanswered, also send each copy through the service table towards the peer's service, so a
    /// service router can relay it to the peer's current registration when the peer moved too (docs/engine.md, "Both
    /// ends move"). Only the connecting side, which knows the peer's serviceID, relays; only through FORWARD rules.
    /// </summary>
    public bool RelayRsyn { get; init; } = true;

    /// <summary>
    /// How long a service router keeps an RSYN it relayed, to forward it again at once should the service's registration
    /// move to another address meanwhile (docs/engine.md, "Both ends move"): the mover's RSYN often arrives before the
    /// peer's registration from its own new address. At most 256 are kept. Zero keeps none. Default 2 s.
    /// </summary>
    public TimeSpan RelayHold { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Checks every value; throws <see cref="ArgumentException"/> naming the bad one.</summary>
    public void Validate()
    {
        static void Positive(TimeSpan t, string name)
        {
            if (t <= TimeSpan.Zero)
            {
                throw new ArgumentException($"{name} must be positive; got {t}.", name);
            }
        }

        Positive(InitialRto, nameof(InitialRto));
        if (RelayHold < TimeSpan.Zero)
        {
            throw new ArgumentException($"RelayHold must not be negative; got {RelayHold}.", nameof(RelayHold));
        }

        Positive(MinRto, nameof(MinRto));
        Positive(MaxRto, nameof(MaxRto));
        Positive(PendingRequestLifetime, nameof(PendingRequestLifetime));
        Positive(TimeWait, nameof(TimeWait));
        Positive(FinWait2Timeout, nameof(FinWait2Timeout));
        Positive(DelayQueueLifetime, nameof(DelayQueueLifetime));
        if (MinRto > MaxRto)
        {
            throw new ArgumentException($"MinRto ({MinRto}) exceeds MaxRto ({MaxRto}).", nameof(MinRto));
        }

        if (MaxControlRetransmissions is < 0 or > 1000)
        {
            throw new ArgumentException("MaxControlRetransmissions must be 0 to 1000.", nameof(MaxControlRetransmissions));
        }

        if (MaxSynAckRetransmissions is < 0 or > 100)
        {
            throw new ArgumentException("MaxSynAckRetransmissions must be 0 to 100.", nameof(MaxSynAckRetransmissions));
        }

        if (SynCookiesPerSourcePerSecond < 0)
        {
            throw new ArgumentException("SynCookiesPerSourcePerSecond must not be negative.", nameof(SynCookiesPerSourcePerSecond));
        }

        if (NegativeAnswersPerSecond < 0)
        {
            throw new ArgumentException("NegativeAnswersPerSecond must not be negative.", nameof(NegativeAnswersPerSecond));
        }

        if (MaxTimeWaitFlows < 0)
        {
            throw new ArgumentException("MaxTimeWaitFlows must not be negative.", nameof(MaxTimeWaitFlows));
        }

        if (MaxPendingRequests < 1 || DelayQueueCapacity < 0 || DatagramQueueCapacity < 1 || EventQueueCapacity < 16)
        {
            throw new ArgumentException("Queue bounds must be positive (event queue at least 16).");
        }

        if (ReservedRouterHops is < 0 or > SalSourceRoute.MaxV4Addresses - 2)
        {
            throw new ArgumentException($"ReservedRouterHops must be 0 to {SalSourceRoute.MaxV4Addresses - 2}; got {ReservedRouterHops}.", nameof(ReservedRouterHops));
        }

        if (MaxDatagramSize is < 1 or > 65_000)
        {
            throw new ArgumentException("MaxDatagramSize must be 1 to 65000 bytes.", nameof(MaxDatagramSize));
        }
    }
}
