using System.Globalization;
using Serval.Wire;

namespace Serval.Cli;

/// <summary>
/// The serviceID forms of the reference <c>serv</c> tool: <c>default</c> (the /0 prefix), a decimal number (bytes 0–3,
/// network order), <c>0x…</c> (left-aligned hex), 64 hex digits, each optionally followed by <c>/bits</c> or
/// <c>:bits</c> (0–256; without it the prefix is the whole ID, /256).
/// </summary>
internal static class ServiceIdArgument
{
    public static bool TryParse(string text, out ServicePrefix prefix, out string reason)
    {
        prefix = default;
        text = text.Trim();
        if (text.Equals("default", StringComparison.OrdinalIgnoreCase))
        {
            reason = string.Empty;
            return true;
        }

        var idText = text;
        int? bits = null;
        var split = text.LastIndexOfAny(['/', ':']);
        if (split >= 0)
        {
            idText = text[..split];
            var bitsText = text[(split + 1)..];
            if (!int.TryParse(bitsText, NumberStyles.None, CultureInfo.InvariantCulture, out var b) || b > ServiceId.Bits)
            {
                reason = $"prefix length '{bitsText}' must be a number from 0 to {ServiceId.Bits}";
                return false;
            }

            bits = b;
        }

        ServiceId id;
        if (idText.Equals("default", StringComparison.OrdinalIgnoreCase))
        {
            id = ServiceId.Zero;
        }
        else if (!ServiceId.TryParse(idText, out id, out var why))
        {
            reason = $"'{idText}': {why}";
            return false;
        }

        prefix = new ServicePrefix(id, bits ?? ServiceId.Bits);
        reason = string.Empty;
        return true;
    }

    /// <summary>Short human form: <c>default</c>, or the ID without trailing zero nibbles and its length.</summary>
    public static string Format(ServicePrefix prefix) =>
        prefix.Length == 0 && prefix.Id.IsZero ? "default" : $"{prefix.Id.ToString("s", CultureInfo.InvariantCulture)}/{prefix.Length.ToString(CultureInfo.InvariantCulture)}";
}
