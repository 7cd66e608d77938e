using System.Diagnostics.CodeAnalysis;
using System.Net.Sockets;

namespace Serval.Translate;

/// <summary>
/// What both translators share: an accept loop that runs at most <c>maxConnections</c> relays at once (further
/// connections wait where the listener queues them), the counting and logging of each relay, and a bounded stop.
/// </summary>
/// <typeparam name="T">What the listener accepts (a TCP socket or a Serval connection).</typeparam>
[SuppressMessage("Design", "CA1001", Justification = "The semaphore and the token source hold no OS handles here; relays that outlive StopAsync still release their slot.")]
internal sealed class RelayLoop<T>(int maxConnections, TranslatorStatistics statistics, Action<string>? log)
{
    /// <summary>How long stopping waits for the reset relays to end.</summary>
    public static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);

    private readonly SemaphoreSlim _slots = new(maxConnections, maxConnections);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _relays = [];
    private Task? _loop;
    private int _stopped;

    /// <summary>
    /// Starts accepting with <paramref name="accept"/> and runs <paramref name="relay"/> on its own task for each
    /// accepted item; the relay must not throw. Accepting stops when the loop is stopped or the listener is disposed.
    /// </summary>
    public void Start(Func<CancellationToken, ValueTask<T>> accept, Func<T, CancellationToken, Task> relay) => _loop ??= RunAsync(accept, relay);

    private async Task RunAsync(Func<CancellationToken, ValueTask<T>> accept, Func<T, CancellationToken, Task> relay)
    {
        var ct = _stop.Token;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await _slots.WaitAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            T item;
            try
            {
                item = await accept(ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException or ServalException)
            {
                _slots.Release();
                if (ct.IsCancellationRequested || e is ObjectDisposedException)
                {
                    return;
                }

                await Task.Delay(10, CancellationToken.None).ConfigureAwait(false); // e.g. EMFILE: do not spin
                continue;
            }

            statistics.OnAccepted();
            var task = Task.Run(
                async () =>
                {
                    try
                    {
                        await relay(item, ct).ConfigureAwait(false);
                    }
                    finally
                    {
                        _slots.Release();
                    }
                },
                CancellationToken.None);
            lock (_relays)
            {
                _relays.RemoveAll(t => t.IsCompleted);
                _relays.Add(task);
            }
        }
    }

    /// <summary>Relays between the two ends, counting the relay and logging its failure as <paramref name="route"/>.</summary>
    public async Task RelayAsync(Socket tcp, ServalStream serval, string route, CancellationToken ct)
    {
        statistics.OnStarted();
        var ok = false;
        long up = 0, down = 0;
        try
        {
            (up, down) = await Relay.RunAsync(tcp, serval, ct).ConfigureAwait(false);
            ok = true;
        }
        catch (Exception e)
        {
            log?.Invoke($"{route}: relay failed: {Describe(e)}");
        }
        finally
        {
            statistics.OnEnded(ok, up, down);
        }
    }

    /// <summary>
    /// Stops accepting (<paramref name="closeListener"/> ends a pending accept), resets the relays still running and
    /// waits for them, at most <see cref="StopTimeout"/>; relays whose peer does not react keep their reset sockets
    /// until the process ends. Idempotent.
    /// </summary>
    public async ValueTask StopAsync(Func<ValueTask> closeListener)
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        await closeListener().ConfigureAwait(false);
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }

        Task[] relays;
        lock (_relays)
        {
            relays = [.. _relays];
        }

        try
        {
            await Task.WhenAll(relays).WaitAsync(StopTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }
    }

    public static string Describe(Exception e) => e switch
    {
        ServalException s => $"{s.Error} ({s.Message})",
        OperationCanceledException => "timed out or stopped",
        _ => e.Message,
    };
}
