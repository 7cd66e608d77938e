using Serval.Links;
using Serval.Runtime;
using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval;

/// <summary>
/// A Serval host (DESIGN.md, "The runtime"): one protocol engine driven on its own thread, with its links. Listeners,
/// connections and datagram sockets are created on a host; the host also exposes its service table (rules with
/// counters) and its flows. Dispose it to stop: open connections are reset, pending operations fail with
/// <see cref="ObjectDisposedException"/>, links are closed.
/// </summary>
public sealed partial class ServalHost : IAsyncDisposable
{
    private readonly EngineDriver _driver;

    private ServalHost(EngineDriver driver, ServalHostOptions options)
    {
        _driver = driver;
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
        return ValueTask.FromResult(new ServalHost(driver, options));
    }

    /// <summary>The options the host was started with.</summary>
    public ServalHostOptions Options { get; }

    /// <summary>The host's name (logs and the <c>serval.host</c> metric tag).</summary>
    public string Name => _driver.Name;

    /// <summary>Whether the host has stopped.</summary>
    public bool IsStopped => _driver.IsClosed;

    /// <summary>The interfaces as of start: loopback (index 0), then one per link.</summary>
    public IReadOnlyList<InterfaceInfo> Interfaces => _driver.Interfaces;

    /// <summary>The host's links, in interface order (interface index = position + 1).</summary>
    public IReadOnlyList<ServalLink> Links => _driver.Links;

    /// <summary>The engine's counters (readable from any thread).</summary>
    public EngineCounters Counters => _driver.Counters;

    internal EngineDriver Driver => _driver;

    /// <summary>A FORWARD target to <paramref name="nextHop"/> on this host's first link of the same address family.</summary>
    /// <exception cref="ArgumentException">No link has that address family.</exception>
    public ServiceTarget ForwardTo(LinkAddress nextHop) => _driver.ForwardTarget(nextHop);

    /// <summary>Every rule of the service table with its counters (a consistent snapshot; no wait for the engine).</summary>
    public IReadOnlyList<ServiceRuleInfo> GetRules() =>
        [.. _driver.Engine.Services.Entries.SelectMany(e => e.Rules.Select(r => ServiceRuleInfo.From(e, r)))];

    /// <summary>Adds a rule to the service table.</summary>
    public ValueTask<ServiceTableResult> AddRuleAsync(
        ServicePrefix prefix,
        ServiceTarget target,
        uint priority = ServiceTable.DefaultPriority,
        uint weight = ServiceTable.DefaultWeight,
        CancellationToken cancellationToken = default) =>
        RuleAsync("add", prefix, target, d => d.Engine.Services.Add(prefix, target, priority, weight, now: d.Now), cancellationToken);

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
        RuleAsync("modify", prefix, target, d => d.Engine.Services.Modify(prefix, target, priority: priority, weight: weight), cancellationToken);

    private async ValueTask<ServiceTableResult> RuleAsync(string operation, ServicePrefix prefix, ServiceTarget target, Func<EngineDriver, ServiceTableResult> change, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var result = await _driver.InvokeAsync(change).WaitAsync(cancellationToken).ConfigureAwait(false);
        HostLog.RuleChanged(_driver.Logger, Name, operation, prefix, target, result);
        return result;
    }

    /// <summary>A snapshot of every flow (connections, pending requests, closing flows) with its statistics.</summary>
    public async ValueTask<IReadOnlyList<FlowInfo>> GetFlowsAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return await _driver.InvokeAsync(d => d.Engine.GetFlows()).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The number of live flows, read on the engine thread.</summary>
    public async ValueTask<int> GetFlowCountAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return await _driver.InvokeAsync(d => d.Engine.FlowCount).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops the host: resets open connections, releases bound services, closes the links, ends the thread.</summary>
    public async ValueTask StopAsync(CancellationToken cancellationToken = default) =>
        await _driver.StopAsync().WaitAsync(cancellationToken).ConfigureAwait(false);

    /// <summary>Stops the host (see <see cref="StopAsync"/>).</summary>
    public ValueTask DisposeAsync() => StopAsync(CancellationToken.None);

    /// <inheritdoc/>
    public override string ToString() => Name;
}
