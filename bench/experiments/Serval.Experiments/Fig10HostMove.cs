using System.Diagnostics;
using System.Globalization;
using Serval.Netns;

namespace Serval.Experiments;

/// <summary>
/// Figure 10, a host moving across subnets (docs/evaluation.md). Two "physical host" namespaces each hold a bridge
/// (subnets 10.71.1.0/24 and 10.71.2.0/24) plugged into a router namespace, which also reaches a client namespace
/// (10.71.9.1). A "VM" namespace's veth (<c>e0</c>, shaped with tbf) is plugged into host A's bridge with address
/// 10.71.1.10. The VM runs a server whose links follow its addresses (a link policy and the interface monitor,
/// docs/runtime.md); the client connects to it and the VM sends a bulk stream. At t=5 s (times the scale) the VM moves:
/// its veth's far end is moved into host B's namespace and plugged into that bridge, and the VM's address is replaced
/// by 10.71.2.10 with a new default route, as a VM migration to a host on another subnet would see it. The stack moves
/// the flow to the new address (an RSYN to the client). Options: <c>--rate-mbps</c> (default 100), <c>--scale</c>.
/// </summary>
internal sealed class Fig10HostMove : Experiment
{
    public override string Name => "fig10";

    public override async Task<int> RunAsync(ExperimentOptions options)
    {
        if (NetNamespace.UnsupportedReason is { } reason)
        {
            Console.Error.WriteLine($"fig10: cannot run: {reason}");
            return 2;
        }

        var rate = options.GetDouble("rate-mbps", 100);
        var scale = options.TimeScale;
        var moveAt = 5 * scale;
        var end = 12 * scale;
        var interval = Math.Clamp(100 * scale, 50, 100);

        await using var vm = NetNamespace.Create("f10vm");
        await using var hostA = NetNamespace.Create("f10ha");
        await using var hostB = NetNamespace.Create("f10hb");
        await using var rt = NetNamespace.Create("f10rt");
        await using var cl = NetNamespace.Create("f10cl");
        foreach (var (host, router, cidr) in new[] { (hostA, "ra", "10.71.1.254/24"), (hostB, "rb", "10.71.2.254/24") })
        {
            host.Ip("link", "add", "br0", "type", "bridge");
            host.SetLink("br0", true);
            host.Ip("link", "add", "up0", "type", "veth", "peer", "name", router, "netns", rt.Name);
            Plug(host, "up0");
            rt.AddAddress(router, cidr);
        }

        vm.Ip("link", "add", "e0", "type", "veth", "peer", "name", "vm0", "netns", hostA.Name);
        Plug(hostA, "vm0");
        vm.SetLink("e0", true);
        vm.AddAddressWithDefaultRoute("e0", "10.71.1.10/24", "10.71.1.254");
        Veth.Connect(cl, "e0", "10.71.9.1/24", rt, "r9", "10.71.9.254/24");
        cl.Ip("route", "add", "default", "via", "10.71.9.254");
        rt.Sysctl("net.ipv4.ip_forward", "1");
        Shaping.Apply(vm, "e0", rate);

        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"fig10: VM interface shaped to {rate} Mbit/s; move at {moveAt:0.##} s, end at {end:0.##} s"));
        await using var server = RoleProcess.Start(vm, "vm", BulkRoles.Server, "fig10", "--policy");
        await server.WaitForAsync("ready", TimeSpan.FromSeconds(90));
        await using var client = RoleProcess.Start(cl, "client", BulkRoles.Client, "fig10", "10.71.9.1", "10.71.1.10", interval.ToString(CultureInfo.InvariantCulture));
        await client.WaitForAsync("connected", TimeSpan.FromSeconds(90));
        var trace = ReceiverTrace.Follow(client);
        await server.WaitForAsync("accepted 0", TimeSpan.FromSeconds(30));

        var zero = Stopwatch.GetTimestamp();
        var figure = new Figure(
            "fig10",
            string.Create(CultureInfo.InvariantCulture, $"Figure 10: a host moves to another subnet during a transfer (tbf {rate:0} Mbit/s)"),
            "time (s)",
            "throughput (Mbit/s)");
        await Fig9InterfaceBalancing.SleepUntilAsync(zero, moveAt);

        // The move: the VM's cable goes to host B (carrier lost while it moves), then the VM gets its new address.
        var t0 = Stopwatch.GetTimestamp();
        hostA.Ip("link", "set", "vm0", "netns", hostB.Name);
        Plug(hostB, "vm0");
        var t1 = Stopwatch.GetTimestamp();
        vm.ReplaceAddress("e0", "10.71.1.10/24", "10.71.2.10/24", "10.71.2.254");
        var t2 = Stopwatch.GetTimestamp();
        var moveTime = ReceiverTrace.Seconds(zero, t0);
        figure.Mark(moveTime, "VM moved to host B, renumbered 10.71.1.10 -> 10.71.2.10");

        // The flow has moved when the server's connection runs from the new address.
        var settled = false;
        var settleLimit = Stopwatch.GetTimestamp() + (15 * Stopwatch.Frequency);
        while (!settled && Stopwatch.GetTimestamp() < settleLimit)
        {
            server.Send("flow 0");
            var f = await server.WaitForAsync("flow 0", TimeSpan.FromSeconds(10));
            settled = f.Contains("10.71.2.10", StringComparison.Ordinal) && f.EndsWith(" None", StringComparison.Ordinal);
            if (!settled)
            {
                await Task.Delay(20);
            }
        }

        var settledAt = ReceiverTrace.Seconds(zero, Stopwatch.GetTimestamp());
        await Fig9InterfaceBalancing.SleepUntilAsync(zero, end);
        server.Send("stop");
        var w = (await server.WaitForAsync("sent 0", TimeSpan.FromSeconds(30), l => Console.Error.WriteLine($"[server] {l}"))).Split(' ');
        var (sentBytes, sentHash) = (long.Parse(w[2], CultureInfo.InvariantCulture), w[3]);
        await server.WaitForAsync("stopped", TimeSpan.FromSeconds(30), l => Console.Error.WriteLine($"[server] {l}"));
        var drained = await trace.WaitDoneAsync(TimeSpan.FromSeconds(30));

        var (stall, resumed) = trace.LongestPauseAfter(zero, moveTime);
        figure.Mark(resumed, string.Create(CultureInfo.InvariantCulture, $"data flows again (stall {stall:0} ms)"));
        foreach (var (t, mbps) in trace.Throughput(zero).Where(p => p.Time <= end))
        {
            figure.Add("VM -> client flow", t, mbps);
        }

        var (csv, png) = figure.Save(options.OutputDirectory);
        Console.Error.WriteLine($"fig10: wrote {csv} and {png}");

        var received = trace.FinalBytes ?? 0;
        var lost = received == sentBytes && trace.FinalHash == sentHash ? 0 : received < sentBytes ? sentBytes - received : sentBytes;
        var before = trace.MeanMbps(zero, moveTime / 2, moveTime);
        var after = trace.MeanMbps(zero, moveTime + ((end - moveTime) / 2), end);
        Console.Error.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"fig10: veth moved in {Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds:F1} ms, renumbered in {Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds:F1} ms; flow seen on the new address {(settledAt - moveTime) * 1000:F0} ms after the move; data flowed again {(resumed - ReceiverTrace.Seconds(zero, t2)) * 1000:F0} ms after the renumbering ended; throughput before {before:F1} Mbit/s, after {after:F1} Mbit/s; sent {sentBytes} bytes, read {received}; load average {Shaping.LoadAverage()}"));

        var problems = new List<string>();
        if (!settled)
        {
            problems.Add("the flow never ran from the new address");
        }

        if (!drained)
        {
            problems.Add("the client did not read the stream to the end");
        }

        if (lost != 0)
        {
            problems.Add($"{lost} bytes lost");
        }

        if (before <= 0 || after <= 0)
        {
            problems.Add("no data before or after the move");
        }

        foreach (var p in problems)
        {
            Console.Error.WriteLine($"fig10: invalid run: {p}");
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"fig10: stall_ms={stall:F1} bytes_lost={lost}"));
        return problems.Count == 0 ? 0 : 1;
    }

    /// <summary>Plugs <paramref name="device"/> of <paramref name="host"/> into its bridge and sets it up.</summary>
    private static void Plug(NetNamespace host, string device) =>
        host.IpBatch($"link set {device} master br0", $"link set {device} up");
}
