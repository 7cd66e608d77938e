using System.Diagnostics;
using Serval.Runtime;
using Serval.Stack;
using Serval.Stack.Services;

namespace Serval.Backends;

/// <summary>
/// What a <see cref="ServalHost"/> and its <see cref="ServalHostAdministration"/> do (docs/api.md, "Embedded and
/// attached"): run the engine in this process (<see cref="Embedded.EmbeddedHost"/>) or use servald's
/// (<see cref="Attached.AttachedHost"/>). It also makes the backends of the objects created on the host.
/// </summary>
internal interface IHostBackend
{
    /// <summary>The host's name (attached: the daemon host's).</summary>
    string Name { get; }

    /// <summary>Whether the engine runs in servald.</summary>
    bool IsAttached { get; }

    /// <summary>Whether the host stopped (attached: detached, or the daemon went away).</summary>
    bool IsStopped { get; }

    /// <summary>
    /// The engine driver, for the members that need the engine in this process (<paramref name="member"/> names the
    /// public member in the message).
    /// </summary>
    /// <exception cref="NotSupportedException">The host is attached.</exception>
    EngineDriver RequireEngine(string member);

    /// <summary>Opens a flow (stream or connected datagrams) and completes when it is established.</summary>
    /// <param name="options">The validated options.</param>
    /// <param name="protocol">The transport.</param>
    /// <param name="serviceName">The name the service was given by, if any (logs, servald's tables).</param>
    /// <param name="activity">The connect span, parent of what the connect starts (an on-demand resolution).</param>
    /// <param name="cancellationToken">Aborts the attempt.</param>
    ValueTask<IConnectionBackend> ConnectAsync(ServalConnectionOptions options, TransportProtocol protocol, string? serviceName, Activity? activity, CancellationToken cancellationToken);

    /// <summary>Binds a listener (validated options).</summary>
    ValueTask<IListenerBackend> ListenAsync(ServalListenerOptions options, CancellationToken cancellationToken);

    /// <summary>Binds an unconnected datagram socket to <paramref name="localPrefix"/>, or unbound.</summary>
    ValueTask<IDatagramSocketBackend> BindDatagramAsync(ServicePrefix? localPrefix, CancellationToken cancellationToken);

    /// <summary>Every flow's snapshot.</summary>
    ValueTask<IReadOnlyList<FlowInfo>> GetFlowsAsync(CancellationToken cancellationToken);

    /// <summary>The number of live flows.</summary>
    ValueTask<int> GetFlowCountAsync(CancellationToken cancellationToken);

    /// <summary>Stops the host (attached: detaches; the daemon keeps running).</summary>
    ValueTask StopAsync(CancellationToken cancellationToken);

    /// <summary>Remembers the name a service's ID was hashed from, for log lines (attached: nothing, the daemon logs).</summary>
    void NameService(ServiceId service, string? name);

    /// <summary>A service as the host's log lines show it.</summary>
    string DescribeService(ServicePrefix prefix);

    /// <summary>A FORWARD target to <paramref name="nextHop"/> on the first link of its address family.</summary>
    ServiceTarget ForwardTo(LinkAddress nextHop);

    /// <summary>Every rule of the service table with its counters.</summary>
    IReadOnlyList<ServiceRuleInfo> GetRules();

    /// <summary>Adds, removes or modifies a rule; throws <see cref="ServalException"/> when the table refuses.</summary>
    ValueTask ChangeRuleAsync(RuleChange change, ServicePrefix prefix, ServiceTarget target, uint? priority, uint? weight, CancellationToken cancellationToken);
}

/// <summary>A change to the service table through <see cref="IHostBackend.ChangeRuleAsync"/>.</summary>
internal enum RuleChange
{
    /// <summary>Add a rule.</summary>
    Add,

    /// <summary>Remove a rule.</summary>
    Remove,

    /// <summary>Change a rule's priority and/or weight.</summary>
    Modify,
}

/// <summary>Names of <see cref="RuleChange"/> values.</summary>
internal static class RuleChangeNames
{
    /// <summary>The change's name in log lines and in the daemon protocol's <c>rules.change</c> request.</summary>
    public static string Name(this RuleChange change) => change switch
    {
        RuleChange.Add => "add",
        RuleChange.Remove => "remove",
        _ => "modify",
    };
}
