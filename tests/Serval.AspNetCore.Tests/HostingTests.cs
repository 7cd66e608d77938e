using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Serval.Links;
using Serval.Wire;

namespace Serval.AspNetCore.Tests;

/// <summary>
/// Serval in an application's dependency injection: AddServal from configuration (validated at start, the app's
/// logging and metrics), Kestrel on the host from DI, IHttpClientFactory clients by service name, the health check,
/// the Serval connection feature on HttpContext, and the connect/accept spans.
/// </summary>
public sealed class HostingTests
{
    private static CancellationToken Timeout(int seconds) => AspNetTestNet.Timeout(seconds);

    /// <summary>Log lines of every category, as the application's logging sees them.</summary>
    private sealed class CapturingLoggerProvider : ILoggerProvider
    {
        public ConcurrentQueue<(string Category, LogLevel Level, string Message)> Lines { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(CapturingLoggerProvider owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                owner.Lines.Enqueue((category, logLevel, formatter(state, exception)));
        }
    }

    /// <summary>A web app whose Serval host comes from configuration (section Serval) through AddServal and UseServal().</summary>
    private static WebApplicationBuilder ConfiguredBuilder(IDictionary<string, string?> settings, CapturingLoggerProvider? logs = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (logs is not null)
        {
            builder.Logging.AddProvider(logs);
            builder.Logging.SetMinimumLevel(LogLevel.Debug);
        }

        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddServal();
        builder.WebHost.UseServal();
        return builder;
    }

    [Fact]
    public async Task AddServal_binds_configuration_logs_through_the_app_and_serves_with_the_connection_feature()
    {
        var ct = Timeout(60);
        var service = ServiceId.FromName("test.di.web");
        var serverAddress = AspNetTestNet.NextAddress();
        var logs = new CapturingLoggerProvider();
        var builder = ConfiguredBuilder(
            new Dictionary<string, string?>
            {
                ["Serval:Name"] = "di-server",
                ["Serval:Udp:0:Address"] = serverAddress.ToString(),
                ["Serval:MonitorInterfaces"] = "false",
            },
            logs);
        builder.WebHost.ConfigureKestrel(o => o.ListenServal(new ServiceEndPoint(service)));
        await using var app = builder.Build();
        app.MapGet("/who", (HttpContext c) =>
        {
            var serval = c.Features.Get<IServalConnectionFeature>()!;
            return $"{serval.LocalEndPoint.Service} {serval.ListenEndPoint.Service} {serval.PeerAddress} {serval.LocalFlow.IsNone} {serval.PeerFlow.IsNone} "
                + $"{c.Connection.RemoteIpAddress} {c.Connection.RemotePort} {c.Connection.LocalIpAddress?.ToString() ?? "none"}";
        });

        // The app's meter factory creates the host's meter.
        var meterFactory = app.Services.GetRequiredService<IMeterFactory>();
        var fromFactory = false;
        using var meters = new MeterListener
        {
            InstrumentPublished = (instrument, _) =>
            {
                if (instrument.Meter.Name == ServalHost.MeterName && ReferenceEquals(instrument.Meter.Scope, meterFactory))
                {
                    fromFactory = true;
                }
            },
        };
        meters.Start();

        await app.StartAsync(ct);
        var host = app.Services.GetRequiredService<ServalHost>();
        Assert.Equal("di-server", host.Name);
        Assert.Equal(serverAddress, host.Links[0].LocalAddress.ToIPAddress());
        Assert.Same(host, await app.Services.GetRequiredService<ServalHostAccessor>().GetHostAsync(ct));
        Assert.True(fromFactory, "the host's meter was not created by the application's IMeterFactory");
        Assert.Contains(logs.Lines, l => l.Category == "Serval.Host" && l.Level == LogLevel.Information && l.Message.Contains("Serval host di-server started", StringComparison.Ordinal));

        await using (var client = await ServalHost.StartAsync(new ServalHostOptions { Name = "di-client", Links = [new UdpLink(AspNetTestNet.NextAddress())], MonitorInterfaces = false }, ct))
        {
            await client.Admin.AddRuleAsync(ServicePrefix.Exact(service), client.Admin.ForwardTo(host.Links[0].LocalAddress), cancellationToken: ct);
            using var http = new HttpClient(ServalHttp.CreateHandler(client));
            var parts = (await http.GetStringAsync("http://test.di.web/who", ct)).Split(' ');
            var clientLink = client.Links[0].LocalAddress;
            Assert.Equal(service.ToString(), parts[0]);
            Assert.Equal(service.ToString(), parts[1]);
            Assert.Equal(clientLink.ToString(), parts[2]);
            Assert.Equal("False", parts[3]);
            Assert.Equal("False", parts[4]);
            Assert.Equal(clientLink.ToIPAddress().ToString(), parts[5]); // RemoteIpAddress: the client's link address
            Assert.Equal(clientLink.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), parts[6]);
            Assert.Equal("none", parts[7]); // the local end is a service, not an IP end point
        }

