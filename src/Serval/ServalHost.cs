using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Serval.Attached;
using Serval.Daemon.Protocol;
using Serval.Links;
using Serval.Runtime;
using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval;

/// <summary>
/// A Serval host (docs/design.md, "The runtime"): one protocol engine driven on its own thread, with its links.
/// Listeners, connections and datagram sockets are created on a host; the host also exposes its service table (rules
/// with counters) and its flows. Dispose it to stop: open connections are reset, pending operations fail with
/// <see cref="ObjectDisposedException"/>, links are closed.
/// <para>
/// A host is either embedded (<see cref="StartAsync"/>: this process runs the engine) or attached
/// (<see cref="AttachAsync"/>: the engine runs in servald and this process uses it through a Unix domain socket, see
/// docs/daemon-mode.md). Listeners, connections, streams and datagram sockets work the same on both; the members
/// that need the engine in this process (<see cref="Links"/>, <see cref="Interfaces"/>, <see cref="Counters"/>)
/// throw <see cref="NotSupportedException"/> on an attached host.
/// </para>
/// </summary>
public sealed partial class ServalHost : IAsyncDisposable
{
    private readonly EngineDriver? _driver;
    private readonly DaemonClient? _daemon;
    private ServalHostAdministration? _admin;

    private ServalHost(EngineDriver driver, ServalHostOptions options)
    {
        _driver = driver;
        Options = options;
    }

    private ServalHost(DaemonClient daemon)
    {
        _daemon = daemon;
        Options = new ServalHostOptions { Name = daemon.Name };
    }

