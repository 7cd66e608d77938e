using System.Diagnostics;
using System.Net;
using System.Net.Http;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using Serval.Links;
using Serval.Stack;
using Serval.Stack.Services;
using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.AspNetCore.Tests;

/// <summary>HttpClient over Serval fails fast and retries elsewhere instead of hanging (docs/aspnetcore.md).</summary>
public sealed class HttpFailureTests
{
    private static IPAddress NextAddress() => AspNetTestNet.NextAddress();

    private static CancellationToken Timeout(int seconds) => AspNetTestNet.Timeout(seconds);

    private static async Task<WebApplication> StartAppAsync(ServalHost host, ServiceId service, CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseServal(host);
        builder.WebHost.ConfigureKestrel(o => o.ListenServal(new ServiceEndPoint(service), l => l.Protocols = HttpProtocols.Http1));
        var app = builder.Build();
        app.MapGet("/hello", () => $"hello from {host.Name}");
        await app.StartAsync(ct);
        return app;
    }

    [Fact]
    public async Task A_request_for_a_service_no_router_knows_fails_at_once_as_a_name_resolution_error()
    {
        var ct = Timeout(60);
        await using var router = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "http-router",
            Links = [new UdpLink(NextAddress())],
            Engine = EngineOptions.Default with { Mode = EngineMode.ServiceRouter },
        }, ct);
        await using var client = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "http-client",
            Links = [new UdpLink(NextAddress())],
            DefaultRouter = router.Links[0].LocalAddress,
        }, ct);
        using var http = new HttpClient(ServalHttp.CreateHandler(client)) { Timeout = TimeSpan.FromSeconds(100) };
        var watch = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<HttpRequestException>(() => http.GetStringAsync("http://no.such.service/hello", ct));
        var serval = Assert.Single(Chain(e).OfType<ServalException>());
        Assert.Equal(ServalError.ServiceNotFound, serval.Error);
        Assert.Contains(Chain(e).OfType<HttpRequestException>(), x => x.HttpRequestError == HttpRequestError.NameResolutionError);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), $"took {watch.Elapsed}: no answer, the connect waited for its SYN retransmissions");
    }

    [Fact]
    public async Task A_request_on_a_pooled_connection_to_a_dead_replica_is_retried_on_another_one()
    {
        var ct = Timeout(90);
        var service = ServiceId.FromName("test.failover");
        await using var a = await ServalHost.StartAsync(new ServalHostOptions { Name = "replica-a", Links = [new UdpLink(NextAddress())] }, ct);
        await using var b = await ServalHost.StartAsync(new ServalHostOptions { Name = "replica-b", Links = [new UdpLink(NextAddress())] }, ct);
        await using var client = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "failover-client",
            Links = [new UdpLink(NextAddress())],
            Stream = StreamOptions.Default with { UserTimeout = TimeSpan.FromSeconds(2) },
        }, ct);
        var toA = client.Admin.ForwardTo(a.Links[0].LocalAddress);
        await client.Admin.AddRuleAsync(ServicePrefix.Exact(service), toA, priority: 2, cancellationToken: ct);
        await client.Admin.AddRuleAsync(ServicePrefix.Exact(service), client.Admin.ForwardTo(b.Links[0].LocalAddress), priority: 1, cancellationToken: ct);
        await using var appA = await StartAppAsync(a, service, ct);
        await using var appB = await StartAppAsync(b, service, ct);
        using var http = new HttpClient(ServalHttp.CreateFailoverHandler(client)) { Timeout = TimeSpan.FromSeconds(100) };
        Assert.Equal("hello from replica-a", await http.GetStringAsync("http://test.failover/hello", ct));

        // Replica A dies without a word (its socket is gone, like a process killed with SIGKILL), and its rule goes
        // away as a router's registration lease would; the pooled connection to it is still open at the client.
        a.Links[0].Dispose();
        await client.Admin.RemoveRuleAsync(ServicePrefix.Exact(service), toA, ct);

        var watch = Stopwatch.StartNew();
        Assert.Equal("hello from replica-b", await http.GetStringAsync("http://test.failover/hello", ct));
        Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
        Assert.True(client.Counters.UserTimeouts >= 1, $"UserTimeouts {client.Counters.UserTimeouts}");
    }

    private static IEnumerable<Exception> Chain(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            yield return x;
        }
    }
}
