using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Serval.Daemon;

/// <summary>
/// <c>Serval:Otlp</c>: pushes servald's metrics (meter <c>Serval.Host</c>) and spans (activity source <c>Serval</c>)
/// to an OpenTelemetry collector over OTLP (docs/observability.md). Off unless <see cref="Endpoint"/> is set.
/// </summary>
internal sealed class OtlpSettings
{
    /// <summary>
    /// The collector: for <c>http/protobuf</c> its base URL (e.g. <c>http://127.0.0.1:4318</c>; servald posts to
    /// <c>/v1/metrics</c> and <c>/v1/traces</c> under it, as <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> does), for <c>grpc</c>
    /// its address (e.g. <c>http://127.0.0.1:4317</c>). Null or empty: no export.
    /// </summary>
    public string? Endpoint { get; set; }

    /// <summary><c>grpc</c> (default) or <c>http/protobuf</c>.</summary>
    public string Protocol { get; set; } = "grpc";

    /// <summary>Export metrics (default true).</summary>
    public bool Metrics { get; set; } = true;

    /// <summary>Export spans (default true).</summary>
    public bool Traces { get; set; } = true;

    /// <summary>How often metrics (and batches of spans) are pushed (default 10 s; 100 ms to 1 h).</summary>
    public TimeSpan ExportInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Extra request headers, <c>key=value</c> pairs separated by commas (as <c>OTEL_EXPORTER_OTLP_HEADERS</c>).</summary>
    public string? Headers { get; set; }

    /// <summary>Whether anything is exported.</summary>
    public bool Enabled => !string.IsNullOrWhiteSpace(Endpoint) && (Metrics || Traces);

    /// <summary>Checks the settings.</summary>
    /// <exception cref="DaemonException">A setting is invalid, named by its key.</exception>
    public void Validate()
    {
        if (!Enabled)
        {
            return;
        }

        if (!Uri.TryCreate(Endpoint, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new DaemonException($"Serval:Otlp:Endpoint '{Endpoint}' is not an http:// or https:// URL");
        }

        _ = ParseProtocol(Protocol);
        if (ExportInterval < TimeSpan.FromMilliseconds(100) || ExportInterval > TimeSpan.FromHours(1))
        {
            throw new DaemonException($"Serval:Otlp:ExportInterval must be 100 ms to 1 hour (was {ExportInterval})");
        }
    }

    /// <summary>The exporter protocol of a <c>Protocol</c> value.</summary>
    public static OtlpExportProtocol ParseProtocol(string text) => text.Trim().ToLowerInvariant() switch
    {
        "grpc" => OtlpExportProtocol.Grpc,
        "http/protobuf" or "http" => OtlpExportProtocol.HttpProtobuf,
        _ => throw new DaemonException($"Serval:Otlp:Protocol '{text}' is neither grpc nor http/protobuf"),
    };
}

/// <summary>The meter and tracer providers of <see cref="OtlpSettings"/>; disposing flushes and stops them.</summary>
internal sealed class OtlpExporter : IDisposable
{
    private readonly MeterProvider? _meters;
    private readonly TracerProvider? _tracers;

    private OtlpExporter(MeterProvider? meters, TracerProvider? tracers)
    {
        _meters = meters;
        _tracers = tracers;
    }

    /// <summary>Starts exporting; null when the settings export nothing.</summary>
    /// <param name="settings">Validated settings.</param>
    /// <param name="hostName">servald's host name (the resource's <c>service.instance.id</c>).</param>
    public static OtlpExporter? Start(OtlpSettings? settings, string hostName)
    {
        if (settings is not { Enabled: true })
        {
            return null;
        }

        var protocol = OtlpSettings.ParseProtocol(settings.Protocol);
        var interval = (int)settings.ExportInterval.TotalMilliseconds;
        var resource = ResourceBuilder.CreateDefault()
            .AddService("servald", serviceVersion: typeof(OtlpExporter).Assembly.GetName().Version?.ToString(), serviceInstanceId: hostName);

        void Configure(OtlpExporterOptions o, string signal)
        {
            var endpoint = settings.Endpoint!.TrimEnd('/');
            o.Protocol = protocol;
            o.Endpoint = new Uri(protocol == OtlpExportProtocol.HttpProtobuf ? $"{endpoint}/v1/{signal}" : endpoint);
            if (!string.IsNullOrEmpty(settings.Headers))
            {
                o.Headers = settings.Headers;
            }
        }

        var meters = settings.Metrics
            ? Sdk.CreateMeterProviderBuilder()
                .SetResourceBuilder(resource)
                .AddMeter(ServalHost.MeterName)
                .AddOtlpExporter((o, reader) =>
                {
                    Configure(o, "metrics");
                    reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = interval;
                })
                .Build()
            : null;
        var tracers = settings.Traces
            ? Sdk.CreateTracerProviderBuilder()
                .SetResourceBuilder(resource)
                .AddSource(ServalHost.ActivitySourceName)
                .AddOtlpExporter(o =>
                {
                    Configure(o, "traces");
                    o.BatchExportProcessorOptions.ScheduledDelayMilliseconds = interval;
                })
                .Build()
            : null;
        return new OtlpExporter(meters, tracers);
    }

    public void Dispose()
    {
        _tracers?.Dispose();
        _meters?.Dispose();
    }
}
