using Serval.Stack;

namespace Serval.Daemon;

/// <summary>The <c>Serval</c> configuration section of servald (appsettings.json, environment, command line).</summary>
internal sealed class DaemonOptions
{
    /// <summary>The configuration section name.</summary>
    public const string Section = "Serval";

    /// <summary>Host name (logs, metric tag).</summary>
    public string Name { get; set; } = "servald";

    /// <summary>Host or service router.</summary>
    public EngineMode Mode { get; set; } = EngineMode.Host;

    /// <summary>How long a closed flow lingers in TIME-WAIT (<see cref="EngineOptions.TimeWait"/>); null keeps the engine default (60 s).</summary>
    public TimeSpan? TimeWait { get; set; }

    /// <summary>
    /// A service router (<c>address[:port]</c>) to register this host's bound services with (those of attached
    /// applications included); null registers nowhere.
    /// </summary>
    public string? RegisterWithRouter { get; set; }

    /// <summary>UDP links; none configured (and no <see cref="LinkPolicies"/>) means one on 127.0.0.1:54325.</summary>
    public List<UdpEndpoint>? Udp { get; set; }

    /// <summary>Links that follow the host's addresses (created as addresses appear, retired as they go); Linux.</summary>
    public List<LinkPolicySettings>? LinkPolicies { get; set; }

    /// <summary>Also open a raw IP link (protocol 144, needs CAP_NET_RAW) on each UDP link's address (default off).</summary>
    public bool RawIp { get; set; }

    /// <summary>Path of the control socket; null uses <see cref="ControlSocketPath.Default"/>.</summary>
    public string? ControlSocket { get; set; }

    /// <summary>Prometheus endpoint, e.g. <c>http://127.0.0.1:9465/metrics/</c>; null disables it. Loopback only.</summary>
    public string? MetricsUrl { get; set; }

    /// <summary>OpenTelemetry export of metrics and spans over OTLP; null (or no endpoint) exports nothing.</summary>
    public OtlpSettings? Otlp { get; set; }

    /// <summary>Host mode: registration of the bound services with service routers; null registers nothing.</summary>
    public RegistrationSettings? Registration { get; set; }

    /// <summary>ServiceRouter mode: the router controller (accepting registrations); null uses the defaults.</summary>
    public RouterSettings? Router { get; set; }

    /// <summary>
    /// Host mode without configured routers: listen for router advertisements on links with a broadcast address and
    /// register with the routers heard (default true; docs/control-protocol.md §12).
    /// </summary>
    public bool RouterDiscovery { get; set; } = true;

    /// <summary>Resolution on demand (a default DELAY rule and its resolvers); null runs none.</summary>
    public ResolverSettings? Resolver { get; set; }

    /// <summary>The control socket path to use.</summary>
    public string ControlSocketOrDefault => string.IsNullOrEmpty(ControlSocket) ? ControlSocketPath.Default : ControlSocket;
}
