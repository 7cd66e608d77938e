using System.Diagnostics.Metrics;
using Serval.Stack;

namespace Serval.Runtime;

/// <summary>
/// The host's instruments on the meter <see cref="MeterName"/> (one meter per host, instruments named
/// <c>serval.&lt;area&gt;.&lt;thing&gt;</c> with units; docs/design.md, "Observability"): observable counters over the
/// engine's counters and observable gauges of flows and rules, all tagged with the host name (never a flowID).
/// Per-service counters carry the service (<c>serval.service.id</c>, and <c>serval.service.name</c> when the host knows
/// it) for at most <see cref="MaxServiceSeries"/> services; the rest are summed under <c>serval.service.id</c> =
/// <c>other</c>, so a router with many registrations has a bounded number of series.
/// </summary>
internal sealed class HostMetrics : IDisposable
{
    public const string MeterName = "Serval.Host";

    /// <summary>Most services with series of their own; further services are summed into <c>other</c>.</summary>
    public const int MaxServiceSeries = 64;

    /// <summary>The <c>serval.service.id</c> of the services beyond <see cref="MaxServiceSeries"/>.</summary>
    public const string OtherServices = "other";

    private readonly EngineDriver _driver;
    private readonly Lock _seriesLock = new();
    private readonly HashSet<ServicePrefix> _serviceSeries = [];

    private readonly Meter _meter;
    private readonly Counter<long> _connectionsOpened;
    private readonly Counter<long> _connectionsFailed;
    private readonly KeyValuePair<string, object?> _hostTag;

