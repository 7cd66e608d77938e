using System.Net;
using System.Net.Http;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Serval.Links;
using Serval.Wire;

namespace Serval.AspNetCore.Tests;

/// <summary>
/// ASP.NET Core over Serval on loopback UDP: Kestrel serves a ServiceEndPoint, HttpClient connects to the service by
/// name; HTTP/1.1 and HTTP/2, bodies checked with SHA-256.
/// </summary>
public sealed class KestrelOverServalTests
{
    private static IPAddress NextAddress() => AspNetTestNet.NextAddress();

    private static ValueTask<ServalHost> HostAsync(string name) =>
        ServalHost.StartAsync(new ServalHostOptions { Name = name, Links = [new UdpLink(NextAddress())] });

    private static CancellationToken Timeout(int seconds) => AspNetTestNet.Timeout(seconds);

    /// <summary>A web app on <paramref name="host"/> serving <paramref name="service"/> (and nothing else).</summary>
    private static async Task<WebApplication> StartAppAsync(ServalHost host, ServiceId service, HttpProtocols protocols, CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseServal(host);
        builder.WebHost.ConfigureKestrel(o => o.ListenServal(new ServiceEndPoint(service), l => l.Protocols = protocols));
        var app = builder.Build();
        app.MapGet("/hello", (HttpContext c) => $"hello from {host.Name} over {c.Request.Protocol} to {c.Connection.LocalIpAddress?.ToString() ?? "a service"}");
        app.MapPost("/sha256", async (HttpRequest request) =>
        {
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[65536];
            long total = 0;
            int n;
            while ((n = await request.Body.ReadAsync(buffer, request.HttpContext.RequestAborted)) > 0)
            {
                sha.AppendData(buffer, 0, n);
                total += n;
            }

            return $"{total} {Convert.ToHexString(sha.GetHashAndReset())}";
        });
        app.MapGet("/bytes/{count:int}", async (int count, HttpResponse response) =>
        {
            var data = new byte[count];
            new Random(count).NextBytes(data);
            response.ContentLength = count;
            await response.Body.WriteAsync(data, response.HttpContext.RequestAborted);
        });
        await app.StartAsync(ct);
        return app;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task HttpClient_reaches_a_kestrel_app_by_service_name(int httpMajor)
    {
        var ct = Timeout(60);
        var service = ServiceId.FromName("test.web");
        await using var server = await HostAsync("web-server");
        await using var client = await HostAsync("web-client");
        await client.Admin.AddRuleAsync(ServicePrefix.Exact(service), client.Admin.ForwardTo(server.Links[0].LocalAddress), cancellationToken: ct);
        await using var app = await StartAppAsync(server, service, httpMajor == 2 ? HttpProtocols.Http2 : HttpProtocols.Http1, ct);
        using var http = new HttpClient(ServalHttp.CreateHandler(client))
        {
            DefaultRequestVersion = new Version(httpMajor, 0),
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };

        // By name only: the URI host is the service.
        var hello = await http.GetStringAsync("http://test.web/hello", ct);
        Assert.StartsWith($"hello from web-server over HTTP/{httpMajor}", hello, StringComparison.Ordinal);

        // A 3 MiB request body and a 3 MiB response body, several requests on pooled connections.
        for (var i = 0; i < 3; i++)
        {
            var body = new byte[3 * 1024 * 1024];
            new Random(i).NextBytes(body);
            using var post = await http.PostAsync("http://test.web/sha256", new ByteArrayContent(body), ct);
            post.EnsureSuccessStatusCode();
            Assert.Equal($"{body.Length} {Convert.ToHexString(SHA256.HashData(body))}", await post.Content.ReadAsStringAsync(ct));
        }

        var expected = new byte[3 * 1024 * 1024];
        new Random(expected.Length).NextBytes(expected);
        var got = await http.GetByteArrayAsync($"http://test.web/bytes/{expected.Length}", ct);
        Assert.Equal(SHA256.HashData(expected), SHA256.HashData(got));
    }

    [Fact]
    public async Task Https_over_serval_with_http2_negotiated_by_alpn()
    {
        var ct = Timeout(60);
        var service = ServiceId.FromName("test.web.tls");
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=test.web.tls", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("test.web.tls");
        request.CertificateExtensions.Add(san.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));

        await using var server = await HostAsync("web-server");
        await using var client = await HostAsync("web-client");
        await client.Admin.AddRuleAsync(ServicePrefix.Exact(service), client.Admin.ForwardTo(server.Links[0].LocalAddress), cancellationToken: ct);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseServal(server);
        builder.WebHost.ConfigureKestrel(o => o.ListenServal(new ServiceEndPoint(service), l =>
        {
            l.Protocols = HttpProtocols.Http1AndHttp2;
            l.UseHttps(certificate);
        }));
        await using var app = builder.Build();
        app.MapPost("/sha256", async (HttpRequest r) =>
        {
            var body = new MemoryStream();
            await r.Body.CopyToAsync(body, r.HttpContext.RequestAborted);
            return $"{r.Protocol} {r.IsHttps} {Convert.ToHexString(SHA256.HashData(body.ToArray()))}";
        });
        await app.StartAsync(ct);

        var handler = ServalHttp.CreateHandler(client);
        handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, _, _) => cert is not null && cert.GetCertHashString() == certificate.GetCertHashString();
        using var http = new HttpClient(handler) { DefaultRequestVersion = new Version(2, 0), DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        var data = new byte[1024 * 1024];
        new Random(3).NextBytes(data);
        using var response = await http.PostAsync("https://test.web.tls/sha256", new ByteArrayContent(data), ct);
        response.EnsureSuccessStatusCode();
        Assert.Equal(new Version(2, 0), response.Version);
        Assert.Equal($"HTTP/2 True {Convert.ToHexString(SHA256.HashData(data))}", await response.Content.ReadAsStringAsync(ct));
        await app.StopAsync(ct);
    }

