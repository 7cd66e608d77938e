using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using System.Text;

namespace Serval.Daemon;

/// <summary>
/// Prometheus text exposition (format 0.0.4) of the instruments of the <c>Serval.Host</c> meter that belong to this
/// host (meter tag <c>serval.host</c>), served by an <see cref="HttpListener"/> bound to a loopback prefix only.
/// Names as OpenTelemetry's Prometheus compatibility rules give them (docs/observability.md): dots become
/// underscores, the unit is appended as a word (<c>By</c> → <c>_bytes</c>, <c>s</c> → <c>_seconds</c>; annotations
/// such as <c>{packet}</c> add nothing) and announced by a <c># UNIT</c> line, counters end in <c>_total</c>; tags
/// become labels.
/// </summary>
internal sealed class MetricsExporter : IDisposable
{
    private const string MeterName = ServalHost.MeterName;
    private readonly MeterListener _listener = new();
    private readonly HttpListener _http = new();
    private readonly Lock _lock = new();
    private readonly Lock _renderLock = new();
    private readonly Dictionary<(Instrument Instrument, string Labels), double> _values = [];
    private readonly string _hostName;
    private readonly Task _serveLoop;

    private MetricsExporter(string prefix, string hostName)
    {
        _hostName = hostName;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == MeterName && BelongsToHost(instrument))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags));
        _listener.Start();
        _http.Prefixes.Add(prefix);
        _http.Start();
        _serveLoop = Task.Run(ServeAsync);
    }

    /// <summary>Checks that <paramref name="url"/> is an http URL on a loopback address and returns it as a listener prefix.</summary>
    /// <exception cref="DaemonException">The URL is malformed or not loopback.</exception>
    public static string ValidatePrefix(string url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp)
        {
            throw new DaemonException($"Serval:MetricsUrl '{url}' is not an http:// URL");
        }

        if (!IPAddress.TryParse(uri.Host.Trim('[', ']'), out var address) || !IPAddress.IsLoopback(address))
        {
            throw new DaemonException($"Serval:MetricsUrl '{url}' must use a loopback address (127.0.0.1 or [::1]); metrics are never exposed beyond this machine");
        }

        var path = uri.AbsolutePath.EndsWith('/') ? uri.AbsolutePath : uri.AbsolutePath + "/";
        return $"http://{uri.Authority}{path}";
    }

    public static MetricsExporter Start(string prefix, string hostName)
    {
        try
        {
            return new MetricsExporter(prefix, hostName);
        }
        catch (HttpListenerException e)
        {
            throw new DaemonException($"cannot serve metrics at {prefix}: {e.Message}", e);
        }
    }

    private bool BelongsToHost(Instrument instrument) =>
        instrument.Meter.Tags?.Any(t => t.Key == "serval.host" && Equals(t.Value, _hostName)) ?? true;

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var labels = Labels(instrument, tags);
        lock (_lock)
        {
            var cumulative = instrument is Counter<long> or Counter<int> or Counter<double> or UpDownCounter<long> or UpDownCounter<int> or UpDownCounter<double>;
            _values[(instrument, labels)] = cumulative ? _values.GetValueOrDefault((instrument, labels)) + value : value;
        }
    }

    private static string Labels(Instrument instrument, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var all = new List<KeyValuePair<string, object?>>(instrument.Meter.Tags ?? []);
        foreach (var t in tags)
        {
            all.Add(t);
        }

        if (all.Count == 0)
        {
            return string.Empty;
        }

        return "{" + string.Join(",", all.Select(t => $"{Sanitize(t.Key)}=\"{Escape(Convert.ToString(t.Value, CultureInfo.InvariantCulture) ?? string.Empty)}\"")) + "}";
    }

    /// <summary>
    /// The Prometheus name of an instrument: <c>serval.io</c> in <c>By</c> as a counter is <c>serval_io_bytes_total</c>,
    /// <c>serval.router.registry.watch_lag</c> in <c>s</c> is <c>serval_router_registry_watch_lag_seconds</c>.
    /// </summary>
    public static string PrometheusName(string instrument, string? unit, bool isCounter)
    {
        var name = Sanitize(instrument);
        if (UnitWord(unit, isCounter) is { } word && !name.EndsWith("_" + word, StringComparison.Ordinal))
        {
            name += "_" + word;
        }

        return isCounter ? name + "_total" : name;
    }

    /// <summary>The unit as Prometheus spells it in a name (UCUM to words); null for none or an annotation like <c>{packet}</c>.</summary>
    public static string? UnitWord(string? unit, bool isCounter) => unit switch
    {
        null or "" => null,
        ['{', .., '}'] => null,
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "bit" => "bits",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "1" => isCounter ? null : "ratio",
        "%" => "percent",
        "Hz" => "hertz",
        "By/s" => "bytes_per_second",
        _ => Sanitize(unit).Trim('_') is { Length: > 0 } w ? w : null,
    };

    private static string Sanitize(string name) => new([.. name.Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_')]);

    private static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    /// <summary>The current exposition text.</summary>
    public string Render()
    {
        lock (_renderLock)
        {
            return RenderLocked();
        }
    }

    private string RenderLocked()
    {
        // Observable instruments report their present series afresh: a series that is gone (a service whose entry
        // left the table) is not repeated with its last value.
        lock (_lock)
        {
            foreach (var key in _values.Keys.Where(k => k.Instrument.IsObservable).ToList())
            {
                _values.Remove(key);
            }
        }

        _listener.RecordObservableInstruments();
        var text = new StringBuilder();
        lock (_lock)
        {
            foreach (var group in _values.GroupBy(kv => kv.Key.Instrument).OrderBy(g => g.Key.Name, StringComparer.Ordinal))
            {
                var instrument = group.Key;
                var isCounter = instrument.GetType().Name.StartsWith("Counter", StringComparison.Ordinal) || instrument.GetType().Name.StartsWith("ObservableCounter", StringComparison.Ordinal);
                var name = PrometheusName(instrument.Name, instrument.Unit, isCounter);
                text.Append(CultureInfo.InvariantCulture, $"# HELP {name} {instrument.Description}\n");
                text.Append(CultureInfo.InvariantCulture, $"# TYPE {name} {(isCounter ? "counter" : "gauge")}\n");
                if (UnitWord(instrument.Unit, isCounter) is { } unit)
                {
                    text.Append(CultureInfo.InvariantCulture, $"# UNIT {name} {unit}\n");
                }

                foreach (var kv in group)
                {
                    text.Append(CultureInfo.InvariantCulture, $"{name}{kv.Key.Labels} {kv.Value.ToString("R", CultureInfo.InvariantCulture)}\n");
                }
            }
        }

        return text.ToString();
    }

    private async Task ServeAsync()
    {
        while (_http.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _http.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            try
            {
                var body = Encoding.UTF8.GetBytes(Render());
                context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                context.Response.ContentLength64 = body.Length;
                await context.Response.OutputStream.WriteAsync(body).ConfigureAwait(false);
                context.Response.Close();
            }
            catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException)
            {
                context.Response.Abort();
            }
        }
    }

    public void Dispose()
    {
        _http.Close();
        _listener.Dispose();
        _serveLoop.Wait(TimeSpan.FromSeconds(2));
    }
}