        // Stopping the app stops the host after Kestrel: the service is unbound, the host stopped.
        await app.StopAsync(ct);
        Assert.True(host.IsStopped);
        Assert.Contains(logs.Lines, l => l.Message.Contains("Serval host di-server stopped", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("Serval:Udp:0:Address", "not-an-address", "Serval:Udp:0:Address 'not-an-address' is not an IP address")]
    [InlineData("Serval:RegisterWithRouter", "router?", "Serval:RegisterWithRouter 'router?' is not an address[:port]")]
    [InlineData("Serval:Name", " ", "Serval:Name is empty")]
    public async Task Invalid_configuration_fails_the_start_with_the_key(string key, string value, string message)
    {
        var ct = Timeout(30);
        var builder = ConfiguredBuilder(new Dictionary<string, string?> { ["Serval:Udp:0:Address"] = AspNetTestNet.NextAddress().ToString(), [key] = value });
        await using var app = builder.Build();
        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync(ct));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    /// <summary>A typed client for the test service.</summary>
    public sealed class ShopClient(HttpClient http)
    {
        public Task<string> HelloAsync(CancellationToken cancellationToken) => http.GetStringAsync("/hello", cancellationToken);
    }

    [Fact]
    public async Task Named_and_typed_HttpClientFactory_clients_call_services_by_name()
    {
        var ct = Timeout(60);
        var service = ServiceId.FromName("test.di.shop");
        await using var server = await ServalHost.StartAsync(new ServalHostOptions { Name = "shop-server", Links = [new UdpLink(AspNetTestNet.NextAddress())], MonitorInterfaces = false }, ct);
        var web = WebApplication.CreateSlimBuilder();
        web.Logging.ClearProviders();
        web.WebHost.UseServal(server);
        web.WebHost.ConfigureKestrel(o => o.ListenServal(new ServiceEndPoint(service)));
        await using var serverApp = web.Build();
        serverApp.MapGet("/hello", () => "hello shop");
        await serverApp.StartAsync(ct);

        // The calling application: its Serval host resolves everything through the server (a default FORWARD rule).
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Serval:Name"] = "shop-caller",
            ["Serval:Udp:0:Address"] = AspNetTestNet.NextAddress().ToString(),
            ["Serval:DefaultRouter"] = server.Links[0].LocalAddress.ToString(),
            ["Serval:MonitorInterfaces"] = "false",
        });
        builder.WebHost.UseUrls("http://127.0.0.1:0"); // The caller serves nothing: not Kestrel's default port 5000.
        builder.Services.AddServal();
        builder.Services.AddHttpClient("shop", c => c.BaseAddress = new Uri("http://test.di.shop/")).UseServal(retries: 1);
        builder.Services.AddHttpClient<ShopClient>(c => c.BaseAddress = new Uri("http://test.di.shop/")).UseServal();
        await using var app = builder.Build();
        await app.StartAsync(ct);

        var named = app.Services.GetRequiredService<IHttpClientFactory>().CreateClient("shop");
        Assert.Equal("hello shop", await named.GetStringAsync("hello", ct));
        Assert.Equal("hello shop", await app.Services.GetRequiredService<ShopClient>().HelloAsync(ct));
        await app.StopAsync(ct);
        await serverApp.StopAsync(ct);
    }

    [Fact]
    public async Task The_health_check_reports_links_registrations_and_listeners()
    {
        var ct = Timeout(60);
        var service = ServiceId.FromName("test.di.health");
        var builder = ConfiguredBuilder(new Dictionary<string, string?>
        {
            ["Serval:Name"] = "health",
            ["Serval:Udp:0:Address"] = AspNetTestNet.NextAddress().ToString(),
            ["Serval:MonitorInterfaces"] = "false",
        });
        builder.Services.AddHealthChecks().AddServal();
        builder.WebHost.ConfigureKestrel(o => o.ListenServal(new ServiceEndPoint(service)));
        await using var app = builder.Build();
        await app.StartAsync(ct);
        var health = app.Services.GetRequiredService<HealthCheckService>();

        var report = await health.CheckHealthAsync(ct);
        var entry = report.Entries["serval"];
        Assert.Equal(HealthStatus.Healthy, entry.Status);
        Assert.Equal(1, entry.Data["links_up"]);
        Assert.Contains(new ServiceEndPoint(service).ToString(), (string[])entry.Data["listeners"]);

        // The only link goes down: unhealthy, and it says why.
        var host = app.Services.GetRequiredService<ServalHost>();
        await host.Admin.SetLinkUpAsync(0, false, ct);
        entry = (await health.CheckHealthAsync(ct)).Entries["serval"];
        Assert.Equal(HealthStatus.Unhealthy, entry.Status);
        Assert.Contains("no link is up", entry.Description, StringComparison.Ordinal);
        await host.Admin.SetLinkUpAsync(0, true, ct);
        Assert.Equal(HealthStatus.Healthy, (await health.CheckHealthAsync(ct)).Entries["serval"].Status);

        // Once the app has stopped, the host has too.
        await app.StopAsync(ct);
        Assert.Equal(HealthStatus.Unhealthy, (await health.CheckHealthAsync(ct)).Entries["serval"].Status);
    }