    public HostMetrics(string host, EngineDriver driver, IMeterFactory? factory)
    {
        _hostTag = new KeyValuePair<string, object?>("serval.host", host);
        var options = new MeterOptions(MeterName) { Tags = [_hostTag] };
        _meter = factory?.Create(options) ?? new Meter(options);
        _driver = driver;
        var c = driver.Counters;
        ObserveDirections("serval.packets", "{packet}", "SAL packets handed to the engine (receive) and transmitted by it (transmit).", () => c.PacketsReceived, () => c.PacketsSent);
        ObserveDirections("serval.io", "By", "SAL bytes handed to the engine (receive) and transmitted by it (transmit).", () => c.BytesReceived, () => c.BytesSent);
        Observe("serval.packets.malformed", "{packet}", "Packets dropped because they did not parse.", () => c.Malformed);
        Observe("serval.packets.bad_checksum", "{packet}", "Packets dropped because the transport checksum failed.", () => c.BadTransportChecksum);
        Observe("serval.packets.unknown_flow", "{packet}", "Packets for a flowID no flow has.", () => c.UnknownFlow);
        Observe("serval.packets.forwarded", "{packet}", "First packets forwarded by service-router resolution.", () => c.Forwarded);
        Observe("serval.packets.forward_too_big", "{packet}", "First packets not forwarded because the SOURCE extension would take them over the egress MTU.", () => c.ForwardTooBig);
        Observe("serval.packets.forwarded_in_place", "{packet}", "Forwarded first packets rewritten in the receive buffer (docs/engine.md, \"Forwarding in place\").", () => c.ForwardedInPlace);
        Observe("serval.packets.forward_reemitted", "{packet}", "Forwarded first packets emitted again because their headers were not in the form this stack emits.", () => c.ForwardReemitted);
        Observe("serval.packets.forward_loops", "{packet}", "First packets not forwarded because this router was already in their SOURCE extension.", () => c.ForwardLoops);
        Observe("serval.packets.hop_limit_exceeded", "{packet}", "First packets not forwarded because their IP TTL / hop limit would have reached 0.", () => c.HopLimitExceeded);
        Observe("serval.packets.no_route", "{packet}", "First packets no rule resolved.", () => c.NoRoute);
        Observe("serval.packets.delayed", "{packet}", "Packets queued by DELAY rules.", () => c.Delayed);
        Observe("serval.packets.delay_released", "{packet}", "Packets held by DELAY rules and sent on once a rule resolved them.", () => c.DelayReleased);
        Observe("serval.sal.resets_sent", "{packet}", "SAL RSTs sent.", () => c.ResetsSent);
        Observe("serval.sal.control_retransmissions", "{packet}", "Control packets retransmitted.", () => c.ControlRetransmissions);
        Observe("serval.sal.syn_dropped", "{packet}", "SYNs dropped at a full accept queue.", () => c.SynDropped);
        Observe("serval.transport.spoof_transport_rst", "{segment}", "TCP RSTs ignored on stream flows (a reset needs the SAL nonce).", () => c.SpoofTransportRst);
        Observe("serval.transport.spoof_syn", "{segment}", "TCP SYNs on synchronized stream connections (RFC 5961 section 4).", () => c.SpoofSyn);
        Observe("serval.transport.spoof_fin", "{segment}", "TCP FINs ignored because they were not exactly in order.", () => c.SpoofFin);
        Observe("serval.transport.ack_unacceptable", "{segment}", "In-window TCP segments dropped for an unacceptable or missing ACK (RFC 5961 section 5).", () => c.AckUnacceptable);
        Observe("serval.transport.data_out_of_window", "{segment}", "TCP segments outside the receive window that were not old duplicates.", () => c.DataOutOfWindow);
        Observe("serval.transport.challenge_acks_sent", "{segment}", "Challenge ACKs sent (RFC 5961).", () => c.ChallengeAcksSent);
        Observe("serval.transport.challenge_acks_suppressed", "{segment}", "Challenge ACKs withheld by the per-connection rate limit.", () => c.ChallengeAcksSuppressed);
        Observe("serval.datagrams.dropped", "{datagram}", "Datagrams dropped at a full receive queue.", () => c.DatagramsDropped);
        Observe("serval.flows.faults", "{fault}", "Unexpected exceptions while processing one flow (the flow was reset, the host went on).", () => c.FlowFaults + driver.DriverFaults);
        Observe("serval.sal.syn_cookies_sent", "{packet}", "SYN-ACKs sent statelessly because a pending-request table was full.", () => c.SynCookiesSent);
        Observe("serval.sal.syn_cookies_accepted", "{connection}", "Connections created from a valid SYN cookie.", () => c.SynCookiesAccepted);
        Observe("serval.sal.syn_cookies_suppressed", "{packet}", "SYNs not answered with a cookie because their source used up its budget.", () => c.SynCookiesSuppressed);
        Observe("serval.sal.syn_cookies_rejected", "{packet}", "Handshake ACKs whose SYN cookie did not verify.", () => c.SynCookiesRejected);
        Observe("serval.sal.pending_evicted", "{request}", "Pending connection requests evicted for new SYNs.", () => c.PendingEvicted);
        Observe("serval.sal.timewait_recycled", "{flow}", "TIME-WAIT flows ended early at the TIME-WAIT cap.", () => c.TimeWaitRecycled);
        Observe("serval.sal.negative_answers_sent", "{packet}", "Service-not-found / refused answers sent to SYNs.", () => c.NegativeAnswersSent);
        Observe("serval.sal.negative_answers_suppressed", "{packet}", "Negative answers withheld by the rate limit.", () => c.NegativeAnswersSuppressed);
        Observe("serval.stream.user_timeouts", "{connection}", "Connections failed because sent data stayed unacknowledged for the user timeout.", () => c.UserTimeouts);
        Observe("serval.flows.stranded", "{flow}", "Times a flow lost its only usable path and began to wait for an address.", () => c.FlowsStranded);
        Observe("serval.flows.network_down", "{flow}", "Flows failed because no usable address came back within their user timeout.", () => c.StrandedTimeouts);
        Observe("serval.host.inbound_dropped", "{packet}", "Received packets dropped because the host's inbound queue was full.", () => driver.InboundDropped);
        _meter.CreateObservableGauge("serval.flows.active", () => driver.FlowCountSnapshot, "{flow}", "Live flows (connections, pending requests, closing flows).");
        _meter.CreateObservableGauge("serval.services.entries", () => driver.Engine.Services.Count, "{entry}", "Service-table entries (prefixes).");
        if (driver.RouterRegistry is { } registry)
        {
            // A router of a fleet (docs/router-fleet.md): the registry's health.
            var status = registry.Status;
            _meter.CreateObservableGauge("serval.router.registry.degraded", () => status.Degraded ? 1 : 0, "{state}", "1 while the fleet registry is unreachable (forwarding from the last table), else 0.");
            _meter.CreateObservableGauge("serval.router.registry.watch_lag", () => status.WatchLag.TotalSeconds, "s", "Last registry watch lag: from the accepting router's write to this router receiving the event.");
            _meter.CreateObservableGauge("serval.router.registry.watch_lag_max", () => status.MaxWatchLag.TotalSeconds, "s", "Largest registry watch lag seen.");
            _meter.CreateObservableGauge("serval.router.registry.revision", () => status.Revision, "{revision}", "Registry revision last received.");
            Observe("serval.router.registry.errors", "{error}", "Failed registry operations (each retried).", () => status.Errors);
            Observe("serval.router.registry.writes", "{request}", "Registry write transactions that succeeded.", () => status.Writes);
            Observe("serval.router.registry.events", "{event}", "Registry watch events received.", () => status.EventsReceived);
            Observe("serval.router.registry.snapshots", "{snapshot}", "Registry snapshots taken.", () => status.Snapshots);
        }

        // Per service (an entry of the service table): what its rules resolved and dropped.
        _meter.CreateObservableCounter(
            "serval.service.packets",
            () => ServiceMeasurements(static (c, resolved) => resolved ? c.PacketsResolved : c.PacketsDropped),
            "{packet}",
            "Packets the service-table entry of a service resolved (serval.service.outcome = resolved: first packets of flows, unconnected datagrams) or dropped (dropped).");
        _meter.CreateObservableCounter(
            "serval.service.io",
            () => ServiceMeasurements(static (c, resolved) => resolved ? c.BytesResolved : c.BytesDropped),
            "By",
            "Bytes of the packets counted by serval.service.packets.");

        _connectionsOpened = _meter.CreateCounter<long>("serval.connections.opened", "{connection}", "Connections established (connected or accepted).");
        _connectionsFailed = _meter.CreateCounter<long>("serval.connections.failed", "{connection}", "Connection attempts that failed.");
    }

