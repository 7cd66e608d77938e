using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Serval.Daemon.Protocol;
using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Daemon;

/// <summary>
/// Serves attached applications (<see cref="ServalHost.AttachAsync"/>, docs/daemon-mode.md) on the control socket:
/// a connection whose first byte is <see cref="DaemonProtocol.MagicByte"/> is an application channel. Each channel is
/// bridged to the daemon's own host through the public API, one pump per direction; when the channel closes (the
/// application disposed the object, or its process ended) the object is closed at once, so a listener's service
/// unregisters immediately. A listen or connect request may carry the service's <c>name</c>: servald remembers it
/// (<see cref="ServiceNames"/>, shared with the control handler) so its tables and logs show <c>name (short id)</c>.
/// </summary>
internal sealed partial class AppServer(ServalHost host, ILogger logger, FlowOwners? owners = null, ServiceNames? names = null) : IAsyncDisposable
{
    private const int PumpBuffer = DaemonProtocol.MaxDataChunk;

    private readonly ConcurrentDictionary<long, ServalListener> _listeners = new();
    private readonly ConcurrentDictionary<long, ServalConnection> _connections = new();
    private readonly ConcurrentDictionary<DaemonChannel, Task> _channels = new();
    private readonly ConcurrentDictionary<DaemonChannel, AppIdentity> _identities = new();
    private readonly CancellationTokenSource _stop = new();
    private long _nextId;

    /// <summary>Serves one application connection (its preamble not yet read) until it closes.</summary>
    public Task ServeAsync(Socket socket)
    {
        var channel = new DaemonChannel(socket, sendPreamble: false);
        if (owners is not null && AppIdentity.Of(socket) is { } identity)
        {
            _identities[channel] = identity; // flows.list names the application that opened each flow
        }

        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _channels[channel] = started.Task;
        var task = ServeChannelAsync(channel);
        _channels.TryUpdate(channel, task, started.Task);
        started.TrySetResult();
        if (_stop.IsCancellationRequested)
        {
            channel.Dispose();
        }

        return task;
    }

