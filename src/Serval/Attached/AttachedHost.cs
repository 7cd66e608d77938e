using System.Diagnostics;
using System.Text.Json.Nodes;
using Serval.Backends;
using Serval.Daemon.Protocol;
using Serval.Runtime;
using Serval.Stack;
using Serval.Stack.Services;

namespace Serval.Attached;

/// <summary>
/// A host attached to servald (<see cref="ServalHost.AttachAsync"/>, docs/daemon-mode.md): requests go over the
/// session channel, and each listener, connection and datagram socket is a channel of its own.
/// </summary>
internal sealed class AttachedHost(DaemonClient daemon) : IHostBackend
{
    public string Name => daemon.Name;

    public bool IsAttached => true;

    public bool IsStopped => daemon.IsDetached;

    public EngineDriver RequireEngine(string member) =>
        throw new NotSupportedException($"ServalHost.{member} is not available on a host attached to servald ({daemon.SocketPath}): the engine runs in the daemon.");

    public async ValueTask<IConnectionBackend> ConnectAsync(ServalConnectionOptions options, TransportProtocol protocol, string? serviceName, Activity? activity, CancellationToken cancellationToken)
    {
        if (protocol == TransportProtocol.Stream && options.Security.Offers)
        {
            throw new NotSupportedException("Authenticated flows are not available to applications attached to servald yet; connect from a host of the application's own.");
        }

        cancellationToken.ThrowIfCancellationRequested();
        return await RemoteConnection.ConnectAsync(daemon, options.Service, protocol, options.AdvisoryAddress, cancellationToken, serviceName).ConfigureAwait(false);
    }

    public async ValueTask<IListenerBackend> ListenAsync(ServalListenerOptions options, CancellationToken cancellationToken)
    {
        if (options.ServiceKey is not null)
        {
            throw new NotSupportedException("A listener attached to servald cannot hold a service key yet; listen on a host of the application's own.");
        }

        return await RemoteListener.ListenAsync(daemon, options, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<IDatagramSocketBackend> BindDatagramAsync(ServicePrefix? localPrefix, CancellationToken cancellationToken) =>
        await RemoteDatagramSocket.BindAsync(daemon, localPrefix, cancellationToken).ConfigureAwait(false);

    public async ValueTask<IReadOnlyList<FlowInfo>> GetFlowsAsync(CancellationToken cancellationToken)
    {
        var reply = await daemon.RequestAsync(new JsonObject { ["op"] = "flows.list" }, cancellationToken).ConfigureAwait(false);
        return DaemonProtocol.FromNode<FlowInfo[]>(reply["flows"]) ?? [];
    }

    public async ValueTask<int> GetFlowCountAsync(CancellationToken cancellationToken)
    {
        var reply = await daemon.RequestAsync(new JsonObject { ["op"] = "flows.count" }, cancellationToken).ConfigureAwait(false);
        return (int)reply["count"]!;
    }

    public async ValueTask StopAsync(CancellationToken cancellationToken) =>
        await daemon.DetachAsync().WaitAsync(cancellationToken).ConfigureAwait(false);

    public void NameService(ServiceId service, string? name)
    {
        // The daemon names the services in its own logs (a listener or connection sends the name it was given).
    }

    public string DescribeService(ServicePrefix prefix) => prefix.ToString();

    public ServiceTarget ForwardTo(LinkAddress nextHop)
    {
        for (var i = 0; i < daemon.LinkAddresses.Count; i++)
        {
            if (daemon.LinkAddresses[i].Family == nextHop.Family)
            {
                return ServiceTarget.Forward(nextHop, i + 1);
            }
        }

        throw new ArgumentException($"No link of the daemon has the address family of {nextHop}.", nameof(nextHop));
    }

    public IReadOnlyList<ServiceRuleInfo> GetRules()
    {
        var reply = daemon.RequestAsync(new JsonObject { ["op"] = "rules.list" }, CancellationToken.None).GetAwaiter().GetResult();
        return DaemonProtocol.FromNode<ServiceRuleInfo[]>(reply["rules"]) ?? [];
    }

    public async ValueTask ChangeRuleAsync(RuleChange change, ServicePrefix prefix, ServiceTarget target, uint? priority, uint? weight, CancellationToken cancellationToken) =>
        // The daemon replies with its own ServalException as an ERROR, which RequestAsync throws here.
        await daemon.RequestAsync(
            new JsonObject
            {
                ["op"] = "rules.change",
                ["change"] = change.Name(),
                ["prefix"] = prefix.ToString(),
                ["target"] = DaemonProtocol.ToNode(target),
                ["priority"] = priority,
                ["weight"] = weight,
            },
            cancellationToken).ConfigureAwait(false);
}
