using System.Diagnostics;
using System.Globalization;
using System.Net;
using Serval.Links;
using Serval.Netns;
using Serval.Stack;
using Serval.Stack.ControlPlane;
using Serval.Wire;

namespace Serval.Benchmarks;

/// <summary>
/// <c>bench/run.sh adhoc</c>: three network namespaces on one bridge (<see cref="BridgeLan"/>), each host with one UDP
/// link and default options — no route, no rule, no router configured (docs/runtime.md, "Broadcast and discovery").
/// <list type="number">
/// <item>connect_ms: a client connects COUNT times (default 50) by serviceID to a service of another host: the SYN
/// goes out on the broadcast default rule; from the connect call (the SYN handed to the link) to the connection
/// established, one at a time, each closed before the next; p50 and p99. A connect that fails or takes more than
/// 5 s counts in failed. One connect before them warms the code up and is not counted.</item>
/// <item>router_found_ms: a service router is started in the third namespace; from the call that starts it (it
/// advertises itself at once) to the moment it holds the server's registration — the router host's start (its
/// first run of the router code in this process included), its advertisement, and the server's Register and
/// acknowledgement.</item>
/// </list>
/// The last line is <c>adhoc: connect_ms_p50=&lt;n&gt; connect_ms_p99=&lt;n&gt; router_found_ms=&lt;n&gt; failed=&lt;n&gt;</c>.
/// </summary>
internal static class AdhocBenchmark
{
    private static readonly ServiceId Service = ServiceId.FromName("bench.adhoc");

    public static async Task<int> RunAsync(string[] args)
    {
        var connects = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 50;
        if (connects is < 1 or > 100_000)
        {
            Console.Error.WriteLine("usage: adhoc [CONNECTS (1-100000)]");
            return 2;
        }

        if (NetNamespace.UnsupportedReason is { } reason)
        {
            Console.Error.WriteLine($"adhoc: cannot run: {reason}");
            return 2;
        }

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(240));
        var ct = deadline.Token;
        await using var lan = BridgeLan.Create("bad", 96, 3);
        await using var server = Start(lan.Hosts[0], "adhoc-server", lan.Address(0), router: false);
        await using var client = Start(lan.Hosts[1], "adhoc-client", lan.Address(1), router: false);
        await using var listener = await Serval.Testing.ServalEcho.ListenAsync(server, Service, ct);

        var samples = new List<double>(connects);
        var failed = 0;
        for (var i = -1; i < connects; i++)
        {
            // Connect -1 warms the code paths up (JIT) and is not counted.
            using var one = CancellationTokenSource.CreateLinkedTokenSource(ct);
            one.CancelAfter(TimeSpan.FromSeconds(5));
            var started = Stopwatch.GetTimestamp();
            try
            {
                await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = Service }, one.Token);
                if (i >= 0)
                {
                    samples.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                }
            }
            catch (Exception e) when (e is ServalException or OperationCanceledException && !ct.IsCancellationRequested)
            {
                failed++;
                Console.Error.WriteLine($"adhoc: connect {i} failed: {e.Message}");
            }
        }

        // The router appears; the server (which solicited at start and heard nobody) hears its first advertisement,
        // registers, and the router acknowledges. Polled at the server (its discovery snapshot, code warmed up first),
        // then checked at the router.
        var serverAddress = LinkAddress.FromIPAddress(lan.Address(0));
        _ = await server.Admin.GetRouterDiscoveryAsync(ct);
        var routerStarted = Stopwatch.GetTimestamp();
        await using var router = Start(lan.Hosts[2], "adhoc-router", lan.Address(2), router: true);
        var startReturned = Stopwatch.GetElapsedTime(routerStarted).TotalMilliseconds;
        double routerFound = -1;
        while (Stopwatch.GetElapsedTime(routerStarted) < TimeSpan.FromSeconds(10))
        {
            if ((await server.Admin.GetRouterDiscoveryAsync(ct))!.Routers.Any(r => r.Registered >= 1))
            {
                routerFound = Stopwatch.GetElapsedTime(routerStarted).TotalMilliseconds;
                break;
            }

            await Task.Delay(1, ct);
        }

        if (routerFound >= 0 && !(await router.Admin.GetRouterSnapshotAsync(ct)).Registrations.Any(r => r.Prefix == ServicePrefix.Exact(Service) && r.Host.SameAddress(serverAddress)))
        {
            routerFound = -1;
            Console.Error.WriteLine("adhoc: the server counts a registration the router does not hold");
        }

        if (routerFound < 0)
        {
            failed++;
            Console.Error.WriteLine("adhoc: the server did not register with the router within 10 s");
        }

        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"adhoc: the router's start returned after {startReturned:F2} ms; registration held after {routerFound:F2} ms"));
        samples.Sort();
        var p50 = Percentile(samples, 0.50);
        var p99 = Percentile(samples, 0.99);
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"adhoc: {samples.Count} connects over the broadcast default rule, min {(samples.Count > 0 ? samples[0] : double.NaN):F2} ms, max {(samples.Count > 0 ? samples[^1] : double.NaN):F2} ms"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"adhoc: connect_ms_p50={p50:F2} connect_ms_p99={p99:F2} router_found_ms={routerFound:F2} failed={failed}"));
        return 0;
    }

    private static ServalHost Start(NetNamespace ns, string name, IPAddress address, bool router) =>
        ns.Invoke(() => ServalHost.StartAsync(new ServalHostOptions
        {
            Name = name,
            Links = [new UdpLink(address)],
            Engine = EngineOptions.Default with { Mode = router ? EngineMode.ServiceRouter : EngineMode.Host },
            RouterControl = router ? new RouterControllerOptions() : null,
        }).AsTask().GetAwaiter().GetResult());

    private static double Percentile(List<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];
}
