using Serval.Stack;
using Serval.Wire;

namespace Serval;

/// <summary>Link state and migration of the host's flows (any application's) (docs/runtime.md, "Link state and migration").</summary>
public sealed partial class ServalHostAdministration
{
    /// <summary>
    /// Moves every flow on link <paramref name="fromLink"/> to link <paramref name="toLink"/> (docs/protocol.md §10: an
    /// RSYN from the new link's address per flow). Completes when the moves have started; returns how many started
    /// (flows of another address family, or not yet synchronized, stay).
    /// </summary>
    /// <param name="fromLink">Index into <see cref="ServalHost.Links"/> of the link whose flows move.</param>
    /// <param name="toLink">Index into <see cref="ServalHost.Links"/> of the link they move to.</param>
    /// <param name="cancellationToken">Cancels the wait (not the migrations).</param>
    /// <exception cref="ServalException">A link index is out of range (<see cref="ServalError.InvalidArgument"/>), both are the same, or <paramref name="toLink"/> is down (<see cref="ServalError.NetworkDown"/>).</exception>
    public async ValueTask<int> MigrateLinkAsync(int fromLink, int toLink, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return await _host.Backend.RequireEngine("Admin." + nameof(MigrateLinkAsync)).InvokeAsync(d => d.MigrateLink(fromLink, toLink)).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Moves every flow whose service lies in <paramref name="service"/> (and that is not already there) to link
    /// <paramref name="toLink"/>. Completes when the moves have started; returns how many started.
    /// </summary>
    /// <param name="service">The services whose flows move (a prefix; /256 for one serviceID).</param>
    /// <param name="toLink">Index into <see cref="ServalHost.Links"/> of the link they move to.</param>
    /// <param name="cancellationToken">Cancels the wait (not the migrations).</param>
    /// <exception cref="ServalException">The link index is out of range or the link is down.</exception>
    public async ValueTask<int> MigrateServiceAsync(ServicePrefix service, int toLink, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return await _host.Backend.RequireEngine("Admin." + nameof(MigrateServiceAsync)).InvokeAsync(d => d.MigrateService(service, toLink)).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Moves the flow whose local flowID is <paramref name="flow"/> (as in <see cref="FlowInfo.LocalFlow"/>) to link
    /// <paramref name="toLink"/>. Completes when the move has started.
    /// </summary>
    /// <param name="flow">The flow's local flowID.</param>
    /// <param name="toLink">Index into <see cref="ServalHost.Links"/> of the link to move to.</param>
    /// <param name="cancellationToken">Cancels the wait (not the migration).</param>
    /// <exception cref="ServalException">
    /// No such flow (<see cref="ServalError.BadHandle"/>); the link index is out of range, the flow already uses that
    /// link or the link has another address family (<see cref="ServalError.InvalidArgument"/>); the link is down
    /// (<see cref="ServalError.NetworkDown"/>); the flow cannot move in its state (<see cref="ServalError.InvalidState"/>).
    /// </exception>
    public async ValueTask MigrateFlowAsync(FlowId flow, int toLink, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var driver = _host.Backend.RequireEngine("Admin." + nameof(MigrateFlowAsync));
        using var activity = Runtime.ServalTelemetry.Source.StartActivity("serval.migrate");
        activity?.SetTag(Runtime.ServalTelemetry.HostTag, _host.Name);
        activity?.SetTag(Runtime.ServalTelemetry.FlowIdTag, flow.ToString());
        activity?.SetTag(Runtime.ServalTelemetry.LinkTag, toLink);
        try
        {
            await driver.InvokeAsync(d => d.MigrateFlow(flow, toLink)).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Runtime.ServalTelemetry.Failed(activity, e);
            throw;
        }

        Runtime.ServalTelemetry.Succeeded(activity, "started");
    }

    /// <summary>
    /// Tells the host that link <paramref name="linkIndex"/>'s interface went down (or lost the link's address:
    /// <paramref name="up"/> false) or came back (true). Down removes the link's forwarding rules and, with
    /// <see cref="EngineOptions.AutoMigrate"/>, moves its flows to the first remaining up link of the same address
    /// family; up reinstates the link for new flows and migrations. With <see cref="ServalHostOptions.MonitorInterfaces"/>
    /// the host does this itself when the operating system reports a change; a state set here stays until the next
    /// change the monitor observes.
    /// </summary>
    /// <param name="linkIndex">Index into <see cref="ServalHost.Links"/>.</param>
    /// <param name="up">The link's new state.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <exception cref="ServalException">The link index is out of range (<see cref="ServalError.InvalidArgument"/>).</exception>
    public async ValueTask SetLinkUpAsync(int linkIndex, bool up, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        await _host.Backend.RequireEngine("Admin." + nameof(SetLinkUpAsync)).InvokeAsync(d => d.SetLinkUp(linkIndex, up)).WaitAsync(cancellationToken).ConfigureAwait(false);
    }
}
