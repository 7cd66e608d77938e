using System.Globalization;
using Serval.Wire;

namespace Serval.Cli;

/// <summary>
/// How tables show a service: <c>name (short id)</c> when servald knows the name (it was told it, or it is one of the
/// control plane's own services), else the prefix as <see cref="ServiceIdArgument.Format"/> writes it. <c>--json</c>
/// keeps the full IDs.
/// </summary>
internal static class ServiceDisplay
{
    /// <summary>Hex digits of the short ID.</summary>
    public const int ShortDigits = 8;

    /// <summary>A prefix with its name, if known.</summary>
    public static string Show(ServicePrefix prefix, string? name) =>
        name is null ? ServiceIdArgument.Format(prefix) : $"{name} ({Short(prefix.Id)}{(prefix.Length == ServiceId.Bits ? string.Empty : "/" + prefix.Length.ToString(CultureInfo.InvariantCulture))})";

    /// <summary>A serviceID (64 hex digits, as the daemon sends it) with its name, if known; else as sent.</summary>
    public static string Show(string? service, string? name)
    {
        if (service is null || name is null || !ServiceId.TryParse(service, CultureInfo.InvariantCulture, out var id))
        {
            return service ?? string.Empty;
        }

        return $"{name} ({Short(id)})";
    }

    /// <summary>The first <see cref="ShortDigits"/> hex digits and an ellipsis.</summary>
    public static string Short(ServiceId id) => id.ToString()[..ShortDigits] + "…";
}
