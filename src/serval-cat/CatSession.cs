using Serval.Stack;
using Serval.Wire;

namespace Serval.Cat;

/// <summary>
/// One serval-cat session: a flow (stream or connected datagrams) relayed to standard input and output.
/// <list type="bullet">
/// <item>Stream: end of input half-closes the flow (FIN); the peer's FIN ends standard output. The session ends when
/// both directions have ended, or when the peer has closed and standard input is a terminal (nobody to wait for).</item>
/// <item>Datagrams: each read of standard input (at most <see cref="CatSettings.Size"/> bytes) is one datagram and each
/// datagram received is written out as it came. Datagrams have no half-close: when connecting, end of input closes
/// the flow (after <see cref="CatSettings.QuitAfter"/>); a listener's session lasts until the peer closes.</item>
/// </list>
/// </summary>
internal static class CatSession
{
    private const int BufferSize = 64 * 1024;

    /// <summary>Longest wait for the peer to acknowledge what was written before the host stops.</summary>
    private static readonly TimeSpan DeliveryLimit = TimeSpan.FromSeconds(30);

    /// <summary>How often the acknowledged byte count is looked at meanwhile.</summary>
    private static readonly TimeSpan DeliveryPoll = TimeSpan.FromMilliseconds(10);

    public static async Task<int> ListenAsync(ServalHost host, ServiceEndPoint service, string text, CatSettings settings, CancellationToken ct)
    {
        ServalListener listener;
        try
        {
            listener = await ServalListener.ListenAsync(
                new ServalListenerOptions
                {
                    Host = host,
                    ListenEndPoint = service,
                    Protocol = settings.Datagram ? TransportProtocol.Datagram : TransportProtocol.Stream,
                },
                ct).ConfigureAwait(false);
        }
        catch (ServalException e)
        {
            await settings.Error.WriteLineAsync($"serval-cat: cannot listen on {text}: {e.Message}").ConfigureAwait(false);
            return ExitCodes.Failure;
        }
        catch (OperationCanceledException)
        {
            return ExitCodes.Interrupted;
        }

        var shown = service.PrefixLength == ServiceId.Bits ? $"{text} ({service.Service.ToString()[..8]})" : $"{text} ({service.Prefix})";
        await settings.Error.WriteLineAsync($"serval-cat: listening on {shown} ({(settings.Datagram ? "datagrams" : "stream")})").ConfigureAwait(false);

        using var waitLimit = settings.Wait is { } w ? new CancellationTokenSource(w) : new CancellationTokenSource();
        using var accepting = CancellationTokenSource.CreateLinkedTokenSource(ct, waitLimit.Token);
        await using (listener.ConfigureAwait(false))
        {
            try
            {
                if (settings.Datagram)
                {
                    var socket = await listener.AcceptDatagramSocketAsync(accepting.Token).ConfigureAwait(false);
                    await listener.DisposeAsync().ConfigureAwait(false); // one peer, like nc -l: later ones are refused
                    await using (socket.ConfigureAwait(false))
                    {
                        return await RelayDatagramsAsync(socket, closeAtEndOfInput: false, settings, ct).ConfigureAwait(false);
                    }
                }

                var connection = await listener.AcceptConnectionAsync(accepting.Token).ConfigureAwait(false);
                await listener.DisposeAsync().ConfigureAwait(false);
                await using (connection.ConfigureAwait(false))
                {
                    return await RelayStreamAsync(host, connection, settings, ct).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (waitLimit.IsCancellationRequested && !ct.IsCancellationRequested)
            {
                await settings.Error.WriteLineAsync($"serval-cat: no peer within {settings.Wait!.Value.TotalSeconds:0.###} s").ConfigureAwait(false);
                return ExitCodes.TimedOut;
            }
            catch (OperationCanceledException)
            {
                return ExitCodes.Interrupted;
            }
        }
    }

    public static async Task<int> ConnectAsync(ServalHost host, ServiceId service, LinkAddress advisory, string text, CatSettings settings, CancellationToken ct)
    {
        var options = new ServalConnectionOptions { Host = host, Service = service, AdvisoryAddress = advisory };
        var wait = settings.Wait ?? TimeSpan.FromSeconds(30);
        using var waitLimit = new CancellationTokenSource(wait);
        using var connecting = CancellationTokenSource.CreateLinkedTokenSource(ct, waitLimit.Token);
        try
        {
            if (settings.Datagram)
            {
                var socket = await ServalDatagramSocket.ConnectAsync(options, connecting.Token).ConfigureAwait(false);
                await using (socket.ConfigureAwait(false))
                {
                    return await RelayDatagramsAsync(socket, closeAtEndOfInput: true, settings, ct).ConfigureAwait(false);
                }
            }

            var connection = await ServalConnection.ConnectAsync(options, connecting.Token).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                return await RelayStreamAsync(host, connection, settings, ct).ConfigureAwait(false);
            }
        }
        catch (ServalException e) when (!ct.IsCancellationRequested)
        {
            await settings.Error.WriteLineAsync($"serval-cat: cannot connect to {text}: {Describe(e.Error)} ({e.Message})").ConfigureAwait(false);
            return CatCommandLine.ExitCodeOf(e.Error);
        }
        catch (OperationCanceledException) when (waitLimit.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            await settings.Error.WriteLineAsync($"serval-cat: cannot connect to {text}: no answer within {wait.TotalSeconds:0.###} s").ConfigureAwait(false);
            return ExitCodes.TimedOut;
        }
        catch (OperationCanceledException)
        {
            return ExitCodes.Interrupted;
        }
    }

    private static string Describe(ServalError error) => error switch
    {
        ServalError.ConnectionRefused => "refused (no listener on the service)",
        ServalError.ServiceNotFound => "service not found",
        ServalError.NoRoute => "no route to the service (no rule, no router: give --router or --peer)",
        ServalError.TimedOut => "timed out",
        _ => error.ToString(),
    };

    /// <summary>Relays a stream both ways; see the class remarks for when it ends.</summary>
    private static async Task<int> RelayStreamAsync(ServalHost host, ServalConnection connection, CatSettings settings, CancellationToken ct)
    {
        var stream = connection.GetStream();
        long written = 0;
        var send = Task.Run(
            async () =>
            {
                var buffer = new byte[BufferSize];
                int n;
                while ((n = await settings.Input.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                {
                    await stream.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                    Interlocked.Add(ref written, n);
                }

                stream.CompleteWrites(); // end of input: the peer reads end of stream, and may still answer
            },
            ct);
        var receive = Task.Run(
            async () =>
            {
                var buffer = new byte[BufferSize];
                int n;
                while ((n = await stream.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                {
                    await settings.Output.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                    await settings.Output.FlushAsync(ct).ConfigureAwait(false);
                }
            },
            ct);

        try
        {
            var first = await Task.WhenAny(send, receive).ConfigureAwait(false);
            await first.ConfigureAwait(false);
            if (first == receive && !settings.InputIsRedirected)
            {
                // The peer closed and a terminal is on standard input: do not wait for the user to type Ctrl-D.
                stream.CompleteWrites();
            }
            else
            {
                await (first == send ? receive : send).ConfigureAwait(false);
            }

            await DeliveredAsync(host, connection, Interlocked.Read(ref written), ct).ConfigureAwait(false);
            return ExitCodes.Success;
        }
        catch (ServalException e) when (!ct.IsCancellationRequested)
        {
            await settings.Error.WriteLineAsync($"serval-cat: {Describe(e.Error)} ({e.Message})").ConfigureAwait(false);
            return ExitCodes.Failure;
        }
        catch (IOException e) when (!ct.IsCancellationRequested)
        {
            await settings.Error.WriteLineAsync($"serval-cat: {e.Message}").ConfigureAwait(false);
            return ExitCodes.Failure;
        }
        catch (OperationCanceledException)
        {
            stream.Abort();
            return ExitCodes.Interrupted;
        }
    }

    /// <summary>
    /// Waits until the peer has acknowledged every byte written (at most <see cref="DeliveryLimit"/>): an embedded host
    /// stops with the process, and whatever its stream still held would be lost. Attached, servald closes the flow
    /// gracefully after the process has gone.
    /// </summary>
    private static async Task DeliveredAsync(ServalHost host, ServalConnection connection, long written, CancellationToken ct)
    {
        if (host.IsAttached || written == 0)
        {
            return;
        }

        var deadline = DateTime.UtcNow + DeliveryLimit;
        while (DateTime.UtcNow < deadline)
        {
            var info = await connection.GetFlowInfoAsync(ct).ConfigureAwait(false);
            if (info?.Stream is not { } s || s.BytesAcked >= written || info.State is SalState.Closed or SalState.TimeWait)
            {
                return;
            }

            await Task.Delay(DeliveryPoll, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Relays datagrams both ways; see the class remarks for when it ends.</summary>
    private static async Task<int> RelayDatagramsAsync(ServalDatagramSocket socket, bool closeAtEndOfInput, CatSettings settings, CancellationToken ct)
    {
        using var done = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var send = Task.Run(
            async () =>
            {
                var buffer = new byte[settings.Size];
                int n;
                while ((n = await settings.Input.ReadAsync(buffer, done.Token).ConfigureAwait(false)) > 0)
                {
                    await socket.SendAsync(buffer.AsMemory(0, n), done.Token).ConfigureAwait(false);
                }
            },
            done.Token);
        var receive = Task.Run(
            async () =>
            {
                var buffer = new byte[65_536];
                int n;
                while ((n = await socket.ReceiveAsync(buffer, done.Token).ConfigureAwait(false)) > 0)
                {
                    await settings.Output.WriteAsync(buffer.AsMemory(0, n), done.Token).ConfigureAwait(false);
                    await settings.Output.FlushAsync(done.Token).ConfigureAwait(false);
                }
            },
            done.Token);

        try
        {
            var first = await Task.WhenAny(send, receive).ConfigureAwait(false);
            await first.ConfigureAwait(false);
            if (first == send && closeAtEndOfInput)
            {
                // End of input closes the flow, after --quit-after of receiving replies (or earlier if the peer closes).
                if (settings.QuitAfter > TimeSpan.Zero)
                {
                    await Task.WhenAny(receive, Task.Delay(settings.QuitAfter, ct)).ConfigureAwait(false);
                    ct.ThrowIfCancellationRequested();
                }

                if (receive.IsCompleted)
                {
                    await receive.ConfigureAwait(false);
                }

                return ExitCodes.Success;
            }

            if (first == send)
            {
                await receive.ConfigureAwait(false); // a listener's session lasts until the peer closes
            }

            // The peer closed the flow: nothing more can be sent.
            return ExitCodes.Success;
        }
        catch (ServalException e) when (!ct.IsCancellationRequested)
        {
            await settings.Error.WriteLineAsync($"serval-cat: {Describe(e.Error)} ({e.Message})").ConfigureAwait(false);
            return ExitCodes.Failure;
        }
        catch (IOException e) when (!ct.IsCancellationRequested)
        {
            await settings.Error.WriteLineAsync($"serval-cat: {e.Message}").ConfigureAwait(false);
            return ExitCodes.Failure;
        }
        catch (OperationCanceledException)
        {
            return ExitCodes.Interrupted;
        }
        finally
        {
            await done.CancelAsync().ConfigureAwait(false);
        }
    }
}
