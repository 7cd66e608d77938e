using System.Diagnostics;
using System.Security.Cryptography;
using Serval.Stack;
using Serval.Wire;

namespace Serval.Testing;

/// <summary>What a soak run did: transfers verified, failures (with the first few messages).</summary>
internal sealed class SoakResult
{
    private long _transfers;
    private long _failures;
    private long _bytes;

    /// <summary>Connect + transfer + close cycles whose echoed bytes had the SHA-256 of the sent ones.</summary>
    public long Transfers => Interlocked.Read(ref _transfers);

    /// <summary>Connects or transfers that failed (error, time-out, wrong length or hash).</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>Bytes sent and verified on their way back.</summary>
    public long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>The first failures' messages (at most 20).</summary>
    public List<string> Errors { get; } = [];

    internal void Success(int bytes)
    {
        Interlocked.Increment(ref _transfers);
        Interlocked.Add(ref _bytes, bytes);
    }

    internal void Failure(string message)
    {
        Interlocked.Increment(ref _failures);
        lock (Errors)
        {
            if (Errors.Count < 20)
            {
                Errors.Add(message);
            }
        }
    }
}

/// <summary>
/// Soak traffic between real hosts (used by the soak test and by <c>bench/run.sh hostile</c>): concurrent loops of
/// connect → send 1–64 KiB of random bytes → half-close → read the echo to end of stream → compare SHA-256 → close,
/// against an echo service (<see cref="ServalEcho"/>).
/// </summary>
internal static class ServalSoak
{
    /// <summary>Bound on one connect + transfer + close cycle.</summary>
    public static readonly TimeSpan CycleTimeout = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Runs <paramref name="loopsPerHost"/> concurrent loops on each of <paramref name="clients"/> until
    /// <paramref name="duration"/> has passed (a cycle started before then is finished).
    /// </summary>
    public static async Task<SoakResult> RunAsync(IReadOnlyList<ServalHost> clients, int loopsPerHost, ServiceId service, LinkAddress server, TimeSpan duration, int seed)
    {
        var result = new SoakResult();
        var until = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var loops = new List<Task>();
        for (var h = 0; h < clients.Count; h++)
        {
            for (var l = 0; l < loopsPerHost; l++)
            {
                var host = clients[h];
                var random = new Random(seed + (h * 1000) + l);
                loops.Add(Task.Run(async () =>
                {
                    while (Stopwatch.GetTimestamp() < until)
                    {
                        await CycleAsync(host, service, server, random, result).ConfigureAwait(false);
                    }
                }));
            }
        }

        await Task.WhenAll(loops).ConfigureAwait(false);
        return result;
    }

    /// <summary>One connect + transfer (random 1–64 KiB, echoed, SHA-256 compared) + close.</summary>
    public static async Task CycleAsync(ServalHost host, ServiceId service, LinkAddress server, Random random, SoakResult result)
    {
        var data = new byte[random.Next(1024, (64 * 1024) + 1)];
        random.NextBytes(data);
        using var cts = new CancellationTokenSource(CycleTimeout);
        var ct = cts.Token;
        try
        {
            await using var connection = await ServalConnection.ConnectAsync(
                new ServalConnectionOptions { Host = host, Service = service, AdvisoryAddress = server }, ct).ConfigureAwait(false);
            var stream = connection.GetStream();
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var reader = Task.Run(
                async () =>
                {
                    var buffer = new byte[16 * 1024];
                    long total = 0;
                    int n;
                    while ((n = await stream.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                    {
                        hash.AppendData(buffer, 0, n);
                        total += n;
                    }

                    return total;
                },
                CancellationToken.None);
            await stream.WriteAsync(data, ct).ConfigureAwait(false);
            stream.CompleteWrites();
            var received = await reader.ConfigureAwait(false);
            if (received != data.Length)
            {
                result.Failure($"{host.Name}: {received} of {data.Length} bytes echoed");
                return;
            }

            if (!hash.GetHashAndReset().AsSpan().SequenceEqual(SHA256.HashData(data)))
            {
                result.Failure($"{host.Name}: SHA-256 of the echo differs ({data.Length} bytes)");
                return;
            }

            result.Success(data.Length);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            result.Failure($"{host.Name}: {e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>Flows of a host other than compact TIME-WAIT records (FlowCount − CompactTimeWaitCount).</summary>
    public static async Task<int> LiveFlowsAsync(ServalHost host)
    {
        var flows = await host.GetFlowsAsync().ConfigureAwait(false);
        return flows.Count(f => !IsCompactTimeWait(f));
    }

    /// <summary>Compact TIME-WAIT records of a host (CompactTimeWaitCount).</summary>
    public static async Task<int> CompactTimeWaitAsync(ServalHost host)
    {
        var flows = await host.GetFlowsAsync().ConfigureAwait(false);
        return flows.Count(IsCompactTimeWait);
    }

    private static bool IsCompactTimeWait(FlowInfo f) => f.State == SalState.TimeWait && f.Socket.IsNone && f.Stream is null;

    /// <summary>
    /// Polls until <paramref name="condition"/> holds for every host or <paramref name="timeout"/> has passed; returns
    /// whether it held.
    /// </summary>
    public static async Task<bool> WaitAllAsync(IEnumerable<ServalHost> hosts, Func<ServalHost, Task<bool>> condition, TimeSpan timeout)
    {
        var list = hosts.ToList();
        var until = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            var all = true;
            foreach (var h in list)
            {
                all &= await condition(h).ConfigureAwait(false);
            }

            if (all)
            {
                return true;
            }

            if (Stopwatch.GetTimestamp() >= until)
            {
                return false;
            }

            await Task.Delay(50).ConfigureAwait(false);
        }
    }
}
