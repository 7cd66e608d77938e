using System.Runtime.InteropServices;
using Serval.Attached;
using Serval.Backends;
using Serval.Embedded;
using Serval.Links;
using Serval.Runtime;
using Serval.Stack;

namespace Serval;

/// <summary>
/// A Serval host (docs/design.md, "The runtime"): one protocol engine driven on its own thread, with its links.
/// Listeners, connections and datagram sockets are created on a host; the host also exposes its flows and interfaces,
/// and its administration (rules, links, migration, router control) on <see cref="Admin"/>. Dispose it to stop: open connections are reset, pending operations fail with
/// <see cref="ObjectDisposedException"/>, links are closed.
/// <para>
/// A host is either embedded (<see cref="StartAsync"/>: this process runs the engine) or attached
/// (<see cref="AttachAsync"/>: the engine runs in servald and this process uses it through a Unix domain socket, see
/// docs/daemon-mode.md). Listeners, connections, streams and datagram sockets work the same on both; the members
/// that need the engine in this process (<see cref="Links"/>, <see cref="Interfaces"/>, <see cref="Counters"/>)
/// throw <see cref="NotSupportedException"/> on an attached host. The host is a facade over an
/// <see cref="IHostBackend"/>, one per mode (docs/api.md, "Embedded and attached").
/// </para>
/// </summary>
public sealed partial class ServalHost : IAsyncDisposable
{
    private readonly IHostBackend _backend;
    private ServalHostAdministration? _admin;

    private ServalHost(IHostBackend backend, ServalHostOptions options)
    {
        _backend = backend;
        Options = options;
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
        return ValueTask.FromResult(new ServalHost(new EmbeddedHost(driver), options));
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
        return new ServalHost(new AttachedHost(client), new ServalHostOptions { Name = client.Name });
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
    public bool IsAttached => _backend.IsAttached;

    /// <summary>The options the host was started with (attached: only the daemon host's <see cref="ServalHostOptions.Name"/>).</summary>
    public ServalHostOptions Options { get; }

    /// <summary>The host's name (logs and the <c>serval.host</c> metric tag); attached: the daemon host's name.</summary>
    public string Name => _backend.Name;

    /// <summary>Whether the host has stopped (attached: detached, or the daemon went away).</summary>
    public bool IsStopped => _backend.IsStopped;

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

    /// <summary>The engine driver of an embedded host (tests).</summary>
    /// <exception cref="NotSupportedException">The host is attached.</exception>
    internal EngineDriver Driver => _backend.RequireEngine(nameof(Driver));

    /// <summary>What the host's public members and the objects created on it use: the engine here, or servald.</summary>
    internal IHostBackend Backend => _backend;

    /// <summary>The host's administration: rules, link state, migration of any flow, router control (docs/api.md, "Administration").</summary>
    public ServalHostAdministration Admin => _admin ??= new ServalHostAdministration(this);

    /// <summary>The engine driver of an embedded host for <paramref name="member"/>.</summary>
    /// <exception cref="NotSupportedException">The host is attached.</exception>
    private EngineDriver Embedded(string member) => _backend.RequireEngine(member);

    /// <summary>The interfaces as they are now (loopback at index 0, then one per link, with <see cref="InterfaceInfo.IsUp"/>).</summary>
    public async ValueTask<IReadOnlyList<InterfaceInfo>> GetInterfacesAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return await Embedded(nameof(GetInterfacesAsync)).InvokeAsync(d => d.Engine.Interfaces).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A snapshot of every flow (connections, pending requests, closing flows) with its statistics.</summary>
    public async ValueTask<IReadOnlyList<FlowInfo>> GetFlowsAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return await _backend.GetFlowsAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The number of live flows, read on the engine thread.</summary>
    public async ValueTask<int> GetFlowCountAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return await _backend.GetFlowCountAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Stops the host: resets open connections, releases bound services, closes the links, ends the thread. Attached:
    /// closes this application's listeners, connections and sockets in the daemon (the daemon keeps running).
    /// </summary>
    public ValueTask StopAsync(CancellationToken cancellationToken = default) => _backend.StopAsync(cancellationToken);

    /// <summary>Stops the host (see <see cref="StopAsync"/>).</summary>
    public ValueTask DisposeAsync() => StopAsync(CancellationToken.None);

    /// <inheritdoc/>
    public override string ToString() => Name;
}
