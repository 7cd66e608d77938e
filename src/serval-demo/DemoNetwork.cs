using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Serval.Links;
using Serval.Stack;
using Serval.Wire;

namespace Serval.Demo;

/// <summary>
/// The demo (README.md): a service router, replicas of <c>demo.echo</c> and clients on 127.0.0.x over UDP. A replica
/// leaves at 5/16 of the run and another joins at 9/16; the run ends with a summary and checks.
/// </summary>
internal static class DemoNetwork
{
    private static readonly IPAddress s_router = IPAddress.Parse("127.0.0.10");
    private static readonly TimeSpan s_clientInterval = TimeSpan.FromMilliseconds(300);

    public static async Task<int> RunAsync(TextWriter output, TimeSpan duration)
    {
        try
        {
            return await RunCoreAsync(output, duration).ConfigureAwait(false);
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.AddressAlreadyInUse or SocketError.AddressNotAvailable)
        {
            await output.WriteLineAsync($"serval-demo: cannot bind a 127.0.0.x:{ServalInfo.DefaultUdpPort} address ({e.Message}). Is another demo running?").ConfigureAwait(false);
            return 1;
        }
    }

    private static async Task<int> RunCoreAsync(TextWriter output, TimeSpan duration)
    {
        var clock = Stopwatch.StartNew();
        var service = ServiceId.FromName("demo.echo");
        var ct = CancellationToken.None;
        void Say(string text) => output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{clock.Elapsed.TotalSeconds,5:0.0}s] {text}"));

        output.WriteLine("Serval demo: a service router, replicas of \"demo.echo\" and clients, each a host on its own loopback address (UDP port 54325).");
        output.WriteLine($"Service demo.echo = {service}");
        output.WriteLine();

        await using var router = await ServalHost.StartAsync(
            new ServalHostOptions { Name = "router", Links = [new UdpLink(s_router)], Engine = EngineOptions.Default with { Mode = EngineMode.ServiceRouter } },
            ct).ConfigureAwait(false);
        var directory = new ReplicaDirectory(router);
        Say($"router     {router.Links[0].LocalAddress} (service-router mode)");

        var replicas = new List<EchoReplica>();
        var weights = new Dictionary<string, uint>();
        async Task<EchoReplica> AddReplicaAsync(int n, uint weight)
        {
            var r = await EchoReplica.StartAsync($"replica-{n}", IPAddress.Parse($"127.0.0.{10 + n}"), service, clock, ct).ConfigureAwait(false);
            await directory.AddAsync(service, r.Address, weight, ct).ConfigureAwait(false);
            replicas.Add(r);
            weights[r.Name] = weight;
            return r;
        }