    /// <summary>Starts a host: creates its engine, brings up one interface per link and starts the engine thread.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public static ValueTask<ServalHost> StartAsync(ServalHostOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        cancellationToken.ThrowIfCancellationRequested();
        var driver = new EngineDriver(options);
        driver.Start();
        return ValueTask.FromResult(new ServalHost(driver, options));
    }

    /// <summary>
    /// Attaches to a running servald through its socket (<paramref name="socketPath"/>, e.g.
    /// <see cref="DefaultDaemonSocketPath"/>): the returned host (<see cref="IsAttached"/>) shares the daemon's engine
    /// and service table with every other attached application. Each listener, connection and datagram socket is one
    /// Unix connection to the daemon; when this process ends, the daemon closes them (services unregister at once).
    /// Disposing the attached host closes this application's sockets; the daemon keeps running.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="socketPath"/> is empty.</exception>
    /// <exception cref="ServalException">No daemon answers on the path (<see cref="ServalError.ConnectionRefused"/>).</exception>
    public static async ValueTask<ServalHost> AttachAsync(string socketPath, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(socketPath);
        cancellationToken.ThrowIfCancellationRequested();
        var client = await DaemonClient.AttachAsync(socketPath, cancellationToken).ConfigureAwait(false);
        return new ServalHost(client);
    }

    /// <summary>
    /// The path servald listens on when not configured otherwise (and <see cref="AttachAsync"/> callers usually want):
    /// <c>$XDG_RUNTIME_DIR/servald.sock</c> when that variable is set, else <c>/tmp/servald-UID.sock</c>.
    /// </summary>
    public static string DefaultDaemonSocketPath
    {
        get
        {
            var runtimeDir = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
            if (!string.IsNullOrEmpty(runtimeDir))
            {
                return Path.Combine(runtimeDir, "servald.sock");
            }

            var uid = OperatingSystem.IsWindows() ? 0u : GetUid();
            return Path.Combine("/tmp", $"servald-{uid}.sock");
        }
    }

    [LibraryImport("libc", EntryPoint = "getuid")]
    private static partial uint GetUid();

    /// <summary>
    /// The name of the <see cref="System.Diagnostics.ActivitySource"/> of Serval's spans (<c>serval.connect</c>,
    /// <c>serval.resolve</c>, <c>serval.accept</c>, <c>serval.migrate</c>; docs/observability.md): add it to the
    /// application's tracing (OpenTelemetry: <c>AddSource(ServalHost.ActivitySourceName)</c>).
    /// </summary>
    public const string ActivitySourceName = "Serval";

    /// <summary>
    /// The name of each host's <see cref="System.Diagnostics.Metrics.Meter"/> (tagged <c>serval.host</c>; instruments
    /// in docs/observability.md): add it to the application's metrics (OpenTelemetry: <c>AddMeter(ServalHost.MeterName)</c>).
    /// </summary>
    public const string MeterName = Runtime.HostMetrics.MeterName;

    /// <summary>Whether this host is attached to servald (<see cref="AttachAsync"/>) rather than embedded.</summary>
    public bool IsAttached => _daemon is not null;

    /// <summary>The options the host was started with (attached: only the daemon host's <see cref="ServalHostOptions.Name"/>).</summary>
    public ServalHostOptions Options { get; }

    /// <summary>The host's name (logs and the <c>serval.host</c> metric tag); attached: the daemon host's name.</summary>
    public string Name => _daemon?.Name ?? _driver!.Name;

    /// <summary>Whether the host has stopped (attached: detached, or the daemon went away).</summary>
    public bool IsStopped => _daemon?.IsDetached ?? _driver!.IsClosed;

    /// <summary>The interfaces as of start: loopback (index 0), then one per link.</summary>
    /// <exception cref="NotSupportedException">The host is attached (the interfaces belong to the daemon).</exception>
    public IReadOnlyList<InterfaceInfo> Interfaces => Embedded(nameof(Interfaces)).Interfaces;

    /// <summary>
    /// The host's links as they are now, in interface order (interface index = position + 1): those of
    /// <see cref="ServalHostOptions.Links"/>, then those the link policies created. A link retired because its address
    /// went away stays at its position (disposed, its interface down) until a new link takes the index.
    /// </summary>
    /// <exception cref="NotSupportedException">The host is attached (the link objects live in the daemon).</exception>
    public IReadOnlyList<ServalLink> Links => Embedded(nameof(Links)).Links;

    /// <summary>The engine's counters (readable from any thread).</summary>
    /// <exception cref="NotSupportedException">The host is attached (servalctl stats shows the daemon's counters).</exception>
    public EngineCounters Counters => Embedded(nameof(Counters)).Counters;

    /// <summary>The engine driver of an embedded host.</summary>
    /// <exception cref="InvalidOperationException">The host is attached.</exception>
    internal EngineDriver Driver => _driver ?? throw new InvalidOperationException("This Serval host is attached to servald: it has no engine in this process.");

    /// <summary>The daemon client of an attached host, or null.</summary>
    internal DaemonClient? Daemon => _daemon;

    /// <summary>The host's administration: service names for logs, resolver counters (docs/api.md, "Administration").</summary>
    public ServalHostAdministration Admin => _admin ??= new ServalHostAdministration(this);

    /// <summary>The engine driver of an embedded host for <paramref name="member"/>.</summary>
    /// <exception cref="NotSupportedException">The host is attached.</exception>
    internal EngineDriver EmbeddedDriver(string member) => Embedded(member);

    private EngineDriver Embedded(string member) =>
        _driver ?? throw new NotSupportedException($"ServalHost.{member} is not available on a host attached to servald ({_daemon!.SocketPath}): the engine runs in the daemon.");

    /// <summary>A FORWARD target to <paramref name="nextHop"/> on this host's first link of the same address family (attached: the daemon's links).</summary>
    /// <exception cref="ArgumentException">No link has that address family.</exception>
    public ServiceTarget ForwardTo(LinkAddress nextHop)
    {
        if (_daemon is null)
        {
            return _driver!.ForwardTarget(nextHop);
        }

        for (var i = 0; i < _daemon.LinkAddresses.Count; i++)
        {
            if (_daemon.LinkAddresses[i].Family == nextHop.Family)
            {
                return ServiceTarget.Forward(nextHop, i + 1);
            }
        }

        throw new ArgumentException($"No link of the daemon has the address family of {nextHop}.", nameof(nextHop));
    }

    /// <summary>
    /// Every rule of the service table with its counters (a consistent snapshot; no wait for the engine). Attached:
    /// the daemon's table, which blocks for one round trip to the daemon.
    /// </summary>
    /// <exception cref="ServalException">Attached, and the daemon went away.</exception>
    /// <exception cref="ObjectDisposedException">Attached, and the host was disposed.</exception>
    public IReadOnlyList<ServiceRuleInfo> GetRules()
    {
        if (_daemon is { } daemon)
        {
            var reply = daemon.RequestAsync(new JsonObject { ["op"] = "rules.list" }, CancellationToken.None).GetAwaiter().GetResult();
            return DaemonProtocol.FromNode<ServiceRuleInfo[]>(reply["rules"]) ?? [];
        }

        return [.. _driver!.Engine.Services.Entries.SelectMany(e => e.Rules.Select(r => ServiceRuleInfo.From(e, r)))];
    }

    /// <summary>Adds a rule to the service table.</summary>
    public ValueTask<ServiceTableResult> AddRuleAsync(
        ServicePrefix prefix,
        ServiceTarget target,
        uint priority = ServiceTable.DefaultPriority,
        uint weight = ServiceTable.DefaultWeight,
        CancellationToken cancellationToken = default) =>
        RuleAsync("add", prefix, target, d => d.Engine.Services.Add(prefix, target, priority, weight, now: d.Now), cancellationToken, priority, weight);

    /// <summary>Removes the rule of <paramref name="prefix"/> whose target is <paramref name="target"/>.</summary>
    public ValueTask<ServiceTableResult> RemoveRuleAsync(ServicePrefix prefix, ServiceTarget target, CancellationToken cancellationToken = default) =>
        RuleAsync("remove", prefix, target, d => d.Engine.Services.Remove(prefix, target), cancellationToken);

    /// <summary>Changes the priority and/or weight of a rule.</summary>
    public ValueTask<ServiceTableResult> ModifyRuleAsync(
        ServicePrefix prefix,
        ServiceTarget target,
        uint? priority = null,
        uint? weight = null,
        CancellationToken cancellationToken = default) =>
        RuleAsync("modify", prefix, target, d => d.Engine.Services.Modify(prefix, target, priority: priority, weight: weight), cancellationToken, priority, weight);

    private async ValueTask<ServiceTableResult> RuleAsync(string operation, ServicePrefix prefix, ServiceTarget target, Func<EngineDriver, ServiceTableResult> change, CancellationToken cancellationToken, uint? priority = null, uint? weight = null)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_daemon is { } daemon)
        {
            var reply = await daemon.RequestAsync(
                new JsonObject
                {
                    ["op"] = "rules.change",
                    ["change"] = operation,
                    ["prefix"] = prefix.ToString(),
                    ["target"] = DaemonProtocol.ToNode(target),
                    ["priority"] = priority,
                    ["weight"] = weight,
                },
                cancellationToken).ConfigureAwait(false);
            return Enum.Parse<ServiceTableResult>((string)reply["result"]!);
        }

        var driver = Driver;
        var result = await driver.InvokeAsync(change).WaitAsync(cancellationToken).ConfigureAwait(false);
        HostLog.RuleChanged(driver.Logger, Name, operation, prefix, target, result);
        return result;
    }

    /// <summary>A snapshot of every flow (connections, pending requests, closing flows) with its statistics.</summary>
    public async ValueTask<IReadOnlyList<FlowInfo>> GetFlowsAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_daemon is { } daemon)
        {
            var reply = await daemon.RequestAsync(new JsonObject { ["op"] = "flows.list" }, cancellationToken).ConfigureAwait(false);
            return DaemonProtocol.FromNode<FlowInfo[]>(reply["flows"]) ?? [];
        }

        return await Driver.InvokeAsync(d => d.Engine.GetFlows()).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The number of live flows, read on the engine thread.</summary>
    public async ValueTask<int> GetFlowCountAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_daemon is { } daemon)
        {
            var reply = await daemon.RequestAsync(new JsonObject { ["op"] = "flows.count" }, cancellationToken).ConfigureAwait(false);
            return (int)reply["count"]!;
        }

        return await Driver.InvokeAsync(d => d.Engine.FlowCount).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Stops the host: resets open connections, releases bound services, closes the links, ends the thread. Attached:
    /// closes this application's listeners, connections and sockets in the daemon (the daemon keeps running).
    /// </summary>
    public async ValueTask StopAsync(CancellationToken cancellationToken = default)
    {
        if (_daemon is { } daemon)
        {
            await daemon.DetachAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            return;
        }

        await _driver!.StopAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops the host (see <see cref="StopAsync"/>).</summary>
    public ValueTask DisposeAsync() => StopAsync(CancellationToken.None);

    /// <inheritdoc/>
    public override string ToString() => Name;
}
