namespace Serval.Wire;

/// <summary>
/// The IP time-to-live (IPv4) or hop limit (IPv6) of a packet as links and the engine pass it: a value 0–255, or
/// <see cref="Unknown"/> when the link cannot tell (UDP encapsulation: the outer header belongs to the tunnel) or the
/// sender leaves the choice to the link.
/// </summary>
public static class IPHopLimit
{
    /// <summary>Not known (received), or the link's default (sent).</summary>
    public const int Unknown = -1;

    /// <summary>
    /// What a host puts on the packets it originates: 64, Linux's <c>ip_default_ttl</c> and the reference
    /// implementation's <c>SERVAL_DEFTTL</c>.
    /// </summary>
    public const int Default = 64;

    /// <summary>Whether <paramref name="hopLimit"/> is a real value (0–255) rather than <see cref="Unknown"/>.</summary>
    public static bool IsKnown(int hopLimit) => (uint)hopLimit <= byte.MaxValue;

    /// <summary>The value to write into an IP header: <paramref name="hopLimit"/> when known, else <see cref="Default"/>.</summary>
    public static byte OrDefault(int hopLimit) => IsKnown(hopLimit) ? (byte)hopLimit : (byte)Default;
}
