using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using Serval.Daemon;
using Serval.Stack;
using Serval.Wire;

namespace Serval.Cli.Tests;

/// <summary>servald configured for registration (router and host daemons in-process) and <c>servalctl router …</c>.</summary>
public sealed class RouterCommandTests
{
    private static readonly ServiceId Svc = ServiceId.FromName("cli.registered");
    private static readonly string Key = Convert.ToHexString(Enumerable.Range(1, 32).Select(i => (byte)i).ToArray());

    [Fact]
    public async Task Router_registrations_list_a_bound_service_with_host_state_and_lease()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var pair = await Pair.StartAsync(routerKey: null, hostKey: null, ct);
        await using var listener = await pair.ListenAsync(Svc, ct);

        var json = await EventuallyAsync(() =>
        {
            var r = pair.RouterCli("router", "registrations", "--json");
            return r.ExitCode == 0 && r.Json["registrations"]!.AsArray().Count == 1 ? r.Json : null;
        });
        var reg = json["registrations"]![0]!;
        Assert.Equal(ServicePrefix.Exact(Svc).ToString(), (string?)reg["prefix"]);
        Assert.Equal(pair.HostAddress.ToString(), (string?)reg["host"]);
        Assert.Equal("active", (string?)reg["state"]);
        Assert.Equal(1, (int)reg["weight"]!);
        Assert.Equal("Stream", (string?)reg["transports"]);
        var lease = (long)reg["leaseRemainingMs"]!;
        Assert.InRange(lease, 1, 3000);
        Assert.Equal(16, ((string)json["epoch"]!).Length);
        Assert.True((long)json["counters"]!["registered"]! >= 1, $"router counters: {json["counters"]}");
        Assert.Empty(json["drains"]!.AsArray());

        var table = pair.RouterCli("router", "registrations");
        Assert.True(table.ExitCode == 0, table.ToString());
        Assert.Contains("1 registrations", table.Output, StringComparison.Ordinal);
        Assert.Contains(pair.HostAddress.ToString(), table.Output, StringComparison.Ordinal);
        Assert.Contains("active", table.Output, StringComparison.Ordinal);

