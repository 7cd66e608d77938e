using System.Globalization;
using Serval.Wire;

namespace Serval.Cli;

/// <summary>
/// The serviceID forms of the reference <c>serv</c> tool: <c>default</c> (the /0 prefix), a decimal number (bytes 0–3,
/// network order), <c>0x…</c> (left-aligned hex), 64 hex digits, and service names (SHA-256 of the name, as
/// <see cref="ServiceId.FromName(string)"/> and every API that takes a name), each optionally followed by <c>/bits</c>
/// or <c>:bits</c> (0–256; without it the prefix is the whole ID, /256). Text that is not an ID form is a name, unless
/// it is made only of hex digits or starts with <c>0x</c> (a mistyped ID stays an error); <c>name=TEXT</c> forces a
/// name. Names cannot contain <c>/</c>, <c>:</c> or white space.
/// </summary>
internal static class ServiceIdArgument
{
    private const string NamePrefix = "name=";

    public static bool TryParse(string text, out ServicePrefix prefix, out string reason) => TryParse(text, out prefix, out _, out reason);

    /// <summary>As <see cref="TryParse(string, out ServicePrefix, out string)"/>; <paramref name="name"/> is the service name when one was given.</summary>
    public static bool TryParse(string text, out ServicePrefix prefix, out string? name, out string reason)
    {
        prefix = default;
        name = null;
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
        if (idText.StartsWith(NamePrefix, StringComparison.OrdinalIgnoreCase))
        {
            name = idText[NamePrefix.Length..];
            if (!IsName(name, forced: true))
            {
                reason = $"'{idText}': a service name must be non-empty text without white space";
                return false;
            }

            id = ServiceId.FromName(name);
        }
        else if (idText.Equals("default", StringComparison.OrdinalIgnoreCase))
        {
            id = ServiceId.Zero;
        }
        else if (ServiceId.TryParse(idText, out id, out var why))
        {
            // an ID form
        }
        else if (IsName(idText, forced: false))
        {
            name = idText;
            id = ServiceId.FromName(name);
        }
        else
        {
            reason = $"'{idText}': {why}";
            return false;
        }

        prefix = new ServicePrefix(id, bits ?? ServiceId.Bits);
        reason = string.Empty;
        return true;
    }

    /// <summary>
    /// Whether <paramref name="text"/> is taken as a service name: non-empty, no white space or control characters;
    /// unless <paramref name="forced"/>, also not made only of hex digits and not starting with <c>0x</c> (those are
    /// meant as IDs, and a malformed one is reported as such).
    /// </summary>
    private static bool IsName(string text, bool forced)
    {
        if (text.Length == 0 || text.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            return false;
        }

        return forced || (!text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) && !text.All(char.IsAsciiHexDigit));
    }

    /// <summary>Short human form: <c>default</c>, or the ID without trailing zero nibbles and its length.</summary>
    public static string Format(ServicePrefix prefix) =>
        prefix.Length == 0 && prefix.Id.IsZero ? "default" : $"{prefix.Id.ToString("s", CultureInfo.InvariantCulture)}/{prefix.Length.ToString(CultureInfo.InvariantCulture)}";
}
