using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Serval.Daemon;

namespace Serval.Cli.Tests;

public sealed class DaemonTests
{
    [Fact]
    public async Task Control_socket_is_only_open_to_its_owner_and_removed_on_stop()
    {
        var path = Path.Combine(Path.GetTempPath(), $"servald-perm-{Guid.NewGuid():N}.sock");
        var daemon = await ServalDaemon.StartAsync(Options(path), NullLoggerFactory.Instance, TestContext.Current.CancellationToken);
        try
        {
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            }
        }
        finally
        {
            await daemon.DisposeAsync();
        }

        Assert.False(File.Exists(path));
    }

    [Fact]
    public async Task A_second_daemon_on_the_same_socket_is_refused()
    {
        var path = Path.Combine(Path.GetTempPath(), $"servald-twice-{Guid.NewGuid():N}.sock");
        await using var first = await ServalDaemon.StartAsync(Options(path), NullLoggerFactory.Instance, TestContext.Current.CancellationToken);
        var e = await Assert.ThrowsAsync<DaemonException>(() => ServalDaemon.StartAsync(Options(path), NullLoggerFactory.Instance, TestContext.Current.CancellationToken));
        Assert.Contains("already listening", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Service_router_mode_comes_from_configuration()
    {
        var path = Path.Combine(Path.GetTempPath(), $"servald-router-{Guid.NewGuid():N}.sock");
        var options = Options(path);
        options.Mode = Stack.EngineMode.ServiceRouter;
        await using var daemon = await ServalDaemon.StartAsync(options, NullLoggerFactory.Instance, TestContext.Current.CancellationToken);
        var stats = CliResult.Run("stats", "--json", "--socket", path);
        Assert.Equal("ServiceRouter", (string)stats.Json["host"]!["mode"]!);

        // Every engine counter is listed, the stream transport's spoofing defences (RFC 5961) included.
        foreach (var name in new[] { "resetsIgnored", "badNonce", "flowFaults", "synCookiesSent", "synCookiesAccepted", "synCookiesRejected", "timeWaitRecycled", "negativeAnswersSent", "negativeAnswersSuppressed", "userTimeouts", "spoofTransportRst", "spoofSyn", "spoofFin", "ackUnacceptable", "dataOutOfWindow", "challengeAcksSent", "challengeAcksSuppressed", "forwardLoops", "hopLimitExceeded" })
        {
            Assert.Equal(0, (long)stats.Json["engine"]![name]!);
        }
    }

    [Fact]
    public void Router_discovery_and_advertisement_are_on_by_default_and_can_be_switched_off()
    {
        var defaults = DaemonConfiguration.Bind(new ConfigurationBuilder().Build());
        Assert.True(defaults.RouterDiscovery);
        Assert.True(defaults.Router?.Advertise ?? true);
        var off = DaemonConfiguration.Bind(new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["Serval:RouterDiscovery"] = "false", ["Serval:Router:Advertise"] = "false" })
            .Build());
        Assert.False(off.RouterDiscovery);
        Assert.False(off.Router!.Advertise);
        var e = Assert.Throws<DaemonException>(() => DaemonConfiguration.Bind(new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["Serval:RouterDiscovery"] = "maybe" })
            .Build()));
        Assert.Contains("RouterDiscovery", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://0.0.0.0:9465/metrics")]
    [InlineData("http://10.1.2.3:9465/metrics")]
    [InlineData("http://example.com/metrics")]
    public void Metrics_on_a_non_loopback_address_are_refused(string url)
    {
        var e = Assert.Throws<DaemonException>(() => MetricsExporter.ValidatePrefix(url));
        Assert.Contains("loopback", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_are_served_in_prometheus_text_format()
    {
        var path = Path.Combine(Path.GetTempPath(), $"servald-metrics-{Guid.NewGuid():N}.sock");
        var options = Options(path);
        options.Name = "metrics-test";
        options.MetricsUrl = $"http://127.0.0.1:{FreeTcpPort()}/metrics";
        await using var daemon = await ServalDaemon.StartAsync(options, NullLoggerFactory.Instance, TestContext.Current.CancellationToken);
        using var http = new HttpClient();
        var text = await http.GetStringAsync(new Uri(options.MetricsUrl + "/"), TestContext.Current.CancellationToken);
        // OpenTelemetry's semantic-convention names and units, with Prometheus' unit suffixes.
        Assert.Contains("# TYPE serval_packets_total counter", text, StringComparison.Ordinal);
        Assert.Contains("serval_packets_total{serval_host=\"metrics-test\",network_io_direction=\"receive\"} 0", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE serval_io_bytes_total counter", text, StringComparison.Ordinal);
        Assert.Contains("# UNIT serval_io_bytes_total bytes", text, StringComparison.Ordinal);
        Assert.Contains("serval_io_bytes_total{serval_host=\"metrics-test\",network_io_direction=\"transmit\"} 0", text, StringComparison.Ordinal);
        Assert.DoesNotContain("# UNIT serval_packets_total", text, StringComparison.Ordinal); // {packet} is an annotation, not a unit
        foreach (var kind in new[] { "spoof_transport_rst", "spoof_syn", "spoof_fin", "ack_unacceptable", "data_out_of_window", "challenge_acks_sent", "challenge_acks_suppressed" })
        {
            Assert.Contains($"serval_transport_{kind}_total{{serval_host=\"metrics-test\"}} 0", text, StringComparison.Ordinal);
        }

        foreach (var name in new[] { "flows_faults", "sal_syn_cookies_sent", "sal_timewait_recycled", "sal_negative_answers_sent", "stream_user_timeouts", "packets_forward_loops", "packets_hop_limit_exceeded" })
        {
            Assert.Contains($"serval_{name}_total{{serval_host=\"metrics-test\"}} 0", text, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("serval.io", "By", true, "serval_io_bytes_total")]
    [InlineData("serval.packets", "{packet}", true, "serval_packets_total")]
    [InlineData("serval.router.registry.watch_lag", "s", false, "serval_router_registry_watch_lag_seconds")]
    [InlineData("serval.flows.active", "{flow}", false, "serval_flows_active")]
    [InlineData("http.server.request.duration", "s", false, "http_server_request_duration_seconds")]
    [InlineData("disk.used_bytes", "By", false, "disk_used_bytes")]
    [InlineData("cpu.utilization", "1", false, "cpu_utilization_ratio")]
    public void Prometheus_names_carry_the_unit_as_opentelemetry_maps_it(string instrument, string unit, bool counter, string expected) =>
        Assert.Equal(expected, MetricsExporter.PrometheusName(instrument, unit, counter));

    internal static int FreeTcpPort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    [Fact]
    public async Task Link_policies_bring_the_links_and_no_default_link_is_opened()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux() && Environment.Is64BitProcess, "link policies need 64-bit Linux");
        var path = Path.Combine(Path.GetTempPath(), $"servald-policy-{Guid.NewGuid():N}.sock");
        var options = new DaemonOptions
        {
            ControlSocket = path,
            LinkPolicies = [new LinkPolicySettings { IPv6 = false, Loopback = true, Interfaces = ["lo"], Port = 0 }],
        };
        var plan = DaemonPlan.Create(options);
        Assert.Empty(plan.Links);
        var policy = Assert.Single(plan.Policies);
        Assert.True(policy.IncludeLoopback);
        Assert.False(policy.IPv6);
        Assert.Equal(["lo"], policy.Interfaces);

        await using var daemon = await ServalDaemon.StartAsync(plan, NullLoggerFactory.Instance, TestContext.Current.CancellationToken);
        var expected = System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
            .Single(i => i.Name == "lo").GetIPProperties().UnicastAddresses
            .Where(a => a.Address.AddressFamily == AddressFamily.InterNetwork).Select(a => a.Address).Order().ToList();
        Assert.Equal(expected, daemon.Host.Links.Select(l => l.LocalAddress.ToIPAddress()).Order());
        Assert.DoesNotContain(daemon.Host.Links, l => l.LocalAddress.Port == ServalInfo.DefaultUdpPort);
        var stats = CliResult.Run("stats", "--json", "--socket", path);
        Assert.Equal(expected.Count, stats.Json["host"]!["links"]!.AsArray().Count);
        Assert.Equal(0, (long)stats.Json["engine"]!["flowsStranded"]!);
        Assert.Equal(0, (long)stats.Json["engine"]!["strandedTimeouts"]!);
    }

    [Theory]
    [InlineData(99_999, true, true, "Serval:LinkPolicies:0: Port")]
    [InlineData(54_325, false, false, "Serval:LinkPolicies:0: A link policy needs IPv4, IPv6 or both")]
    public void Invalid_link_policies_are_refused_by_key(int port, bool ipv4, bool ipv6, string message)
    {
        var e = Assert.Throws<DaemonException>(() => DaemonPlan.Create(new DaemonOptions { LinkPolicies = [new LinkPolicySettings { Port = port, IPv4 = ipv4, IPv6 = ipv6 }] }));
        Assert.StartsWith(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_router_reachable_only_through_a_policy_is_accepted_and_followed()
    {
        var plan = DaemonPlan.Create(new DaemonOptions
        {
            LinkPolicies = [new LinkPolicySettings { IPv6 = false }],
            Registration = new RegistrationSettings { Routers = ["10.0.0.254"] },
        });
        var router = Assert.Single(plan.Registration!.Routers);
        Assert.Equal(0, router.Interface); // the controller takes the policy's links as they come
        Assert.Equal(ServalInfo.DefaultUdpPort, router.Address.Port);
        var e = Assert.Throws<DaemonException>(() => DaemonPlan.Create(new DaemonOptions
        {
            LinkPolicies = [new LinkPolicySettings { IPv6 = false }],
            RegisterWithRouter = "[2001:db8::fe]",
        }));
        Assert.Contains("Serval:RegisterWithRouter", e.Message, StringComparison.Ordinal);
    }

    internal static DaemonOptions Options(string path) => new()
    {
        ControlSocket = path,
        Udp = [new UdpEndpoint { Address = $"127.0.0.{Random.Shared.Next(2, 250)}", Port = 0 }],
    };
}
