using System.Diagnostics;
using Serval.Stack;
using Serval.Wire;

namespace Serval.Runtime;

/// <summary>
/// The spans Serval records (docs/observability.md, "Traces") on the activity source <see cref="ServalHost.ActivitySourceName"/>:
/// <c>serval.connect</c> (resolution included), <c>serval.resolve</c> (on-demand resolution), <c>serval.accept</c> and
/// <c>serval.migrate</c>. Nothing is recorded unless an application listens to the source.
/// </summary>
internal static class ServalTelemetry
{
    public static readonly ActivitySource Source = new(ServalHost.ActivitySourceName, typeof(ServalTelemetry).Assembly.GetName().Version?.ToString());

    public const string HostTag = "serval.host";
    public const string ServiceIdTag = "serval.service.id";
    public const string ServiceNameTag = "serval.service.name";
    public const string FlowIdTag = "serval.flow.id";
    public const string PeerFlowIdTag = "serval.peer.flow.id";
    public const string PeerAddressTag = "serval.peer.address";
    public const string TransportTag = "serval.transport";
    public const string LinkTag = "serval.link";
    public const string InterfaceTag = "serval.interface";
    public const string ResultTag = "serval.result";
    public const string ErrorTypeTag = "error.type";

    /// <summary>Starts a span with the host and service tags, or returns null when nobody listens.</summary>
    public static Activity? Start(string name, ActivityKind kind, string host, ServiceId service, string? serviceName = null, ActivityContext parent = default)
    {
        var activity = Source.StartActivity(name, kind, parent);
        if (activity is null)
        {
            return null;
        }

        activity.SetTag(HostTag, host);
        activity.SetTag(ServiceIdTag, service.ToString());
        if (serviceName is not null)
        {
            activity.SetTag(ServiceNameTag, serviceName);
        }

        return activity;
    }

    /// <summary>Adds the flow's identifiers and the peer's address.</summary>
    public static void SetFlow(Activity? activity, FlowInfo? flow)
    {
        if (activity is null || flow is null)
        {
            return;
        }

        activity.SetTag(FlowIdTag, flow.LocalFlow.ToString());
        activity.SetTag(PeerFlowIdTag, flow.PeerFlow.ToString());
        activity.SetTag(PeerAddressTag, flow.PeerAddress.ToString());
        activity.SetTag(InterfaceTag, flow.Interface);
    }

    /// <summary>Ends a span that succeeded.</summary>
    public static void Succeeded(Activity? activity, string result = "ok")
    {
        if (activity is null)
        {
            return;
        }

        activity.SetTag(ResultTag, result);
        activity.SetStatus(ActivityStatusCode.Ok);
        activity.Dispose();
    }

    /// <summary>Ends a span that failed: <c>error.type</c> is the <see cref="ServalError"/> (or the exception's type).</summary>
    public static void Failed(Activity? activity, Exception exception)
    {
        if (activity is null)
        {
            return;
        }

        var type = exception switch
        {
            ServalException s => s.Error.ToString(),
            OperationCanceledException => "Canceled",
            _ => exception.GetType().FullName ?? exception.GetType().Name,
        };
        activity.SetTag(ResultTag, type);
        activity.SetTag(ErrorTypeTag, type);
        activity.SetStatus(ActivityStatusCode.Error, exception.Message);
        activity.Dispose();
    }
}
