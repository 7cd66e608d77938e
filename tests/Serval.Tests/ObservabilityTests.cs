using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Serval.Resolution;
using Serval.Stack;
using Serval.Stack.ControlPlane;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// What an operator and an application's tracing see (docs/observability.md): the spans of the "Serval" activity
/// source (connect, resolve, accept, migrate, with their tags), and the lifecycle log lines (links, registrations,
/// drains, migrations).
/// </summary>
public sealed class ObservabilityTests
{
    /// <summary>Every log line, as the host's logger factory sees it.</summary>
    private sealed class CapturingLoggerProvider : ILoggerProvider
    {
        public ConcurrentQueue<(LogLevel Level, int EventId, string Message)> Lines { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this);

        public void Dispose()
        {
        }

        public bool Has(LogLevel level, string text) => Lines.Any(l => l.Level == level && l.Message.Contains(text, StringComparison.Ordinal));

        public string Dump() => string.Join("\n", Lines.Select(l => $"{l.Level} {l.EventId} {l.Message}"));

        private sealed class Logger(CapturingLoggerProvider owner) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                owner.Lines.Enqueue((logLevel, eventId.Id, formatter(state, exception)));
        }
    }

    /// <summary>Records the spans of the Serval source that belong to hosts whose names start with <paramref name="prefix"/>.</summary>
    private static ActivityListener Listen(ConcurrentQueue<Activity> spans, string prefix)
    {
        var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == ServalHost.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                if (a.GetTagItem("serval.host") is string host && host.StartsWith(prefix, StringComparison.Ordinal))
                {
                    spans.Enqueue(a);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        return listener;
    }

    [Fact]
    public async Task Connect_accept_and_migrate_spans_carry_the_service_the_flow_and_the_result()
    {
        var ct = TestNet.Timeout(60);
        var prefix = "span-" + Guid.NewGuid().ToString("N")[..6];
        var spans = new ConcurrentQueue<Activity>();
        using var listener = Listen(spans, prefix);
        var svc = ServiceId.FromName("test.spans");
        await using var server = await TestNet.UdpHostAsync(prefix + "-server");
        await using var client = await ServalHost.StartAsync(new ServalHostOptions { Name = prefix + "-client", Links = [TestNet.UdpLink(), TestNet.UdpLink()], Engine = TestNet.FastEngine }, ct);
        await using var l = await ServalListener.ListenAsync(new ServalListenerOptions { Host = server, ListenEndPoint = new ServiceEndPoint(svc) }, ct);

        ServalConnection connection;
        using (var parent = new Activity("app-request").Start())
        {
            connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = svc, AdvisoryAddress = server.Address() }, ct);
            var connect = Assert.Single(spans, s => s.OperationName == "serval.connect");
            Assert.Equal(parent.SpanId, connect.ParentSpanId);
            Assert.Equal(ActivityKind.Client, connect.Kind);
            Assert.Equal(svc.ToString(), connect.GetTagItem("serval.service.id"));
            Assert.Equal("connected", connect.GetTagItem("serval.result"));
            Assert.Equal(ActivityStatusCode.Ok, connect.Status);
            Assert.Equal(server.Address().ToString(), connect.GetTagItem("serval.peer.address"));
        }

        await using (connection)
        {
            await using var accepted = await l.AcceptConnectionAsync(ct);
            var flow = (await connection.GetFlowInfoAsync(ct))!;
            var accept = Assert.Single(spans, s => s.OperationName == "serval.accept");
            Assert.Equal(ActivityKind.Server, accept.Kind);
            Assert.Equal(flow.PeerFlow.ToString(), accept.GetTagItem("serval.flow.id"));
            Assert.Equal(flow.LocalFlow.ToString(), accept.GetTagItem("serval.peer.flow.id"));
            Assert.Equal(client.Address().ToString(), accept.GetTagItem("serval.peer.address"));

            await connection.MigrateAsync(1, ct);
            var migrate = Assert.Single(spans, s => s.OperationName == "serval.migrate");
            Assert.Equal(flow.LocalFlow.ToString(), migrate.GetTagItem("serval.flow.id"));
            Assert.Equal(1, migrate.GetTagItem("serval.link"));
            Assert.Equal("started", migrate.GetTagItem("serval.result"));

            // A failed migration is a span with the error.
            await Assert.ThrowsAsync<ServalException>(async () => await connection.MigrateAsync(7, ct));
            var failed = Assert.Single(spans, s => s.OperationName == "serval.migrate" && s.Status == ActivityStatusCode.Error);
            Assert.Equal("NetworkDown", failed.GetTagItem("error.type"));
        }

        // A connect that no rule resolves fails at once: the span says why.
        await Assert.ThrowsAsync<ServalException>(async () => await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = ServiceId.FromName("test.spans.nowhere") }, ct));
        var noRoute = Assert.Single(spans, s => s.OperationName == "serval.connect" && s.Status == ActivityStatusCode.Error);
        Assert.Equal("NoRoute", noRoute.GetTagItem("error.type"));
    }

    [Fact]
    public async Task An_on_demand_resolution_is_a_child_span_of_the_connect_that_needed_it()
    {
        var ct = TestNet.Timeout(60);
        var prefix = "resolve-" + Guid.NewGuid().ToString("N")[..6];
        var spans = new ConcurrentQueue<Activity>();
        using var listener = Listen(spans, prefix);
        await using var server = await TestNet.UdpHostAsync(prefix + "-server");
        var svc = ServiceId.FromName("test.spans.resolved");
        var path = Path.Combine(Directory.CreateTempSubdirectory("serval-spans-").FullName, "services");
        await File.WriteAllTextAsync(path, $"test.spans.resolved {server.Address()}\n", ct);
        using var file = new StaticFileResolver(path);
        await using var client = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = prefix + "-client",
            Links = [TestNet.UdpLink()],
            Engine = TestNet.FastEngine,
            Resolver = new ServalResolverOptions { Sources = [file] },
        }, ct);
        await using var l = await StreamTests.EchoServerAsync(server, svc, ct);
        await using (await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = svc }, ct))
        {
        }

        Assert.True(await TestNet.EventuallyAsync(() => Task.FromResult(spans.Any(s => s.OperationName == "serval.resolve"))), "no resolve span");
        var resolve = Assert.Single(spans, s => s.OperationName == "serval.resolve");
        var connect = Assert.Single(spans, s => s.OperationName == "serval.connect");
        Assert.Equal(connect.SpanId, resolve.ParentSpanId);
        Assert.Equal(connect.TraceId, resolve.TraceId);
        Assert.Equal(svc.ToString(), resolve.GetTagItem("serval.service.id"));
        Assert.Equal("found", resolve.GetTagItem("serval.result"));
        Assert.Equal(1, resolve.GetTagItem("serval.resolve.targets"));
    }

    [Fact]
    public async Task The_router_logs_registrations_added_refreshed_withdrawn_expired_and_drains()
    {
        var ct = TestNet.Timeout(60);
        var logs = new CapturingLoggerProvider();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Debug));
        await using var router = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "log-router",
            Links = [TestNet.UdpLink()],
            Engine = TestNet.FastEngine with { Mode = EngineMode.ServiceRouter },
            RouterControl = RouterControllerOptions.Default,
            LoggerFactory = loggers,
        }, ct);
        await using var replica = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "log-replica",
            Links = [TestNet.UdpLink()],
            Engine = TestNet.FastEngine,
            RegisterWithRouter = router.Address(),
            Registration = HostControllerOptions.Default with { RefreshInterval = TimeSpan.FromMilliseconds(200), Lease = TimeSpan.FromSeconds(1) },
            MonitorInterfaces = false,
            LoggerFactory = loggers,
        }, ct);
        var replicaAddress = replica.Address().ToString();
        var short8 = ServiceId.FromName("test.logs.a").ToString()[..8];

        // Added, then refreshed (debug).
        var a = await StreamTests.EchoServerAsync(replica, ServiceId.FromName("test.logs.a"), ct);
        Assert.True(await TestNet.EventuallyAsync(() => Task.FromResult(logs.Has(LogLevel.Debug, $"registration of {short8}… by {replicaAddress} refreshed"))), logs.Dump());
        Assert.True(logs.Has(LogLevel.Information, $"Serval router log-router: registration of {short8}… by {replicaAddress} added (weight 1)"), logs.Dump());

        // A drain set at the router, then lifted.
        await router.SetRouterDrainingAsync(replica.Address(), null, true, ct);
        Assert.True(logs.Has(LogLevel.Information, $"drain of all services at {replicaAddress} started (by the router)"), logs.Dump());
        await router.SetRouterDrainingAsync(replica.Address(), null, false, ct);
        Assert.True(logs.Has(LogLevel.Information, $"drain of all services at {replicaAddress} finished (by the router)"), logs.Dump());

        // Withdrawn when the listener closes.
        await a.DisposeAsync();
        Assert.True(await TestNet.EventuallyAsync(() => Task.FromResult(logs.Has(LogLevel.Information, $"registration of {short8}… by {replicaAddress} withdrawn"))), logs.Dump());

        // Expired when the replica's link goes down and its refreshes stop (logged by the replica too: link down).
        var bShort = ServiceId.FromName("test.logs.b").ToString()[..8];
        await using var b = await StreamTests.EchoServerAsync(replica, ServiceId.FromName("test.logs.b"), ct);
        Assert.True(await TestNet.EventuallyAsync(() => Task.FromResult(logs.Has(LogLevel.Information, $"registration of {bShort}… by {replicaAddress} added"))), logs.Dump());
        await replica.SetLinkUpAsync(0, false, ct);
        Assert.True(await TestNet.EventuallyAsync(() => Task.FromResult(logs.Has(LogLevel.Warning, "Serval host log-replica: interface 1 (") && logs.Has(LogLevel.Warning, "is down"))), logs.Dump());
        Assert.True(await TestNet.EventuallyAsync(() => Task.FromResult(logs.Has(LogLevel.Warning, $"registration of {bShort}… by {replicaAddress} expired")), 15), logs.Dump());
        await replica.SetLinkUpAsync(0, true, ct);
        Assert.True(await TestNet.EventuallyAsync(() => Task.FromResult(logs.Has(LogLevel.Information, "Serval host log-replica: interface 1 (") && logs.Lines.Any(l => l.Message.EndsWith("is up", StringComparison.Ordinal)))), logs.Dump());
    }

    [Fact]
    public async Task Migrations_are_logged_when_they_start_and_complete_with_the_service_name_when_known()
    {
        var ct = TestNet.Timeout(60);
        var logs = new CapturingLoggerProvider();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Information));
        var svc = ServiceId.FromName("test.logs.migrate");
        await using var server = await TestNet.UdpHostAsync("mig-server");
        await using var client = await ServalHost.StartAsync(new ServalHostOptions { Name = "mig-client", Links = [TestNet.UdpLink(), TestNet.UdpLink()], Engine = TestNet.FastEngine, LoggerFactory = loggers }, ct);
        await using var l = await ServalListener.ListenAsync(new ServalListenerOptions { Host = server, ListenEndPoint = new ServiceEndPoint(svc) }, ct);

        // Connected by name: the host knows the name from then on.
        await using var connection = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = svc, AdvisoryAddress = server.Address(), ServiceName = "test.logs.migrate" }, ct);
        await using var accepted = await l.AcceptConnectionAsync(ct);
        var flow = (await connection.GetFlowInfoAsync(ct))!;
        await connection.MigrateAsync(1, ct);
        var label = $"test.logs.migrate ({svc.ToString()[..8]}…)";
        Assert.True(logs.Has(LogLevel.Information, $"Serval host mig-client: migration of flow {flow.LocalFlow} ({label}, peer {server.Address()}) away from interface 1 started"), logs.Dump());
        Assert.True(await TestNet.EventuallyAsync(() => Task.FromResult(logs.Has(LogLevel.Information, $"Serval host mig-client: migration of flow {flow.LocalFlow} ({label}) completed: now on interface 2"))), logs.Dump());
    }

    [Fact]
    public void Log_labels_show_a_service_by_name_where_known_and_by_short_id_otherwise()
    {
        var labels = new Runtime.ServiceLabels();
        var id = ServiceId.FromName("shop.web");
        Assert.Equal(id.ToString()[..8] + "…", labels.Of(id));
        labels.Remember(id, "shop.other"); // not its name: ignored
        Assert.Equal(id.ToString()[..8] + "…", labels.Of(id));
        labels.Remember(id, "shop.web");
        Assert.Equal($"shop.web ({id.ToString()[..8]}…)", labels.Of(ServicePrefix.Exact(id)));
        Assert.Equal("all services", labels.Of((ServicePrefix?)null));
        Assert.StartsWith("serval.router (control plane)", labels.Of(ControlProtocol.RouterServiceId), StringComparison.Ordinal);
    }
}
