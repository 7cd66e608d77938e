using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Serval.Daemon;
using Serval.Wire;

namespace Serval.Cli.Tests;

/// <summary>
/// servald's opt-in OTLP export (Serval:Otlp): pointed at a small OTLP/HTTP receiver in the test (loopback), it
/// posts metrics to /v1/metrics and spans to /v1/traces.
/// </summary>
public sealed class OtlpExportTests
{
    /// <summary>Accepts OTLP/HTTP posts on a loopback port and remembers their paths and content types.</summary>
    private sealed class OtlpReceiver : IDisposable
    {
        private readonly HttpListener _http = new();
        private readonly Task _loop;

        public OtlpReceiver()
        {
            Port = DaemonTests.FreeTcpPort();
            _http.Prefixes.Add($"http://127.0.0.1:{Port}/");
            _http.Start();
            _loop = Task.Run(ServeAsync);
        }

        public int Port { get; }

        public ConcurrentQueue<(string Path, string? ContentType, long Length)> Requests { get; } = new();

        private async Task ServeAsync()
        {
            while (_http.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await _http.GetContextAsync();
                }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
                {
                    return;
                }

                using var body = new MemoryStream();
                await context.Request.InputStream.CopyToAsync(body);
                Requests.Enqueue((context.Request.Url!.AbsolutePath, context.Request.ContentType, body.Length));
                context.Response.StatusCode = context.Request.HttpMethod == "POST" ? 200 : 405;
                context.Response.ContentType = "application/x-protobuf";
                context.Response.Close();
            }
        }

        public void Dispose()
        {
            _http.Close();
            _loop.Wait(TimeSpan.FromSeconds(5));
        }
    }

    [Fact]
    public async Task Metrics_and_spans_reach_an_otlp_http_receiver()
    {
        var ct = TestContext.Current.CancellationToken;
        using var receiver = new OtlpReceiver();
        var options = DaemonTests.Options(Path.Combine(Path.GetTempPath(), $"servald-otlp-{Guid.NewGuid():N}.sock"));
        options.Name = "otlp-test";
        options.Otlp = new OtlpSettings { Endpoint = $"http://127.0.0.1:{receiver.Port}", Protocol = "http/protobuf", ExportInterval = TimeSpan.FromMilliseconds(200) };
        await using (var daemon = await ServalDaemon.StartAsync(options, NullLoggerFactory.Instance, ct))
        {
            // A connect no rule resolves: a serval.connect span with its error.
            await Assert.ThrowsAsync<ServalException>(async () => await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = daemon.Host, Service = ServiceId.FromName("otlp.nowhere") }, ct));
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (DateTime.UtcNow < deadline && !(receiver.Requests.Any(r => r.Path == "/v1/metrics") && receiver.Requests.Any(r => r.Path == "/v1/traces")))
            {
                await Task.Delay(100, ct);
            }
        }

        var metrics = Assert.Single(receiver.Requests.Where(r => r.Path == "/v1/metrics").Take(1));
        Assert.Equal("application/x-protobuf", metrics.ContentType);
        Assert.True(metrics.Length > 100, $"a metrics export of {metrics.Length} bytes");
        var traces = Assert.Single(receiver.Requests.Where(r => r.Path == "/v1/traces").Take(1));
        Assert.True(traces.Length > 50, $"a trace export of {traces.Length} bytes");
    }

    [Theory]
    [InlineData("ftp://collector:4317", "grpc", "is not an http:// or https:// URL")]
    [InlineData("http://127.0.0.1:4318", "thrift", "is neither grpc nor http/protobuf")]
    public void Invalid_otlp_settings_are_refused_at_start(string endpoint, string protocol, string message)
    {
        var settings = new OtlpSettings { Endpoint = endpoint, Protocol = protocol };
        var e = Assert.Throws<DaemonException>(settings.Validate);
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Otlp_is_off_without_an_endpoint() => Assert.False(new OtlpSettings().Enabled);
}
