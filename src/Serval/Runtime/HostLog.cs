using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Serval.Stack;

namespace Serval.Runtime;

/// <summary>Log messages of the runtime and links, with stable event ids (1xx host, 2xx links, 3xx rules, 4xx resolution, 5xx registrations and routers, 6xx migration).</summary>
internal static partial class HostLog
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Serval host {Host} started with {Interfaces} interface(s), mode {Mode}")]
    public static partial void HostStarted(ILogger logger, string host, int interfaces, EngineMode mode);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Serval host {Host} stopped")]
    public static partial void HostStopped(ILogger logger, string host);

    [LoggerMessage(EventId = 102, Level = LogLevel.Critical, Message = "Serval host {Host}: the engine thread failed; the host is stopping")]
    public static partial void EngineThreadFailed(ILogger logger, Exception exception, string host);

    [LoggerMessage(EventId = 105, Level = LogLevel.Error, Message = "Serval host {Host}: fault in {Where} of flow {LocalFlow} (peer flow {PeerFlow} at {Peer}, service {Service}, socket {Socket}); the flow was reset")]
    public static partial void FlowFault(ILogger logger, Exception exception, string host, string where, string localFlow, string peerFlow, string peer, string service, long socket);

    [LoggerMessage(EventId = 106, Level = LogLevel.Error, Message = "Serval host {Host}: fault in {Where}; the host goes on")]
    public static partial void DriverFault(ILogger logger, Exception exception, string host, string where);

    [LoggerMessage(EventId = 103, Level = LogLevel.Debug, Message = "Serval host {Host}: event {Kind} socket {Socket} error {Error}")]
    public static partial void EngineEvent(ILogger logger, string host, EngineEventKind kind, long socket, ServalError error);

    [LoggerMessage(EventId = 104, Level = LogLevel.Warning, Message = "Serval host {Host}: inbound queue full, packets dropped (total {Dropped})")]
    public static partial void InboundDropped(ILogger logger, string host, long dropped);

    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Serval host {Host}: interface {Interface} is {Link} (MTU {Mtu})")]
    public static partial void LinkAttached(ILogger logger, string host, int @interface, string link, int mtu);

    [LoggerMessage(EventId = 201, Level = LogLevel.Debug, Message = "Link {Link}: send to {Destination} failed: {Error}")]
    public static partial void LinkSendFailed(ILogger logger, string link, Serval.LinkAddress destination, SocketError error);

    [LoggerMessage(EventId = 202, Level = LogLevel.Error, Message = "Link {Link}: the receive loop failed; the link receives nothing more")]
    public static partial void LinkReceiveFailed(ILogger logger, Exception exception, string link);

    [LoggerMessage(EventId = 203, Level = LogLevel.Warning, Message = "Link {Link}: receive error {Error}")]
    public static partial void LinkReceiveError(ILogger logger, string link, SocketError error);

    [LoggerMessage(EventId = 107, Level = LogLevel.Warning, Message = "Serval host {Host}: thread {Thread} could not take nice value {Nice} (errno {Errno}); it keeps its priority")]
    public static partial void ThreadNiceRefused(ILogger logger, string host, string thread, int nice, int errno);

    [LoggerMessage(EventId = 204, Level = LogLevel.Warning, Message = "Link {Link}: UDP segmentation offload failed ({Error}); sending one datagram per message from now on")]
    public static partial void LinkOffloadDisabled(ILogger logger, string link, SocketError error);

    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "Serval host {Host}: rule {Operation} {Prefix} {Target}: {Result}")]
    public static partial void RuleChanged(ILogger logger, string host, string operation, Serval.ServicePrefix prefix, Serval.Stack.Services.ServiceTarget target, Serval.Stack.Services.ServiceTableResult result);

    [LoggerMessage(EventId = 400, Level = LogLevel.Warning, Message = "Serval host {Host}: resolving {Service}: {Source} failed")]
    public static partial void ResolveFailed(ILogger logger, Exception exception, string host, string service, string source);

    [LoggerMessage(EventId = 401, Level = LogLevel.Warning, Message = "Serval host {Host}: resolving {Service} took more than {Milliseconds} ms; the held packets are dropped")]
    public static partial void ResolveTimedOut(ILogger logger, string host, string service, double milliseconds);

    [LoggerMessage(EventId = 402, Level = LogLevel.Warning, Message = "Serval host {Host}: {Service} resolves to {Targets}, which no link of this host reaches")]
    public static partial void ResolveNoLink(ILogger logger, string host, string service, string targets);

    [LoggerMessage(EventId = 403, Level = LogLevel.Information, Message = "Serval host {Host}: resolver file {Path} read again ({Count} services); the answers installed from it are forgotten")]
    public static partial void ResolverFileReloaded(ILogger logger, string host, string path, int count);

    [LoggerMessage(EventId = 404, Level = LogLevel.Warning, Message = "Serval host {Host}: resolver file {Path} changed but does not parse ({Error}); its previous contents stay in use")]
    public static partial void ResolverFileInvalid(ILogger logger, string host, string path, string error);

    [LoggerMessage(EventId = 405, Level = LogLevel.Warning, Message = "Serval host {Host}: publishing registrations to {Server} (zone {Zone}) failed: {Reason}; trying again")]
    public static partial void PublishFailed(ILogger logger, Exception? exception, string host, string server, string zone, string reason);

    [LoggerMessage(EventId = 406, Level = LogLevel.Information, Message = "Serval host {Host}: registrations of prefixes shorter than 256 bits (such as {Prefix}) have no DNS name and are not published")]
    public static partial void PublishPrefix(ILogger logger, string host, Serval.ServicePrefix prefix);

    [LoggerMessage(EventId = 210, Level = LogLevel.Information, Message = "Serval host {Host}: interface {Interface} ({Link}) is up")]
    public static partial void LinkUp(ILogger logger, string host, int @interface, string link);

    [LoggerMessage(EventId = 211, Level = LogLevel.Warning, Message = "Serval host {Host}: interface {Interface} ({Link}) is down")]
    public static partial void LinkDown(ILogger logger, string host, int @interface, string link);

    [LoggerMessage(EventId = 500, Level = LogLevel.Information, Message = "Serval router {Host}: registration of {Service} by {RegisteredHost} added (weight {Weight})")]
    public static partial void RegistrationAdded(ILogger logger, string host, string service, string registeredHost, uint weight);

    [LoggerMessage(EventId = 501, Level = LogLevel.Debug, Message = "Serval router {Host}: registration of {Service} by {RegisteredHost} refreshed")]
    public static partial void RegistrationRefreshed(ILogger logger, string host, string service, string registeredHost);

    [LoggerMessage(EventId = 502, Level = LogLevel.Warning, Message = "Serval router {Host}: registration of {Service} by {RegisteredHost} expired (no refresh within its lease); its rule was removed")]
    public static partial void RegistrationExpired(ILogger logger, string host, string service, string registeredHost);

    [LoggerMessage(EventId = 503, Level = LogLevel.Information, Message = "Serval router {Host}: registration of {Service} by {RegisteredHost} withdrawn")]
    public static partial void RegistrationWithdrawn(ILogger logger, string host, string service, string registeredHost);

    [LoggerMessage(EventId = 504, Level = LogLevel.Information, Message = "Serval router {Host}: drain of {Service} at {RegisteredHost} started (by the {By}): no new connections go there")]
    public static partial void DrainStarted(ILogger logger, string host, string service, string registeredHost, string by);

    [LoggerMessage(EventId = 505, Level = LogLevel.Information, Message = "Serval router {Host}: drain of {Service} at {RegisteredHost} finished (by the {By}): new connections go there again")]
    public static partial void DrainFinished(ILogger logger, string host, string service, string registeredHost, string by);

    [LoggerMessage(EventId = 510, Level = LogLevel.Information, Message = "Serval host {Host}: discovered service router {Router}; registering the bound services with it")]
    public static partial void RouterDiscovered(ILogger logger, string host, Serval.LinkAddress router);

    [LoggerMessage(EventId = 511, Level = LogLevel.Warning, Message = "Serval host {Host}: lost service router {Router} (its advertised lifetime lapsed)")]
    public static partial void RouterLost(ILogger logger, string host, Serval.LinkAddress router);

    [LoggerMessage(EventId = 600, Level = LogLevel.Information, Message = "Serval host {Host}: migration of flow {Flow} ({Service}, peer {Peer}) away from interface {Interface} started")]
    public static partial void MigrationStarted(ILogger logger, string host, Serval.Wire.FlowId flow, ServiceLabel service, Serval.LinkAddress peer, int @interface);

    [LoggerMessage(EventId = 601, Level = LogLevel.Information, Message = "Serval host {Host}: migration of flow {Flow} ({Service}) completed: now on interface {Interface}, peer {Peer}")]
    public static partial void MigrationCompleted(ILogger logger, string host, Serval.Wire.FlowId flow, ServiceLabel service, int @interface, Serval.LinkAddress peer);

    [LoggerMessage(EventId = 602, Level = LogLevel.Warning, Message = "Serval host {Host}: migration of flow {Flow} ({Service}) failed: {Error}; the flow was reset")]
    public static partial void MigrationFailed(ILogger logger, string host, Serval.Wire.FlowId flow, ServiceLabel service, ServalError error);
}
