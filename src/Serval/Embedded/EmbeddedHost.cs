using System.Diagnostics;
using Serval.Backends;
using Serval.Runtime;
using Serval.Stack;
using Serval.Stack.Services;

namespace Serval.Embedded;

/// <summary>
/// A host whose engine runs in this process (<see cref="ServalHost.StartAsync"/>): every operation is work on the
/// engine driver's thread (docs/runtime.md), except the service table's reads, which are lock-free.
/// </summary>
internal sealed class EmbeddedHost(EngineDriver driver) : IHostBackend
{
    /// <summary>The engine driver (tests and the members that need the engine in this process).</summary>
    public EngineDriver Driver => driver;

    public string Name => driver.Name;

    public bool IsAttached => false;

    public bool IsStopped => driver.IsClosed;

    public EngineDriver RequireEngine(string member) => driver;

    public async ValueTask<IConnectionBackend> ConnectAsync(ServalConnectionOptions options, TransportProtocol protocol, string? serviceName, Activity? activity, CancellationToken cancellationToken) =>
        await EmbeddedConnection.ConnectAsync(driver, options, protocol, activity, cancellationToken).ConfigureAwait(false);

    public async ValueTask<IListenerBackend> ListenAsync(ServalListenerOptions options, CancellationToken cancellationToken) =>
        await EmbeddedListener.ListenAsync(driver, options).ConfigureAwait(false);

    public async ValueTask<IDatagramSocketBackend> BindDatagramAsync(ServicePrefix? localPrefix, CancellationToken cancellationToken) =>
        await EmbeddedDatagramSocket.BindAsync(driver, localPrefix).ConfigureAwait(false);

    public async ValueTask<IReadOnlyList<FlowInfo>> GetFlowsAsync(CancellationToken cancellationToken) =>
        await driver.InvokeAsync(d => d.Engine.GetFlows()).WaitAsync(cancellationToken).ConfigureAwait(false);

    public async ValueTask<int> GetFlowCountAsync(CancellationToken cancellationToken) =>
        await driver.InvokeAsync(d => d.Engine.FlowCount).WaitAsync(cancellationToken).ConfigureAwait(false);

    public async ValueTask StopAsync(CancellationToken cancellationToken) =>
        await driver.StopAsync().WaitAsync(cancellationToken).ConfigureAwait(false);

    public void NameService(ServiceId service, string? name) => driver.ServiceLabels.Remember(service, name);

    public string DescribeService(ServicePrefix prefix) => driver.ServiceLabels.Of(prefix);

    public ServiceTarget ForwardTo(LinkAddress nextHop) => driver.ForwardTarget(nextHop);

    public IReadOnlyList<ServiceRuleInfo> GetRules() =>
        [.. driver.Engine.Services.Entries.SelectMany(e => e.Rules.Select(r => ServiceRuleInfo.From(e, r)))];

    public async ValueTask ChangeRuleAsync(RuleChange change, ServicePrefix prefix, ServiceTarget target, uint? priority, uint? weight, CancellationToken cancellationToken)
    {
        Func<EngineDriver, ServiceTableResult> apply = change switch
        {
            RuleChange.Add => d => d.Engine.Services.Add(prefix, target, priority ?? ServiceTable.DefaultPriority, weight ?? ServiceTable.DefaultWeight, now: d.Now),
            RuleChange.Remove => d => d.Engine.Services.Remove(prefix, target),
            _ => d => d.Engine.Services.Modify(prefix, target, priority: priority, weight: weight),
        };
        var result = await driver.InvokeAsync(apply).WaitAsync(cancellationToken).ConfigureAwait(false);
        var operation = change.Name();
        HostLog.RuleChanged(driver.Logger, driver.Name, operation, prefix, target, result);
        if (result != ServiceTableResult.Ok)
        {
            throw RuleException(result, prefix, target);
        }
    }

    /// <summary>The exception a failed service-table change reports.</summary>
    private static ServalException RuleException(ServiceTableResult result, ServicePrefix prefix, ServiceTarget target) => result switch
    {
        ServiceTableResult.AlreadyExists => new ServalException(ServalError.AlreadyExists, $"A rule {prefix} -> {target} already exists."),
        ServiceTableResult.NotFound => new ServalException(ServalError.NotFound, $"No rule {prefix} -> {target}."),
        _ => new ServalException(ServalError.InvalidArgument, $"{result}: the rule {prefix} -> {target} was refused."),
    };
}
