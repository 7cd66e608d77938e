using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using Serval.Daemon;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Cli.Tests;

/// <summary>
/// Per-service metrics in servald's Prometheus text: a series per service labelled with its serviceID and, when known,
/// its name; at most 64 services with series of their own, the rest summed under <c>other</c>; a service that leaves
/// the table leaves the text.
/// </summary>
public sealed partial class ServiceMetricsTests
{
    [Fact]
    public async Task Services_are_labelled_by_id_and_name_and_their_series_are_bounded()
    {
        var ct = TestContext.Current.CancellationToken;
        var path = Path.Combine(Path.GetTempPath(), $"servald-svcmetrics-{Guid.NewGuid():N}.sock");
        var options = DaemonTests.Options(path);
        options.Name = "svc-metrics";
        options.MetricsUrl = $"http://127.0.0.1:{DaemonTests.FreeTcpPort()}/metrics";
        await using var daemon = await ServalDaemon.StartAsync(options, NullLoggerFactory.Instance, ct);
        using var http = new HttpClient();
        async Task<string> Scrape() => await http.GetStringAsync(new Uri(options.MetricsUrl + "/"), ct);

        // An attached application binds shop.metrics by name; a client connects to it (its SYN is resolved by the entry).
        await using var app = await ServalHost.AttachAsync(path, ct);
        var id = ServiceId.FromName("shop.metrics");
        await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = app, ListenEndPoint = ServiceEndPoint.FromName("shop.metrics") }, ct);
        var accept = listener.AcceptConnectionAsync(ct);
        await using (var client = await ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = daemon.Host, Service = id }, ct))
        await using (var server = await accept)
        {
        }

        var text = await Scrape();
        Assert.Contains("# TYPE serval_service_packets_total counter", text, StringComparison.Ordinal);
        Assert.Contains("# UNIT serval_service_io_bytes_total bytes", text, StringComparison.Ordinal);
        var resolved = Regex.Match(text, $"^serval_service_packets_total\\{{serval_host=\"svc-metrics\",serval_service_id=\"{id}\",serval_service_name=\"shop.metrics\",serval_service_outcome=\"resolved\"\\}} (\\d+)$", RegexOptions.Multiline);
        Assert.True(resolved.Success && long.Parse(resolved.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) >= 1, $"no named series of {id} with a resolved packet:\n{ServiceLines(text)}");
        Assert.Contains($"serval_service_packets_total{{serval_host=\"svc-metrics\",serval_service_id=\"{id}\",serval_service_name=\"shop.metrics\",serval_service_outcome=\"dropped\"}} 0", text, StringComparison.Ordinal);

        // 100 more services (FORWARD rules, unnamed): at most 64 series of their own, the rest under "other".
        var next = LinkAddress.Parse("127.0.0.1:9");
        for (uint i = 1; i <= 100; i++)
        {
            await daemon.Host.AddRuleAsync(ServicePrefix.Exact(ServiceId.FromNumber(i)), ServiceTarget.Forward(next, 1), cancellationToken: ct);
        }

        text = await Scrape();
        var ids = ServiceIds(text);
        Assert.True(ids.Count == 65 && ids.Contains("other"), $"{ids.Count} serval_service_id values (want 64 and other): {string.Join(" ", ids)}");
        Assert.True(ids.Contains(id.ToString()), $"shop.metrics, tracked before the others came, lost its series: {string.Join(" ", ids)}");

        // Removing rules frees slots and their series leave the text (no stale last value).
        var gone = ServiceId.FromNumber(1);
        var tracked = ids.Contains(gone.ToString());
        await daemon.Host.RemoveRuleAsync(ServicePrefix.Exact(gone), ServiceTarget.Forward(next, 1), ct);
        text = await Scrape();
        ids = ServiceIds(text);
        Assert.DoesNotContain(gone.ToString(), ids);
        Assert.True(ids.Count == 65, $"after one removal ({(tracked ? "tracked" : "in other")}): {ids.Count} values");
    }

    private static HashSet<string> ServiceIds(string text) =>
        [.. IdLabel().Matches(text).Select(m => m.Groups[1].Value)];

    private static string ServiceLines(string text) =>
        string.Join("\n", text.Split('\n').Where(l => l.StartsWith("serval_service_", StringComparison.Ordinal)));

    [GeneratedRegex("^serval_service_packets_total\\{[^}]*serval_service_id=\"([^\"]+)\"", RegexOptions.Multiline)]
    private static partial Regex IdLabel();
}
