using System.Collections.Concurrent;
using Serval.Wire;

namespace Serval.Runtime;

/// <summary>
/// How logs show services: <c>name (1a2b3c4d…)</c> when the host knows the name (it was connected to by name), else
/// the short form of the serviceID (its first 8 hex digits, or the whole <c>s</c> form when that is short).
/// </summary>
internal sealed class ServiceLabels
{
    private const int MaxNames = 4096;
    private readonly ConcurrentDictionary<ServiceId, string> _names = new()
    {
        [Stack.ControlPlane.ControlProtocol.RouterServiceId] = "serval.router (control plane)",
        [Stack.ControlPlane.ControlProtocol.AdvertiseServiceId] = "serval.router.advertise (control plane)",
        [Stack.ControlPlane.ControlProtocol.SolicitServiceId] = "serval.router.solicit (control plane)",
    };

    /// <summary>Remembers the name of <paramref name="service"/> (a bounded number of them); servald also passes the names it was told.</summary>
    public void Remember(ServiceId service, string? name)
    {
        if (!string.IsNullOrEmpty(name) && _names.Count < MaxNames && ServiceId.FromName(name) == service)
        {
            _names.TryAdd(service, name);
        }
    }

    /// <summary>The name of a whole serviceID (a /256 prefix) when known, else null.</summary>
    public string? NameOf(ServicePrefix prefix) =>
        prefix.Length == ServiceId.Bits && _names.TryGetValue(prefix.Id, out var name) ? name : null;

    /// <summary>The label of a service.</summary>
    public string Of(ServiceId service) =>
        _names.TryGetValue(service, out var name) ? $"{name} ({Short(service)})" : Short(service);

    /// <summary>The label of a prefix: a /256 prefix as its service, others in prefix form.</summary>
    public string Of(ServicePrefix prefix) => prefix.Length == ServiceId.Bits ? Of(prefix.Id) : prefix.ToString();

    /// <summary>The label of a prefix, or "all services" for null.</summary>
    public string Of(ServicePrefix? prefix) => prefix is { } p ? Of(p) : "all services";

    /// <summary>The short form of a serviceID.</summary>
    public static string Short(ServiceId service)
    {
        var s = service.ToString("s", null);
        return s.Length <= 12 ? s : service.ToString()[..8] + "…";
    }
}

/// <summary>A service's label formatted only when a log line is written.</summary>
internal readonly struct ServiceLabel(ServiceLabels labels, ServiceId service)
{
    public override string ToString() => labels.Of(service);
}