    /// <summary>One counter of both directions, tagged <c>network.io.direction</c> as OpenTelemetry's semantic conventions do.</summary>
    private void ObserveDirections(string name, string unit, string description, Func<long> receive, Func<long> transmit) =>
        _meter.CreateObservableCounter(
            name,
            () => new[]
            {
                new Measurement<long>(receive(), new KeyValuePair<string, object?>("network.io.direction", "receive")),
                new Measurement<long>(transmit(), new KeyValuePair<string, object?>("network.io.direction", "transmit")),
            },
            unit,
            description);

    /// <summary>
    /// One measurement per service and outcome (resolved, dropped): the services of the table's entries, the first
    /// <see cref="MaxServiceSeries"/> seen keeping a series while their entry exists (a slot frees when it goes), the
    /// others summed under <see cref="OtherServices"/>.
    /// </summary>
    private Measurement<long>[] ServiceMeasurements(Func<Stack.Services.ServiceCounters, bool, long> read)
    {
        var entries = _driver.Engine.Services.Entries.ToList();
        var own = new List<Stack.Services.ServiceEntry>(Math.Min(entries.Count, MaxServiceSeries));
        long otherResolved = 0, otherDropped = 0;
        var hasOther = false;
        lock (_seriesLock)
        {
            var present = entries.Select(e => e.Prefix).ToHashSet();
            _serviceSeries.RemoveWhere(p => !present.Contains(p));
            foreach (var e in entries)
            {
                if (_serviceSeries.Contains(e.Prefix) || (_serviceSeries.Count < MaxServiceSeries && _serviceSeries.Add(e.Prefix)))
                {
                    own.Add(e);
                }
                else
                {
                    hasOther = true;
                    otherResolved += read(e.Counters, true);
                    otherDropped += read(e.Counters, false);
                }
            }
        }

        var result = new List<Measurement<long>>(2 * own.Count + 2);
        foreach (var e in own)
        {
            var id = new KeyValuePair<string, object?>(ServiceIdTag, e.Prefix.Length == ServiceId.Bits ? e.Prefix.Id.ToString() : e.Prefix.ToString());
            var name = _driver.ServiceLabels.NameOf(e.Prefix);
            result.Add(ServiceMeasurement(read(e.Counters, true), id, name, "resolved"));
            result.Add(ServiceMeasurement(read(e.Counters, false), id, name, "dropped"));
        }

        if (hasOther)
        {
            var other = new KeyValuePair<string, object?>(ServiceIdTag, OtherServices);
            result.Add(ServiceMeasurement(otherResolved, other, null, "resolved"));
            result.Add(ServiceMeasurement(otherDropped, other, null, "dropped"));
        }

        return [.. result];
    }

    /// <summary>The serviceID (64 hex digits) or prefix (<c>ID/bits</c>) of a per-service series.</summary>
    public const string ServiceIdTag = "serval.service.id";

    /// <summary>The service's name, on a per-service series of a service whose name the host knows.</summary>
    public const string ServiceNameTag = "serval.service.name";

    /// <summary>Whether a per-service measurement counts resolved or dropped packets.</summary>
    public const string OutcomeTag = "serval.service.outcome";

    private static Measurement<long> ServiceMeasurement(long value, KeyValuePair<string, object?> id, string? name, string outcome) =>
        name is null
            ? new Measurement<long>(value, id, new KeyValuePair<string, object?>(OutcomeTag, outcome))
            : new Measurement<long>(value, id, new KeyValuePair<string, object?>(ServiceNameTag, name), new KeyValuePair<string, object?>(OutcomeTag, outcome));

    private void Observe(string name, string unit, string description, Func<long> read) =>
        _meter.CreateObservableCounter(name, read, unit, description);

    public void ConnectionOpened(TransportProtocol protocol) =>
        _connectionsOpened.Add(1, new KeyValuePair<string, object?>("serval.transport", protocol == TransportProtocol.Stream ? "stream" : "datagram"));

    public void ConnectionFailed(ServalError error) =>
        _connectionsFailed.Add(1, new KeyValuePair<string, object?>("serval.error", error.ToString()));

    public void Dispose() => _meter.Dispose();
}
