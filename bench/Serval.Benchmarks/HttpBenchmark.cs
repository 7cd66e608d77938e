using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Serval.AspNetCore;
using Serval.Links;
using Serval.Wire;

namespace Serval.Benchmarks;

/// <summary>
/// <c>bench/run.sh http</c>: one Kestrel app on loopback listening on TCP and on a Serval service (UDP encapsulation),
/// and HttpClient against each in the same run: small GETs per second with 16 concurrent requests, and the goodput of
/// large uploads. Prints <c>http: tcp_rps=… serval_rps=… ratio_rps=… tcp_upload_gbps=… serval_upload_gbps=… ratio_upload=…</c>.
/// </summary>
internal static class HttpBenchmark
{
    private const int Concurrency = 16;
    private const int ChunkSize = 1024 * 1024;

    public static async Task<int> RunAsync(string[] args)
    {
        var seconds = args.Length > 0 ? double.Parse(args[0], CultureInfo.InvariantCulture) : 5;
        var uploadMiB = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 512;
        if (seconds is < 1 or > 60 || uploadMiB is < 16 or > 8192)
        {
            Console.Error.WriteLine("usage: http [SECONDS (1-60, default 5)] [UPLOAD_MIB (16-8192, default 512)]");
            return 2;
        }

        var service = ServiceId.FromName("bench.http");
        await using var server = await StartHostAsync("http-server");
        await using var client = await StartHostAsync("http-client");
        await client.Admin.AddRuleAsync(ServicePrefix.Exact(service), client.Admin.ForwardTo(server.Links[0].LocalAddress));

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseServal(server);
        builder.WebHost.ConfigureKestrel(o =>
        {
            o.Limits.MaxRequestBodySize = null; // the uploads are larger than the 30 MB default
            o.Listen(IPAddress.Loopback, 0);
            o.ListenServal(new ServiceEndPoint(service));
        });
        await using var app = builder.Build();
        var small = new byte[100];
        app.MapGet("/small", () => Results.Bytes(small, "application/octet-stream"));
        app.MapPost("/sink", async (HttpRequest request) =>
        {
            var buffer = new byte[64 * 1024];
            long total = 0;
            int n;
            while ((n = await request.Body.ReadAsync(buffer, request.HttpContext.RequestAborted)) > 0)
            {
                total += n;
            }

            return total.ToString(CultureInfo.InvariantCulture);
        });
        await app.StartAsync();
        var tcpBase = app.Urls.Single(u => u.StartsWith("http://127.0.0.1:", StringComparison.Ordinal));
        Console.Error.WriteLine($"http: Kestrel on {tcpBase} and on service bench.http ({server.Links[0].LocalAddress}); {Concurrency} concurrent GETs for {seconds} s, {uploadMiB} MiB uploads");

        using var tcp = new HttpClient(new SocketsHttpHandler());
        using var serval = new HttpClient(ServalHttp.CreateHandler(client));
        var duration = TimeSpan.FromSeconds(seconds);

        // Warm both paths (JIT, connection pools) before measuring.
        await RequestsPerSecondAsync(tcp, $"{tcpBase}/small", TimeSpan.FromSeconds(1));
        await RequestsPerSecondAsync(serval, "http://bench.http/small", TimeSpan.FromSeconds(1));

        var tcpRps = await RequestsPerSecondAsync(tcp, $"{tcpBase}/small", duration);
        var servalRps = await RequestsPerSecondAsync(serval, "http://bench.http/small", duration);
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  GET /small: TCP {tcpRps:F0}/s, Serval {servalRps:F0}/s"));

        var tcpUpload = await UploadGbpsAsync(tcp, $"{tcpBase}/sink", uploadMiB);
        var servalUpload = await UploadGbpsAsync(serval, "http://bench.http/sink", uploadMiB);
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  POST {uploadMiB} MiB: TCP {tcpUpload:F3} Gbit/s, Serval {servalUpload:F3} Gbit/s"));

        await app.StopAsync();
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"http: tcp_rps={tcpRps:F0} serval_rps={servalRps:F0} ratio_rps={servalRps / tcpRps:F3} tcp_upload_gbps={tcpUpload:F3} serval_upload_gbps={servalUpload:F3} ratio_upload={servalUpload / tcpUpload:F3}"));
        return 0;
    }

    private static async Task<ServalHost> StartHostAsync(string name)
    {
        // Loopback addresses 127.78.0.x on the default port; the next one if taken.
        for (var i = 2; ; i++)
        {
            try
            {
                return await ServalHost.StartAsync(new ServalHostOptions { Name = name, Links = [new UdpLink(new IPAddress([127, 78, 0, (byte)(i + (Environment.ProcessId % 50 * 4))]))] });
            }
            catch (SocketException) when (i < 200)
            {
            }
        }
    }

    /// <summary>Completed GETs per second with <see cref="Concurrency"/> request loops, for <paramref name="duration"/>.</summary>
    private static async Task<double> RequestsPerSecondAsync(HttpClient http, string url, TimeSpan duration)
    {
        var clock = Stopwatch.StartNew();
        long completed = 0;
        var loops = Enumerable.Range(0, Concurrency).Select(loop => Task.Run(async () =>
        {
            while (clock.Elapsed < duration)
            {
                using var response = await http.GetAsync(url);
                response.EnsureSuccessStatusCode();
                _ = await response.Content.ReadAsByteArrayAsync();
                Interlocked.Increment(ref completed);
            }
        }));
        await Task.WhenAll(loops).WaitAsync(duration + TimeSpan.FromSeconds(60));
        return completed / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Goodput of one upload of <paramref name="mib"/> MiB, as the server counted it.</summary>
    private static async Task<double> UploadGbpsAsync(HttpClient http, string url, int mib)
    {
        var chunk = new byte[ChunkSize];
        new Random(1).NextBytes(chunk);
        var total = (long)mib * ChunkSize;
        var clock = Stopwatch.StartNew();
        using var content = new StreamContent(new RepeatingStream(chunk, total));
        content.Headers.ContentLength = total;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(300));
        using var response = await http.PostAsync(url, content, cts.Token);
        response.EnsureSuccessStatusCode();
        var received = long.Parse(await response.Content.ReadAsStringAsync(cts.Token), CultureInfo.InvariantCulture);
        var elapsed = clock.Elapsed.TotalSeconds;
        if (received != total)
        {
            throw new InvalidOperationException($"the server counted {received} of {total} bytes");
        }

        return received * 8 / elapsed / 1e9;
    }

    /// <summary>A read-only stream of <paramref name="total"/> bytes: the chunk over and over.</summary>
    private sealed class RepeatingStream(byte[] chunk, long total) : Stream
    {
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => total;

        public override long Position
        {
            get => _position;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var n = (int)Math.Min(buffer.Length, total - _position);
            var at = (int)(_position % chunk.Length);
            n = Math.Min(n, chunk.Length - at);
            chunk.AsSpan(at, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
