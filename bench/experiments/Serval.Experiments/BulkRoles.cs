using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using Serval.Links;
using Serval.Stack;
using Serval.Wire;

namespace Serval.Experiments;

/// <summary>
/// The bulk-transfer processes of fig9 and fig10: a server that accepts stream connections to one service and sends to
/// each until told to stop (and moves a flow to another link when told), and a client that connects, reads, and reports
/// what it received over time. Both are this program run again inside a namespace, each with a ServalHost of its own.
/// </summary>
/// <remarks>
/// Protocol on standard input/output (one line each):
/// <list type="bullet">
/// <item>server: prints <c>ready</c> once listening and <c>accepted I</c> per connection (I from 0); reads
/// <c>migrate I LINK</c> (connection I to link index LINK; answers <c>migrated I MS</c> once the flow runs on it, MS from
/// the command, or <c>error …</c>) and <c>stop</c> (ends every stream; answers <c>sent I BYTES SHA256</c> per connection,
/// and <c>stats I …</c> (the sender's retransmissions, timeouts, RTT), then <c>stopped</c>); <c>flow I</c> prints <c>flow I LOCAL PEER STATE</c>.</item>
/// <item>client: prints <c>connected</c>, then every interval <c>sample TIMESTAMP BYTES GAP_US GAP_END</c> (Stopwatch
/// timestamps, which on Linux are CLOCK_MONOTONIC nanoseconds and so comparable between processes; BYTES = total read;
/// GAP_US = the longest time between two reads in the interval, GAP_END = when that pause ended), and at end of stream
/// <c>done BYTES SHA256</c>.</item>
/// </list>
/// The data is 64 KiB chunks at varying offsets of a 16 MiB random pool, hashed on both ends (bytes lost = sent minus
/// received, or all of them when the hashes differ).
/// </remarks>
internal static class BulkRoles
{
    public const string Server = "bulk-server";
    public const string Client = "bulk-client";
    public const int Port = ServalInfo.DefaultUdpPort;
    private const int Chunk = 64 * 1024;

    public static IReadOnlyDictionary<string, Func<string[], Task<int>>> All { get; } = new Dictionary<string, Func<string[], Task<int>>>
    {
        [Server] = RunServerAsync,
        [Client] = RunClientAsync,
    };