    [Fact]
    public async Task The_web_host_can_own_its_serval_host()
    {
        var ct = Timeout(60);
        var service = ServiceId.FromName("test.web.owned");
        var address = NextAddress();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseServal(_ => new ServalHostOptions { Name = "owned", Links = [new UdpLink(address)] });
        builder.WebHost.ConfigureKestrel(o => o.ListenServal(new ServiceEndPoint(service)));
        var app = builder.Build();
        app.MapGet("/name", async (ServalHostAccessor accessor) => (await accessor.GetHostAsync()).Name);
        await app.StartAsync(ct);
        var owned = await app.Services.GetRequiredService<ServalHostAccessor>().GetHostAsync(ct);
        Assert.Contains(owned.Admin.GetRules(), r => r.Prefix == ServicePrefix.Exact(service));

        await using (var client = await HostAsync("web-client"))
        {
            await client.Admin.AddRuleAsync(ServicePrefix.Exact(service), client.Admin.ForwardTo(owned.Links[0].LocalAddress), cancellationToken: ct);
            using var http = new HttpClient(ServalHttp.CreateHandler(client));
            Assert.Equal("owned", await http.GetStringAsync("http://test.web.owned/name", ct));
        }

        // Stopping and disposing the app disposes the host: its UDP address is free again.
        await app.StopAsync(ct);
        await app.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await owned.Admin.AddRuleAsync(ServicePrefix.Exact(service), owned.Admin.ForwardTo(owned.Links[0].LocalAddress), cancellationToken: ct));
        using var again = new UdpLink(address);
        Assert.Equal(address, again.LocalAddress.ToIPAddress());
    }

    [Fact]
    public async Task The_service_is_bound_while_the_app_runs_and_released_when_it_stops()
    {
        var ct = Timeout(60);
        var service = ServiceId.FromName("test.web.lifetime");
        await using var server = await HostAsync("web-server");
        await using var client = await HostAsync("web-client");
        await client.Admin.AddRuleAsync(ServicePrefix.Exact(service), client.Admin.ForwardTo(server.Links[0].LocalAddress), cancellationToken: ct);
        var app = await StartAppAsync(server, service, HttpProtocols.Http1, ct);
        Assert.Contains(server.Admin.GetRules(), r => r.Prefix == ServicePrefix.Exact(service));
        using (var http = new HttpClient(ServalHttp.CreateHandler(client)))
        {
            Assert.StartsWith("hello", await http.GetStringAsync("http://test.web.lifetime/hello", ct), StringComparison.Ordinal);
        }

        await app.StopAsync(ct);
        await app.DisposeAsync();
        Assert.DoesNotContain(server.Admin.GetRules(), r => r.Prefix == ServicePrefix.Exact(service));

        // Nobody serves it any more. A host answers a SYN for a service it does not serve with silence (the SAL gives
        // up after its retransmissions), so a request fails by the handler's connect timeout instead of hanging.
        var handler = ServalHttp.CreateHandler(client);
        handler.ConnectTimeout = TimeSpan.FromSeconds(2);
        using var again = new HttpClient(handler);
        var e = await Assert.ThrowsAnyAsync<Exception>(() => again.GetStringAsync("http://test.web.lifetime/hello", ct));
        Assert.True(e is HttpRequestException or OperationCanceledException, e.ToString());
    }

    [Fact]
    public async Task Ip_endpoints_keep_the_socket_transport_next_to_a_service()
    {
        var ct = Timeout(60);
        var service = ServiceId.FromName("test.web.both");
        await using var server = await HostAsync("web-server");
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseServal(server);
        builder.WebHost.ConfigureKestrel(o =>
        {
            o.ListenServal(new ServiceEndPoint(service));
            o.Listen(IPAddress.Loopback, 0);
        });
        await using var app = builder.Build();
        app.MapGet("/", () => "ok");
        await app.StartAsync(ct);
        var tcpAddress = app.Urls.Single(u => u.StartsWith("http://127.0.0.1:", StringComparison.Ordinal));
        using var plain = new HttpClient();
        Assert.Equal("ok", await plain.GetStringAsync(tcpAddress, ct));
        Assert.Contains(server.Admin.GetRules(), r => r.Prefix == ServicePrefix.Exact(service));
        await app.StopAsync(ct);
    }

    [Fact]
    public async Task A_custom_resolver_maps_the_uri_to_a_service_and_an_advisory_address()
    {
        var ct = Timeout(60);
        var service = ServiceId.FromName("test.web.resolved");
        await using var server = await HostAsync("web-server");
        await using var client = await HostAsync("web-client");
        await using var app = await StartAppAsync(server, service, HttpProtocols.Http1, ct);
        // No rule on the client: the resolver gives the service and where it is.
        var handler = ServalHttp.CreateHandler(client, dns => dns.Host == "shop" ? new ServiceEndPoint(service, ServiceId.Bits, server.Links[0].LocalAddress) : throw new HttpRequestException("unknown"));
        using var http = new HttpClient(handler);
        Assert.StartsWith("hello from web-server", await http.GetStringAsync("http://shop:8080/hello", ct), StringComparison.Ordinal);
        Assert.Throws<ArgumentNullException>(() => ServalHttp.CreateHandler(null!));
    }
}