        try
        {
            for (var n = 1; n <= 3; n++)
            {
                var r = await AddReplicaAsync(n, n == 3 ? 2u : 1u).ConfigureAwait(false);
                Say($"{r.Name,-10} {r.Address} serves demo.echo; router rule: FORWARD {r.Address} weight {weights[r.Name]}");
            }

            var clients = new List<DemoClient>();
            for (var n = 1; n <= 3; n++)
            {
                var c = await DemoClient.StartAsync($"client-{n}", IPAddress.Parse($"127.0.0.{20 + n}"), router.Links[0].LocalAddress, service, clock, ct).ConfigureAwait(false);
                clients.Add(c);
                Say($"{c.Name,-10} {c.Host.Links[0].LocalAddress} default rule: FORWARD /0 -> router; connects to \"demo.echo\" by name only");
            }

            output.WriteLine();
            for (var i = 0; i < clients.Count; i++)
            {
                clients[i].Run(s_clientInterval, i + 1);
            }

            var leaveAt = duration * 5 / 16;
            var joinAt = duration * 9 / 16;
            var stopAt = duration * 14 / 16;
            var leaving = replicas[1];
            var leftAt = TimeSpan.MaxValue;
            var openAtLeave = 0;
            var joinedAt = TimeSpan.MaxValue;
            EchoReplica? joined = null;
            var lastAccepted = new Dictionary<string, int>();
            var nextReport = TimeSpan.FromSeconds(1);
            while (clock.Elapsed < stopAt)
            {
                await Task.Delay(50, ct).ConfigureAwait(false);
                // The replica leaves while it has connections open (waiting up to two seconds for one), to show that they
                // finish although new connections no longer reach it.
                if (leftAt == TimeSpan.MaxValue && clock.Elapsed >= leaveAt && (leaving.Active > 0 || clock.Elapsed >= leaveAt + TimeSpan.FromSeconds(2)))
                {
                    await directory.RemoveAsync(service, leaving.Address, ct).ConfigureAwait(false);
                    leftAt = clock.Elapsed;
                    openAtLeave = leaving.Active;
                    Say($">>> {leaving.Name} leaves: its FORWARD rule is removed at the router; {openAtLeave} connection(s) still open on it");
                }

                if (leftAt != TimeSpan.MaxValue && leaving.Listening && leaving.Active == 0)
                {
                    await leaving.CloseListenerAsync().ConfigureAwait(false);
                    Say($">>> {leaving.Name} drained: its last connection finished; listener closed");
                }

                if (joined is null && clock.Elapsed >= joinAt)
                {
                    joined = await AddReplicaAsync(4, 1).ConfigureAwait(false);
                    joinedAt = clock.Elapsed;
                    Say($">>> {joined.Name} joins at {joined.Address}; router rule: FORWARD {joined.Address} weight 1");
                }

                if (clock.Elapsed >= nextReport)
                {
                    nextReport += TimeSpan.FromSeconds(1);
                    var parts = replicas.Select(r =>
                    {
                        var delta = r.Accepted - lastAccepted.GetValueOrDefault(r.Name);
                        lastAccepted[r.Name] = r.Accepted;
                        return string.Create(CultureInfo.InvariantCulture, $"{r.Name[8..]}:+{delta,-2} ({r.Active} open)");
                    });
                    Say($"new connections per replica  {string.Join("  ", parts)} | router forwarded {router.Counters.Forwarded} SYNs");
                }
            }

            Say("clients stop opening connections; waiting for open ones to finish");
            foreach (var c in clients)
            {
                await c.StopOpeningAsync().ConfigureAwait(false);
            }

            var elapsed = clock.Elapsed;
            var result = Summarize(output, router, replicas, weights, clients, leaving, leftAt, openAtLeave, joined, joinedAt, elapsed);
            foreach (var c in clients)
            {
                await c.DisposeAsync().ConfigureAwait(false);
            }

            return result;
        }
        finally
        {
            foreach (var r in replicas)
            {
                await r.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private static int Summarize(
        TextWriter output,
        ServalHost router,
        List<EchoReplica> replicas,
        Dictionary<string, uint> weights,
        List<DemoClient> clients,
        EchoReplica leaving,
        TimeSpan leftAt,
        int openAtLeave,
        EchoReplica? joined,
        TimeSpan joinedAt,
        TimeSpan elapsed)
    {
        var completed = clients.SelectMany(c => c.Completed).ToList();
        var failed = clients.Sum(c => c.Failed);
        var started = clients.Sum(c => c.Started);
        var inv = CultureInfo.InvariantCulture;
        output.WriteLine();
        output.WriteLine(string.Create(inv, $"Summary after {elapsed.TotalSeconds:0.0} s"));
        output.WriteLine("  replica     address            weight  connections  packets received directly");
        foreach (var r in replicas)
        {
            var served = completed.Count(c => c.Replica == r.Name);
            output.WriteLine(string.Create(inv, $"  {r.Name,-10}  {r.Address,-17}  {weights[r.Name],6}  {served,11}  {r.Host.Counters.PacketsReceived,25}"));
        }

        var replicaPackets = replicas.Sum(r => r.Host.Counters.PacketsReceived);
        var lateToLeaver = completed.Count(c => c.Replica == leaving.Name && c.At > leftAt + TimeSpan.FromMilliseconds(100));
        // Connections the leaving replica had open when its rule went: started before, finished after, echoes checked.
        var finishedAfterLeaving = completed.Count(c => c.Replica == leaving.Name && c.At < leftAt && c.Done > leftAt);
        var toJoiner = joined is null ? 0 : completed.Count(c => c.Replica == joined.Name);
        var r1 = completed.Count(c => c.Replica == "replica-1");
        var r3 = completed.Count(c => c.Replica == "replica-3");
        output.WriteLine(string.Create(inv, $"  clients: {started} connections opened by name, {completed.Count} completed with every echo checked, {failed} failed"));
        output.WriteLine(string.Create(inv, $"  router:  received {router.Counters.PacketsReceived} packets, forwarded {router.Counters.Forwarded} SYNs; replicas received {replicaPackets} packets straight from the clients"));
        output.WriteLine();

        var checks = new (bool Ok, string Text)[]
        {
            (failed == 0 && completed.Count == started, "every connection completed and every echo matched"),
            (router.Counters.PacketsReceived == router.Counters.Forwarded && replicaPackets > router.Counters.Forwarded, "only SYNs went through the router; the data went directly"),
            (lateToLeaver == 0, $"no new connection reached {leaving.Name} after it left"),
            (openAtLeave > 0 && finishedAfterLeaving >= openAtLeave && !leaving.Listening && leaving.Active == 0,
                $"the {openAtLeave} connection(s) open on {leaving.Name} when it left finished ({finishedAfterLeaving} completed after it left), then it closed its listener"),
            (toJoiner > 0, $"{joined?.Name ?? "replica-4"} served {toJoiner} connections after it joined at {joinedAt.TotalSeconds.ToString("0.0", inv)} s"),
        };
        foreach (var (ok, text) in checks)
        {
            output.WriteLine($"  [{(ok ? "ok" : "FAILED")}] {text}");
        }

        // The router picks each connection's replica at random in proportion to the weights, so a short run only
        // approximates the ratio: shown, not checked.
        output.WriteLine(string.Create(inv, $"  [info] weighted spread: replica-3 (weight 2) served {r3}, replica-1 (weight 1) served {r1}: {(r1 == 0 ? 0 : (double)r3 / r1):0.00} : 1"));

        foreach (var e in clients.SelectMany(c => c.Errors).Take(5))
        {
            output.WriteLine($"  error: {e}");
        }

        var pass = checks.All(c => c.Ok);
        output.WriteLine();
        output.WriteLine(pass ? "Demo finished: all checks passed." : "Demo finished: some checks FAILED.");
        return pass ? 0 : 1;
    }
}