    /// <summary><c>bulk-server SERVICE (--links A,B | --policy)</c>.</summary>
    private static async Task<int> RunServerAsync(string[] args)
    {
        var service = ServiceId.FromName(args[0]);
        var options = args[1] == "--policy"
            ? new ServalHostOptions { Name = "server", LinkPolicies = [new LinkPolicy { IPv6 = false, Port = Port }] }
            : new ServalHostOptions { Name = "server", Links = [.. args[2].Split(',').Select(a => (ServalLink)new UdpLink(IPAddress.Parse(a), Port))] };
        await using var host = await ServalHost.StartAsync(options);
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = host, ListenEndPoint = new ServiceEndPoint(service) });
        var pool = new byte[(16 * 1024 * 1024) + Chunk];
        new Random(9).NextBytes(pool);
        var connections = new List<ServalConnection>();
        var writers = new List<Task<(long Bytes, byte[] Hash)>>();
        var stop = new CancellationTokenSource();
        var output = new object();
        void Say(string line)
        {
            lock (output)
            {
                Console.WriteLine(line);
            }
        }

        var accepting = Task.Run(async () =>
        {
            while (true)
            {
                var c = await listener.AcceptConnectionAsync();
                lock (connections)
                {
                    connections.Add(c);
                    writers.Add(Task.Run(() => WriteAsync(c, pool, stop.Token)));
                    Say($"accepted {connections.Count - 1}");
                }
            }
        });
        Say("ready");

        while (await Console.In.ReadLineAsync() is { } line)
        {
            var words = line.Split(' ');
            ServalConnection Connection(int i)
            {
                lock (connections)
                {
                    return connections[i];
                }
            }

            try
            {
                switch (words[0])
                {
                    case "migrate":
                        {
                            var i = int.Parse(words[1], CultureInfo.InvariantCulture);
                            var link = int.Parse(words[2], CultureInfo.InvariantCulture);
                            var c = Connection(i);
                            var t0 = Stopwatch.GetTimestamp();
                            await c.MigrateAsync(link);
                            _ = Task.Run(async () =>
                            {
                                var limit = Stopwatch.GetTimestamp() + (10 * Stopwatch.Frequency);
                                while (Stopwatch.GetTimestamp() < limit)
                                {
                                    if (await c.GetFlowInfoAsync() is { Migration: MigrationState.None } f && f.Interface == link + 1)
                                    {
                                        Say(string.Create(CultureInfo.InvariantCulture, $"migrated {i} {Stopwatch.GetElapsedTime(t0).TotalMilliseconds:F2}"));
                                        return;
                                    }

                                    await Task.Delay(1);
                                }

                                Say($"error migration of {i} did not complete within 10 s");
                            });
                            break;
                        }

                    case "flow":
                        {
                            var f = await Connection(int.Parse(words[1], CultureInfo.InvariantCulture)).GetFlowInfoAsync();
                            Say($"flow {words[1]} {f?.LocalAddress} {f?.PeerAddress} {f?.Migration}");
                            break;
                        }

                    case "stop":
                        {
                            await stop.CancelAsync();
                            Task<(long Bytes, byte[] Hash)>[] all;
                            lock (connections)
                            {
                                all = [.. writers];
                            }

                            for (var i = 0; i < all.Length; i++)
                            {
                                var (bytes, hash) = await all[i];
                                Say(string.Create(CultureInfo.InvariantCulture, $"sent {i} {bytes} {Convert.ToHexStringLower(hash)}"));
                                if (await Connection(i).GetFlowInfoAsync() is { Stream: { } st })
                                {
                                    Say($"stats {i} retransmissions={st.Retransmissions} fast_retransmits={st.FastRetransmits} timeouts={st.Timeouts} tail_loss_probes={st.TailLossProbes} srtt_ms={st.SmoothedRtt.TotalMilliseconds:F1}");
                                }
                            }

                            Say("stopped"); // the experiment ends us (by id) once the clients have read to the end
                            break;
                        }

                    default:
                        Say($"error unknown command '{line}'");
                        break;
                }
            }
            catch (Exception e) when (e is ServalException or ArgumentException or FormatException)
            {
                Say($"error {line}: {e.Message}");
            }
        }

        GC.KeepAlive(accepting);
        return 0;
    }

    /// <summary>Writes chunks of the pool until stopped, then ends the stream; the bytes and their SHA-256.</summary>
    private static async Task<(long, byte[])> WriteAsync(ServalConnection connection, byte[] pool, CancellationToken stop)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var stream = connection.GetStream();
        long written = 0;
        for (long i = 0; !stop.IsCancellationRequested; i++)
        {
            var chunk = pool.AsMemory((int)(i * 4099 % (pool.Length - Chunk)), Chunk);
            await stream.WriteAsync(chunk, CancellationToken.None); // a write in progress completes; the loop checks stop
            hash.AppendData(chunk.Span);
            written += Chunk;
        }

        stream.CompleteWrites();
        return (written, hash.GetHashAndReset());
    }

    /// <summary><c>bulk-client SERVICE LOCAL_ADDRESS SERVER_ADDRESS INTERVAL_MS</c>.</summary>
    private static async Task<int> RunClientAsync(string[] args)
    {
        var service = ServiceId.FromName(args[0]);
        var interval = TimeSpan.FromMilliseconds(double.Parse(args[3], CultureInfo.InvariantCulture));
        await using var host = await ServalHost.StartAsync(new ServalHostOptions { Name = "client", Links = [new UdpLink(IPAddress.Parse(args[1]), Port)] });
        using var connectLimit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var connection = await ServalConnection.ConnectAsync(
            new ServalConnectionOptions { Host = host, Service = service, AdvisoryAddress = LinkAddress.Parse($"{args[2]}:{Port}") },
            connectLimit.Token);
        var gate = new object();
        long total = 0, last = Stopwatch.GetTimestamp(), gap = 0, gapEnd = last;
        var output = new object();
        Console.WriteLine("connected");
        using var done = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(interval);
            while (await timer.WaitForNextTickAsync(done.Token).ConfigureAwait(false))
            {
                long t, b, g, ge;
                lock (gate)
                {
                    t = Stopwatch.GetTimestamp();
                    b = total;
                    g = Math.Max(gap, t - last); // a pause still open counts
                    ge = gap >= t - last ? gapEnd : t;
                    gap = 0;
                }

                lock (output)
                {
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"sample {t} {b} {g * 1_000_000 / Stopwatch.Frequency} {ge}"));
                }
            }
        });

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[16 * 1024];
        var stream = connection.GetStream();
        int n;
        while ((n = await stream.ReadAsync(buffer)) > 0)
        {
            hash.AppendData(buffer, 0, n);
            lock (gate)
            {
                var now = Stopwatch.GetTimestamp();
                if (now - last > gap)
                {
                    gap = now - last;
                    gapEnd = now;
                }

                last = now;
                total += n;
            }
        }

        await done.CancelAsync();
        try
        {
            await sampler;
        }
        catch (OperationCanceledException)
        {
        }

        lock (output)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"done {total} {Convert.ToHexStringLower(hash.GetHashAndReset())}"));
        }

        return 0;
    }
}