    [Fact]
    public async Task A_registration_no_router_acknowledges_degrades_the_health_check()
    {
        var ct = Timeout(60);
        var nobody = AspNetTestNet.NextAddress(); // nothing listens there: the registration stays unacknowledged
        var builder = ConfiguredBuilder(new Dictionary<string, string?>
        {
            ["Serval:Name"] = "health-reg",
            ["Serval:Udp:0:Address"] = AspNetTestNet.NextAddress().ToString(),
            ["Serval:RegisterWithRouter"] = nobody + ":54325",
            ["Serval:MonitorInterfaces"] = "false",
        });
        builder.Services.AddHealthChecks().AddServal();
        builder.WebHost.ConfigureKestrel(o => o.ListenServal(new ServiceEndPoint(ServiceId.FromName("test.di.unregistered"))));
        await using var app = builder.Build();
        await app.StartAsync(ct);
        var entry = (await app.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync(ct)).Entries["serval"];
        Assert.Equal(HealthStatus.Degraded, entry.Status);
        Assert.Contains("not acknowledged by any router", entry.Description, StringComparison.Ordinal);
        Assert.Equal(1, entry.Data["registrations"]);
        await app.StopAsync(ct);
    }

    [Fact]
    public async Task HttpClient_connects_inside_a_serval_connect_span_that_names_the_service()
    {
        var ct = Timeout(60);
        var service = ServiceId.FromName("test.di.traced");
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == ServalHost.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        await using var server = await ServalHost.StartAsync(new ServalHostOptions { Name = "traced-server", Links = [new UdpLink(AspNetTestNet.NextAddress())], MonitorInterfaces = false }, ct);
        await using var client = await ServalHost.StartAsync(new ServalHostOptions { Name = "traced-client", Links = [new UdpLink(AspNetTestNet.NextAddress())], MonitorInterfaces = false }, ct);
        await client.Admin.AddRuleAsync(ServicePrefix.Exact(service), client.Admin.ForwardTo(server.Links[0].LocalAddress), cancellationToken: ct);
        var web = WebApplication.CreateSlimBuilder();
        web.Logging.ClearProviders();
        web.WebHost.UseServal(server);
        web.WebHost.ConfigureKestrel(o => o.ListenServal(new ServiceEndPoint(service)));
        await using var app = web.Build();
        app.MapGet("/", () => "traced");
        await app.StartAsync(ct);

        using var http = new HttpClient(ServalHttp.CreateHandler(client));
        using (var parent = new Activity("request").Start())
        {
            Assert.Equal("traced", await http.GetStringAsync("http://test.di.traced/", ct));
            var connect = Assert.Single(spans, s => s.OperationName == "serval.connect" && (string?)s.GetTagItem("serval.host") == "traced-client");
            Assert.Equal(parent.TraceId, connect.TraceId);
            Assert.Equal(ActivityKind.Client, connect.Kind);
            Assert.Equal("test.di.traced", connect.GetTagItem("serval.service.name"));
            Assert.Equal(service.ToString(), connect.GetTagItem("serval.service.id"));
            Assert.Equal("connected", connect.GetTagItem("serval.result"));
            Assert.False(string.IsNullOrEmpty((string?)connect.GetTagItem("serval.flow.id")));
        }

        var accept = Assert.Single(spans, s => s.OperationName == "serval.accept" && (string?)s.GetTagItem("serval.host") == "traced-server");
        Assert.Equal(ActivityKind.Server, accept.Kind);
        Assert.Equal(service.ToString(), accept.GetTagItem("serval.service.id"));
        Assert.Equal(client.Links[0].LocalAddress.ToString(), accept.GetTagItem("serval.peer.address"));
        await app.StopAsync(ct);
    }
}