        // The registration installed the FORWARD rule; closing the listener withdraws both.
        Assert.Contains(pair.Router.Host.Admin.GetRules(), r => r.Prefix == ServicePrefix.Exact(Svc) && r.Target.Address == pair.HostAddress);
        await listener.DisposeAsync();
        await EventuallyAsync(() => pair.RouterCli("router", "registrations", "--json").Json["registrations"]!.AsArray().Count == 0 ? new JsonObject() : null);
    }

    [Fact]
    public async Task Drain_removes_the_forward_rule_and_undrain_restores_it()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var pair = await Pair.StartAsync(routerKey: null, hostKey: null, ct);
        await using var listener = await pair.ListenAsync(Svc, ct);
        await EventuallyAsync(() => pair.Router.Host.Admin.GetRules().Any(r => r.Prefix == ServicePrefix.Exact(Svc)) ? new JsonObject() : null);

        var drain = pair.RouterCli("router", "drain", pair.HostAddress.ToString());
        Assert.True(drain.ExitCode == 0, drain.ToString());
        Assert.Contains("ok", drain.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(pair.Router.Host.Admin.GetRules(), r => r.Prefix == ServicePrefix.Exact(Svc));
        var json = pair.RouterCli("router", "registrations", "--json").Json;
        Assert.Equal("drained", (string?)json["registrations"]![0]!["state"]);
        Assert.Equal(pair.HostAddress.ToString(), (string?)json["drains"]![0]!["host"]);

        // Refreshes keep the registration but do not bring the rule back: wait for one after the drain.
        var refreshed = (long)json["counters"]!["refreshed"]!;
        await EventuallyAsync(
            () => (long)pair.RouterCli("router", "registrations", "--json").Json["counters"]!["refreshed"]! > refreshed ? new JsonObject() : null,
            what: $"a registration refresh after the drain (refreshed was {refreshed})");
        Assert.DoesNotContain(pair.Router.Host.Admin.GetRules(), r => r.Prefix == ServicePrefix.Exact(Svc));
        Assert.Single(pair.RouterCli("router", "registrations", "--json").Json["registrations"]!.AsArray());

        var again = pair.RouterCli("router", "drain", pair.HostAddress.ToString());
        Assert.Contains("already drained", again.Output, StringComparison.Ordinal);

        var undrain = pair.RouterCli("router", "undrain", pair.HostAddress.ToString());
        Assert.True(undrain.ExitCode == 0, undrain.ToString());
        Assert.Contains(pair.Router.Host.Admin.GetRules(), r => r.Prefix == ServicePrefix.Exact(Svc) && r.Target.Address == pair.HostAddress);
        Assert.Equal("active", (string?)pair.RouterCli("router", "registrations", "--json").Json["registrations"]![0]!["state"]);

        var missing = pair.RouterCli("router", "undrain", pair.HostAddress.ToString());
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("no drain", missing.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Drain_of_one_prefix_by_address_without_port_leaves_the_others()
    {
        var ct = TestContext.Current.CancellationToken;
        var other = ServiceId.FromName("cli.other");
        await using var pair = await Pair.StartAsync(routerKey: null, hostKey: null, ct);
        await using var a = await pair.ListenAsync(Svc, ct);
        await using var b = await pair.ListenAsync(other, ct);
        await EventuallyAsync(() => pair.Router.Host.Admin.GetRules().Count(r => r.Prefix == ServicePrefix.Exact(Svc) || r.Prefix == ServicePrefix.Exact(other)) == 2 ? new JsonObject() : null);

        var ip = pair.HostAddress.WithPort(0).ToString();
        var drain = pair.RouterCli("router", "drain", ip, Svc.ToString());
        Assert.True(drain.ExitCode == 0, drain.ToString());
        Assert.DoesNotContain(pair.Router.Host.Admin.GetRules(), r => r.Prefix == ServicePrefix.Exact(Svc));
        Assert.Contains(pair.Router.Host.Admin.GetRules(), r => r.Prefix == ServicePrefix.Exact(other));
        var states = pair.RouterCli("router", "registrations", "--json").Json["registrations"]!.AsArray()
            .ToDictionary(r => (string)r!["prefix"]!, r => (string)r!["state"]!);
        Assert.Equal("drained", states[ServicePrefix.Exact(Svc).ToString()]);
        Assert.Equal("active", states[ServicePrefix.Exact(other).ToString()]);
    }

    [Fact]
    public async Task Router_commands_on_a_host_daemon_fail_with_not_a_router()
    {
        await using var fixture = new DaemonFixture();
        await fixture.InitializeAsync();
        foreach (var args in new[] { new[] { "router", "registrations" }, ["router", "registrations", "--json"], ["router", "drain", "10.0.0.2"], ["router", "undrain", "10.0.0.2"] })
        {
            var r = fixture.Run(args);
            Assert.True(r.ExitCode == 1, r.ToString());
            Assert.Contains("is not a registration router", r.Error, StringComparison.Ordinal);
            Assert.Empty(r.Output);
        }
    }

    [Theory]
    [InlineData("drain", "not-an-address", null, "malformed host address")]
    [InlineData("undrain", "10.0.0.999", null, "malformed host address")]
    [InlineData("drain", "10.0.0.2", "0xzz", "malformed serviceID")]
    public void Usage_errors_exit_2(string verb, string host, string? id, string message)
    {
        string[] args = id is null ? ["router", verb, host] : ["router", verb, host, id];
        var r = CliResult.Run([.. args, "--socket", "/nonexistent/servald.sock"]);
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains(message, r.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Router_registrations_without_a_daemon_fails_with_exit_1()
    {
        var r = CliResult.Run("router", "registrations", "--socket", "/nonexistent/servald.sock");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("cannot reach servald", r.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task With_a_shared_key_from_a_file_registrations_are_accepted_and_a_wrong_key_is_refused()
    {
        var ct = TestContext.Current.CancellationToken;
        var file = Path.Combine(Path.GetTempPath(), $"servald-key-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(file, Convert.ToBase64String(Convert.FromHexString(Key)) + "\n", ct);
        try
        {
            await using var pair = await Pair.StartAsync(routerKey: new RouterSettings { KeyFile = file }, hostKey: Key, ct);
            await using var listener = await pair.ListenAsync(Svc, ct);
            await EventuallyAsync(() => pair.RouterCli("router", "registrations", "--json").Json["registrations"]!.AsArray().Count == 1 ? new JsonObject() : null);

            await using var intruder = await StartHostAsync(pair.RouterAddress, new string('a', 64), ct);
            await using var l2 = await ServalListener.ListenAsync(new ServalListenerOptions { Host = intruder.Host, ListenEndPoint = new ServiceEndPoint(ServiceId.FromName("cli.intruder")) }, ct);
            await EventuallyAsync(() => (long)pair.RouterCli("router", "registrations", "--json").Json["counters"]!["badMac"]! > 0 ? new JsonObject() : null);
            Assert.Single(pair.RouterCli("router", "registrations", "--json").Json["registrations"]!.AsArray());
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task RegisterWithRouter_takes_the_registration_settings_such_as_the_key()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var router = await ServalDaemon.StartAsync(
            new DaemonOptions
            {
                Name = "router",
                Mode = EngineMode.ServiceRouter,
                ControlSocket = Path.Combine(Path.GetTempPath(), $"servald-router-{Guid.NewGuid():N}.sock"),
                Udp = [new UdpEndpoint { Address = FreeLoopback(), Port = 0 }],
                Router = new RouterSettings { Key = Key },
            },
            NullLoggerFactory.Instance,
            ct);
        await using var host = await ServalDaemon.StartAsync(
            new DaemonOptions
            {
                Name = "host",
                ControlSocket = Path.Combine(Path.GetTempPath(), $"servald-host-{Guid.NewGuid():N}.sock"),
                Udp = [new UdpEndpoint { Address = FreeLoopback(), Port = 0 }],
                RegisterWithRouter = router.Host.Links[0].LocalAddress.ToString(),
                Registration = new RegistrationSettings { Key = "hex:" + Key, LeaseMs = 5000 },
            },
            NullLoggerFactory.Instance,
            ct);
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = host.Host, ListenEndPoint = new ServiceEndPoint(Svc) }, ct);
        var json = await EventuallyAsync(() =>
        {
            var r = CliResult.Run("router", "registrations", "--json", "--socket", router.ControlSocket);
            return r.Json["registrations"]!.AsArray().Count == 1 ? r.Json : null;
        });
        Assert.InRange((long)json["registrations"]![0]!["leaseRemainingMs"]!, 3001, 5000);
        Assert.Equal(0, (long)json["counters"]!["unauthenticated"]!);
    }

    [Theory]
    [InlineData("00112233445566778899aabbccddeeff", 16)]
    [InlineData("hex:00112233445566778899AABBCCDDEEFF0011", 18)]
    [InlineData("AAECAwQFBgcICQoLDA0ODw==", 16)]
    [InlineData("base64:00112233445566778899aabbccddeeff", 24)]
    public void Keys_are_hex_or_base64(string text, int length) => Assert.Equal(length, ControlPlaneConfig.DecodeKey(text).Length);

    [Theory]
    [InlineData(EngineMode.Host, null, "0011", "a key has at least 16")]
    [InlineData(EngineMode.Host, null, "not a key!", "neither hex nor base64")]
    [InlineData(EngineMode.ServiceRouter, "127.0.0.1", null, "Serval:Registration is for Host mode")]
    [InlineData(EngineMode.Host, "not-an-address", null, "Serval:Registration:Routers:0")]
    public async Task Bad_registration_configuration_is_refused_at_start(EngineMode mode, string? router, string? key, string message)
    {
        var options = new DaemonOptions
        {
            Mode = mode,
            ControlSocket = Path.Combine(Path.GetTempPath(), $"servald-bad-{Guid.NewGuid():N}.sock"),
            Udp = [new UdpEndpoint { Address = "127.0.0.1", Port = 0 }],
            Registration = new RegistrationSettings { Routers = router is null ? ["127.0.0.1"] : [router], Key = key },
        };
        var e = await Assert.ThrowsAsync<DaemonException>(() => ServalDaemon.StartAsync(options, NullLoggerFactory.Instance, TestContext.Current.CancellationToken));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(options.ControlSocket));
    }

    [Fact]
    public async Task Router_settings_in_host_mode_are_refused()
    {
        var options = new DaemonOptions
        {
            ControlSocket = Path.Combine(Path.GetTempPath(), $"servald-bad-{Guid.NewGuid():N}.sock"),
            Udp = [new UdpEndpoint { Address = "127.0.0.1", Port = 0 }],
            Router = new RouterSettings(),
        };
        var e = await Assert.ThrowsAsync<DaemonException>(() => ServalDaemon.StartAsync(options, NullLoggerFactory.Instance, TestContext.Current.CancellationToken));
        Assert.Contains("ServiceRouter mode", e.Message, StringComparison.Ordinal);
    }

    private static async Task<JsonObject> EventuallyAsync(Func<JsonObject?> probe, double seconds = 10, string what = "the router's state to match") =>
        (await Eventually.UntilAsync(probe, r => r is not null, what, TimeSpan.FromSeconds(seconds), TimeSpan.FromMilliseconds(50), TestContext.Current.CancellationToken))!;

    private static string FreeLoopback() => $"127.0.{Random.Shared.Next(1, 250)}.{Random.Shared.Next(2, 250)}";

    private static Task<ServalDaemon> StartHostAsync(LinkAddress router, string? key, CancellationToken ct) =>
        ServalDaemon.StartAsync(
            new DaemonOptions
            {
                Name = "host",
                ControlSocket = Path.Combine(Path.GetTempPath(), $"servald-host-{Guid.NewGuid():N}.sock"),
                Udp = [new UdpEndpoint { Address = FreeLoopback(), Port = 0 }],
                Registration = new RegistrationSettings { Routers = [router.ToString()], Key = key },
            },
            NullLoggerFactory.Instance,
            ct);

    /// <summary>A router daemon and a host daemon registering with it, both in-process on loopback UDP.</summary>
    private sealed class Pair : IAsyncDisposable
    {
        private Pair(ServalDaemon router, ServalDaemon host)
        {
            Router = router;
            Host = host;
        }

        public ServalDaemon Router { get; }

        public ServalDaemon Host { get; }

        public LinkAddress RouterAddress => Router.Host.Links[0].LocalAddress;

        public LinkAddress HostAddress => Host.Host.Links[0].LocalAddress;

        public static async Task<Pair> StartAsync(RouterSettings? routerKey, string? hostKey, CancellationToken ct)
        {
            var router = await ServalDaemon.StartAsync(
                new DaemonOptions
                {
                    Name = "router",
                    Mode = EngineMode.ServiceRouter,
                    ControlSocket = Path.Combine(Path.GetTempPath(), $"servald-router-{Guid.NewGuid():N}.sock"),
                    Udp = [new UdpEndpoint { Address = FreeLoopback(), Port = 0 }],
                    Router = routerKey,
                },
                NullLoggerFactory.Instance,
                ct);
            try
            {
                var host = await StartHostAsync(router.Host.Links[0].LocalAddress, hostKey, ct);
                return new Pair(router, host);
            }
            catch
            {
                await router.DisposeAsync();
                throw;
            }
        }

        public CliResult RouterCli(params string[] args) => CliResult.Run([.. args, "--socket", Router.ControlSocket]);

        public async Task<ServalListener> ListenAsync(ServiceId service, CancellationToken ct) =>
            await ServalListener.ListenAsync(new ServalListenerOptions { Host = Host.Host, ListenEndPoint = new ServiceEndPoint(service) }, ct);

        public async ValueTask DisposeAsync()
        {
            await Host.DisposeAsync();
            await Router.DisposeAsync();
        }
    }
}