    private async Task ServeChannelAsync(DaemonChannel channel)
    {
        await Task.Yield();
        try
        {
            if (!await channel.ReceivePreambleAsync(_stop.Token).ConfigureAwait(false))
            {
                return;
            }

            var request = await channel.ReceiveReplyAsync(_stop.Token).ConfigureAwait(false);
            if (request is null)
            {
                return;
            }

            var op = (string?)request["op"];
            switch (op)
            {
                case "hello":
                    await SessionAsync(channel).ConfigureAwait(false);
                    break;
                case "listen":
                    await ListenAsync(channel, request).ConfigureAwait(false);
                    break;
                case "accept":
                    await AcceptAsync(channel, request).ConfigureAwait(false);
                    break;
                case "connect":
                    await ConnectAsync(channel, request).ConfigureAwait(false);
                    break;
                case "bind":
                    await BindAsync(channel, request).ConfigureAwait(false);
                    break;
                default:
                    await channel.SendReplyAsync(DaemonProtocol.Fail(new NotSupportedException($"unknown op '{op}'"))).ConfigureAwait(false);
                    break;
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException or InvalidDataException or System.Text.Json.JsonException)
        {
            ChannelEnded(logger, e.Message);
        }
        finally
        {
            _channels.TryRemove(channel, out _);
            _identities.TryRemove(channel, out _);
            channel.Dispose();
        }
    }

    // ------------------------------------------------------------------------------------------------------------
    // Session: host information, rules, flows

    private async Task SessionAsync(DaemonChannel channel)
    {
        var links = new JsonArray();
        foreach (var l in host.Links)
        {
            links.Add(l.LocalAddress.ToString());
        }

        var hello = DaemonProtocol.Ok();
        hello["name"] = host.Name;
        hello["links"] = links;
        await channel.SendReplyAsync(hello).ConfigureAwait(false);
        while (await channel.ReceiveReplyAsync(_stop.Token).ConfigureAwait(false) is { } request)
        {
            JsonObject reply;
            try
            {
                reply = await HandleSessionAsync(request).ConfigureAwait(false);
            }
            catch (Exception e) when (e is ServalException or ArgumentException or FormatException or InvalidOperationException or NotSupportedException or ObjectDisposedException or System.Text.Json.JsonException)
            {
                reply = DaemonProtocol.Fail(e is FormatException or System.Text.Json.JsonException ? new ArgumentException(e.Message) : e);
            }

            await channel.SendReplyAsync(reply).ConfigureAwait(false);
        }
    }

    private async Task<JsonObject> HandleSessionAsync(JsonObject request)
    {
        var ct = _stop.Token;
        var reply = DaemonProtocol.Ok();
        switch ((string?)request["op"])
        {
            case "rules.list":
                reply["rules"] = DaemonProtocol.ToNode(host.GetRules());
                break;
            case "rules.change":
                {
                    var prefix = ServicePrefix.Parse((string)request["prefix"]!, null);
                    var target = DaemonProtocol.FromNode<ServiceTarget>(request["target"]);
                    var priority = (uint?)request["priority"];
                    var weight = (uint?)request["weight"];
                    var result = (string?)request["change"] switch
                    {
                        "add" => await host.AddRuleAsync(prefix, target, priority ?? ServiceTable.DefaultPriority, weight ?? ServiceTable.DefaultWeight, ct).ConfigureAwait(false),
                        "remove" => await host.RemoveRuleAsync(prefix, target, ct).ConfigureAwait(false),
                        "modify" => await host.ModifyRuleAsync(prefix, target, priority, weight, ct).ConfigureAwait(false),
                        var other => throw new ArgumentException($"unknown rule change '{other}'"),
                    };
                    reply["result"] = result.ToString();
                    break;
                }

            case "flows.list":
                reply["flows"] = DaemonProtocol.ToNode(await host.GetFlowsAsync(ct).ConfigureAwait(false));
                break;
            case "flows.count":
                reply["count"] = await host.GetFlowCountAsync(ct).ConfigureAwait(false);
                break;
            case "flow.info":
                // A connection already closed has no flow any more: null, as embedded.
                reply["flow"] = _connections.TryGetValue((long?)request["id"] ?? 0, out var c)
                    ? DaemonProtocol.ToNode(await c.GetFlowInfoAsync(ct).ConfigureAwait(false))
                    : null;
                break;
            case "flow.migrate":
                await Connection(request).MigrateAsync((int?)request["link"] ?? throw new ArgumentException("missing \"link\""), ct).ConfigureAwait(false);
                break;
            case var op:
                throw new NotSupportedException($"unknown session op '{op}'");
        }

        return reply;
    }

    private ServalConnection Connection(JsonObject request) =>
        _connections.TryGetValue((long?)request["id"] ?? 0, out var c) ? c : throw new ServalException(ServalError.BadHandle, "The connection is closed.");

    // ------------------------------------------------------------------------------------------------------------
    // Listeners and accepts

    private async Task ListenAsync(DaemonChannel channel, JsonObject request)
    {
        ServalListener listener;
        ServicePrefix prefix;
        try
        {
            var service = ServiceId.Parse((string)request["service"]!, null);
            var bits = (int?)request["bits"] ?? ServiceId.Bits;
            prefix = new ServicePrefix(service, bits);
            LearnName(prefix, (string?)request["name"]);
            listener = await ServalListener.ListenAsync(
                new ServalListenerOptions
                {
                    Host = host,
                    ListenEndPoint = new ServiceEndPoint(service, bits),
                    Protocol = Enum.Parse<TransportProtocol>((string?)request["protocol"] ?? nameof(TransportProtocol.Stream)),
                    ListenBacklog = (int?)request["backlog"] ?? 128,
                },
                _stop.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ServalException or ArgumentException or FormatException or ObjectDisposedException)
        {
            await channel.SendReplyAsync(DaemonProtocol.Fail(e)).ConfigureAwait(false);
            return;
        }

        var id = Interlocked.Increment(ref _nextId);
        _listeners[id] = listener;
        var app = _identities.TryGetValue(channel, out var identity) ? identity.ToString() : "an application";
        var label = Label(prefix);
        var protocol = listener.Protocol == TransportProtocol.Stream ? "stream" : "datagram";
        try
        {
            var reply = DaemonProtocol.Ok();
            reply["id"] = id;
            await channel.SendReplyAsync(reply).ConfigureAwait(false);
            Listening(logger, app, label, protocol);

            // The listener lives as long as its channel: closed by the application, or by its process ending.
            await channel.WaitForPeerActivityAsync(_stop.Token).ConfigureAwait(false);
        }
        finally
        {
            _listeners.TryRemove(id, out _);
            await listener.DisposeAsync().ConfigureAwait(false);
            StoppedListening(logger, app, label);
        }
    }

    private async Task AcceptAsync(DaemonChannel channel, JsonObject request)
    {
        if (!_listeners.TryGetValue((long?)request["listener"] ?? 0, out var listener))
        {
            await channel.SendReplyAsync(DaemonProtocol.Fail(new ObjectDisposedException(nameof(ServalListener)))).ConfigureAwait(false);
            return;
        }

        var accepted = await WhileOpenAsync(channel, ct => listener.Protocol == TransportProtocol.Stream
            ? AcceptConnection(listener, ct)
            : AcceptDatagram(listener, ct)).ConfigureAwait(false);
        if (accepted is ServalConnection c)
        {
            await RunConnectionAsync(channel, c).ConfigureAwait(false);
        }
        else if (accepted is ServalDatagramSocket d)
        {
            await RunConnectedDatagramAsync(channel, d).ConfigureAwait(false);
        }
    }

    private static async Task<object> AcceptConnection(ServalListener listener, CancellationToken ct) => await listener.AcceptConnectionAsync(ct).ConfigureAwait(false);

    private static async Task<object> AcceptDatagram(ServalListener listener, CancellationToken ct) => await listener.AcceptDatagramSocketAsync(ct).ConfigureAwait(false);

    /// <summary>
    /// Runs an operation that may wait long (accept, connect) while watching the channel: if the application closes it
    /// (cancelled, or gone) the operation is cancelled. Failures are replied; null then.
    /// </summary>
    private async Task<object?> WhileOpenAsync(DaemonChannel channel, Func<CancellationToken, Task<object>> operation)
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        using var stopWatching = new CancellationTokenSource();
        var watch = channel.WaitForPeerActivityAsync(stopWatching.Token).ContinueWith(
            t =>
            {
                if (!stopWatching.IsCancellationRequested)
                {
                    cancel.Cancel();
                }
            },
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        object result;
        try
        {
            result = await operation(cancel.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return null; // the application went away (or the daemon is stopping)
        }
        catch (Exception e) when (e is ServalException or ArgumentException or FormatException or ObjectDisposedException or InvalidOperationException)
        {
            await stopWatching.CancelAsync().ConfigureAwait(false);
            await watch.ConfigureAwait(false);
            await channel.SendReplyAsync(DaemonProtocol.Fail(e)).ConfigureAwait(false);
            return null;
        }

        await stopWatching.CancelAsync().ConfigureAwait(false);
        await watch.ConfigureAwait(false);
        return result;
    }

    // ------------------------------------------------------------------------------------------------------------
    // Connections

    private async Task ConnectAsync(DaemonChannel channel, JsonObject request)
    {
        ServiceId service;
        TransportProtocol protocol;
        LinkAddress advisory;
        try
        {
            service = ServiceId.Parse((string)request["service"]!, null);
            protocol = Enum.Parse<TransportProtocol>((string?)request["protocol"] ?? nameof(TransportProtocol.Stream));
            advisory = (string?)request["advisory"] is { } a && a != "-" ? LinkAddress.Parse(a) : LinkAddress.None;
            LearnName(ServicePrefix.Exact(service), (string?)request["name"]);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or NullReferenceException)
        {
            await channel.SendReplyAsync(DaemonProtocol.Fail(new ArgumentException(e.Message))).ConfigureAwait(false);
            return;
        }

        var options = new ServalConnectionOptions { Host = host, Service = service, AdvisoryAddress = advisory };
        var opened = await WhileOpenAsync(channel, async ct => protocol == TransportProtocol.Stream
            ? await ServalConnection.ConnectAsync(options, ct).ConfigureAwait(false)
            : await ServalDatagramSocket.ConnectAsync(options, ct).ConfigureAwait(false)).ConfigureAwait(false);
        if (opened is ServalConnection c)
        {
            await RunConnectionAsync(channel, c).ConfigureAwait(false);
        }
        else if (opened is ServalDatagramSocket d)
        {
            await RunConnectedDatagramAsync(channel, d).ConfigureAwait(false);
        }
    }

    private async Task RunConnectionAsync(DaemonChannel channel, ServalConnection connection)
    {
        var id = Interlocked.Increment(ref _nextId);
        _connections[id] = connection;
        var stream = connection.GetStream();
        var abort = true;
        var owned = Own(channel, connection.EngineSocket);
        try
        {
            var reply = DaemonProtocol.Ok();
            reply["id"] = id;
            await channel.SendReplyAsync(reply).ConfigureAwait(false);
            _ = ReportWritesClosedAsync(channel, stream.WritesClosed);
            _ = ReadPumpAsync(channel, stream.ReadAsync, FrameType.EndOfStream);
            Exception? writeError = null;
            while (true)
            {
                var frame = await channel.ReceiveAsync(_stop.Token).ConfigureAwait(false);
                try
                {
                    switch (frame.Type)
                    {
                        case FrameType.Data:
                            if (writeError is null)
                            {
                                try
                                {
                                    await stream.WriteAsync(frame.Memory, _stop.Token).ConfigureAwait(false);
                                }
                                catch (Exception e) when (e is ServalException or ObjectDisposedException or InvalidOperationException)
                                {
                                    writeError = e;
                                    await channel.SendAsync(FrameType.WriteFailed, DaemonProtocol.ErrorPayload(e)).ConfigureAwait(false);
                                }
                            }

                            break;
                        case FrameType.CompleteWrites:
                            stream.CompleteWrites();
                            break;
                        case FrameType.Close:
                            abort = false;
                            return;
                        case FrameType.Abort:
                        case FrameType.None:
                            return;
                        default:
                            throw new InvalidDataException($"unexpected frame {frame.Type} on a connection channel");
                    }
                }
                finally
                {
                    frame.Return();
                }
            }
        }
        finally
        {
            _connections.TryRemove(id, out _);
            Disown(owned);
            if (abort)
            {
                stream.Abort();
            }

            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static async Task ReportWritesClosedAsync(DaemonChannel channel, Task writesClosed)
    {
        try
        {
            await writesClosed.ConfigureAwait(false);
            await channel.SendAsync(FrameType.WritesClosed).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ServalException or ObjectDisposedException)
        {
            try
            {
                await channel.SendAsync(FrameType.WritesClosed, DaemonProtocol.ErrorPayload(e)).ConfigureAwait(false);
            }
            catch (Exception gone) when (gone is SocketException or ObjectDisposedException or IOException)
            {
                // the application is gone
            }
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            // the application is gone
        }
    }

    /// <summary>Copies what the daemon's object receives to the application, one frame per read, until the end or a failure.</summary>
    private async Task ReadPumpAsync(DaemonChannel channel, Func<Memory<byte>, CancellationToken, ValueTask<int>> read, FrameType end)
    {
        var buffer = new byte[PumpBuffer];
        try
        {
            while (true)
            {
                int n;
                try
                {
                    n = await read(buffer, _stop.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is ServalException or ObjectDisposedException or OperationCanceledException)
                {
                    await channel.SendAsync(FrameType.ReadFailed, DaemonProtocol.ErrorPayload(e)).ConfigureAwait(false);
                    return;
                }

                if (n == 0)
                {
                    await channel.SendAsync(end).ConfigureAwait(false);
                    return;
                }

                await channel.SendAsync(FrameType.Data, buffer.AsMemory(0, n)).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            // the application is gone; its channel's pump closes the object
        }
    }

    private async Task RunConnectedDatagramAsync(DaemonChannel channel, ServalDatagramSocket socket)
    {
        var id = Interlocked.Increment(ref _nextId);
        var owned = Own(channel, socket.EngineSocket);
        try
        {
            var reply = DaemonProtocol.Ok();
            reply["id"] = id;
            await channel.SendReplyAsync(reply).ConfigureAwait(false);
            _ = ReadPumpAsync(channel, socket.ReceiveAsync, FrameType.EndOfStream);
            while (true)
            {
                var frame = await channel.ReceiveAsync(_stop.Token).ConfigureAwait(false);
                try
                {
                    switch (frame.Type)
                    {
                        case FrameType.Data:
                            await SendResultAsync(channel, () => socket.SendAsync(frame.Memory, _stop.Token)).ConfigureAwait(false);
                            break;
                        case FrameType.Close or FrameType.Abort or FrameType.None:
                            return;
                        default:
                            throw new InvalidDataException($"unexpected frame {frame.Type} on a datagram channel");
                    }
                }
                finally
                {
                    frame.Return();
                }
            }
        }
        finally
        {
            Disown(owned);
            await socket.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Remembers the name an application gave a whole serviceID (a name that does not hash to it is ignored: the
    /// serviceID is what counts), for servalctl's tables and, on servald's own host, its log lines.
    /// </summary>
    private void LearnName(ServicePrefix prefix, string? name)
    {
        if (string.IsNullOrEmpty(name) || prefix.Length != ServiceId.Bits)
        {
            return;
        }

        if (names is not null && !names.Learn(prefix.Id, name))
        {
            NameMismatch(logger, name, prefix.Id);

            return;
        }

        host.Admin.NameService(prefix.Id, name);
    }

    /// <summary>A service as log lines show it: <c>name (short id)</c> when known.</summary>
    private string Label(ServicePrefix prefix) =>
        !host.IsAttached ? host.Admin.DescribeService(prefix)
        : names?.Find(prefix) is { } name ? $"{name} ({ShortId(prefix.Id)})"
        : prefix.ToString();

    private static string ShortId(ServiceId service)
    {
        var s = service.ToString("s", null);
        return s.Length <= 12 ? s : service.ToString()[..8] + "…";
    }

    /// <summary>Records the channel's application as the owner of an engine socket; returns the socket recorded.</summary>
    private long? Own(DaemonChannel channel, Stack.SocketHandle? handle)
    {
        if (owners is null || handle is not { } h || !_identities.TryGetValue(channel, out var identity))
        {
            return null;
        }

        owners.Add(h.Value, identity);
        return h.Value;
    }

    private void Disown(long? socket)
    {
        if (socket is { } s)
        {
            owners?.Remove(s);
        }
    }

    private static async Task SendResultAsync(DaemonChannel channel, Func<ValueTask> send)
    {
        try
        {
            await send().ConfigureAwait(false);
        }
        catch (Exception e) when (e is ServalException or ObjectDisposedException or InvalidOperationException or ArgumentException)
        {
            await channel.SendAsync(FrameType.SendResult, DaemonProtocol.ErrorPayload(e)).ConfigureAwait(false);
            return;
        }

        await channel.SendAsync(FrameType.SendResult).ConfigureAwait(false);
    }

    // ------------------------------------------------------------------------------------------------------------
    // Unconnected datagram sockets

    private async Task BindAsync(DaemonChannel channel, JsonObject request)
    {
        ServalDatagramSocket socket;
        try
        {
            ServicePrefix? prefix = (string?)request["prefix"] is { } p ? ServicePrefix.Parse(p, null) : null;
            socket = await ServalDatagramSocket.BindAsync(host, prefix, _stop.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ServalException or ArgumentException or FormatException or ObjectDisposedException)
        {
            await channel.SendReplyAsync(DaemonProtocol.Fail(e)).ConfigureAwait(false);
            return;
        }

        try
        {
            await channel.SendReplyAsync(DaemonProtocol.Ok()).ConfigureAwait(false);
            _ = ReceiveFromPumpAsync(channel, socket);
            while (true)
            {
                var frame = await channel.ReceiveAsync(_stop.Token).ConfigureAwait(false);
                try
                {
                    switch (frame.Type)
                    {
                        case FrameType.SendTo when frame.Length >= ServiceId.Size:
                            var destination = ServiceId.Read(frame.Span);
                            await SendResultAsync(channel, () => socket.SendToAsync(destination, frame.Memory[ServiceId.Size..], _stop.Token)).ConfigureAwait(false);
                            break;
                        case FrameType.Close or FrameType.None:
                            return;
                        default:
                            throw new InvalidDataException($"unexpected frame {frame.Type} on a datagram channel");
                    }
                }
                finally
                {
                    frame.Return();
                }
            }
        }
        finally
        {
            await socket.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task ReceiveFromPumpAsync(DaemonChannel channel, ServalDatagramSocket socket)
    {
        var buffer = new byte[PumpBuffer];
        try
        {
            while (true)
            {
                var r = await socket.ReceiveFromAsync(buffer, _stop.Token).ConfigureAwait(false);
                var payload = DaemonProtocol.EncodeReceivedFrom(r.Source, r.SourceAddress, buffer.AsSpan(0, r.ReceivedBytes));
                await channel.SendAsync(FrameType.ReceivedFrom, payload).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is ServalException or ObjectDisposedException or OperationCanceledException or SocketException or IOException)
        {
            // closed, or the application is gone: its channel's pump closes the socket
        }
    }

    /// <summary>Closes every application channel (the applications see the daemon go away) and waits for the bridges to close their objects.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (var channel in _channels.Keys)
        {
            channel.Dispose();
        }

        try
        {
            await Task.WhenAll(_channels.Values).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // the host's disposal releases whatever is left
        }

        _stop.Dispose();
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Debug, Message = "application channel ended: {Reason}")]
    private static partial void ChannelEnded(ILogger logger, string reason);

    [LoggerMessage(EventId = 21, Level = LogLevel.Information, Message = "{App} listens on {Service} ({Protocol})")]
    private static partial void Listening(ILogger logger, string app, string service, string protocol);

    [LoggerMessage(EventId = 22, Level = LogLevel.Information, Message = "{App} stopped listening on {Service}")]
    private static partial void StoppedListening(ILogger logger, string app, string service);

    [LoggerMessage(EventId = 23, Level = LogLevel.Debug, Message = "an application named the service {Name}, which does not hash to {Service}; the name is ignored")]
    private static partial void NameMismatch(ILogger logger, string name, ServiceId service);
}
