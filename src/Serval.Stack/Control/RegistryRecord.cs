using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// One registration as a fleet of routers shares it in a registry (docs/router-fleet.md, "Key layout"): which prefix,
/// which host serves it, with what weight, and which router accepted it.
/// </summary>
public sealed record RegistryRecord
{
    /// <summary>The registered prefix.</summary>
    public required ServicePrefix Prefix { get; init; }

    /// <summary>The registering host's link address (the FORWARD target every router installs).</summary>
    public required LinkAddress Host { get; init; }

    /// <summary>The rule's weight.</summary>
    public uint Weight { get; init; } = 1;

    /// <summary>The host asked for no new connections (no router installs a rule).</summary>
    public bool Draining { get; init; }

    /// <summary>Transports the host reported.</summary>
    public ServiceTransports Transports { get; init; }

    /// <summary>The registering host controller's sender identifier (random per incarnation).</summary>
    public ulong Sender { get; init; }

    /// <summary>The name of the router that accepted (and authenticated) the registration.</summary>
    public required string Router { get; init; }

    /// <summary>That router's epoch (random per start).</summary>
    public ulong RouterEpoch { get; init; }

    /// <summary>The lease granted, in milliseconds (the registry entry's TTL).</summary>
    public uint LeaseMilliseconds { get; init; }

    /// <summary>When the accepting router wrote it, Unix milliseconds (watch lag and propagation are measured from it).</summary>
    public long WrittenAtUnixMilliseconds { get; init; }
}

/// <summary>
/// Key layout and value encoding of the fleet registry (docs/router-fleet.md): keys are relative to the registry's
/// root (the etcd prefix), values are UTF-8 JSON objects with a version field.
/// </summary>
public static class RegistryCodec
{
    /// <summary>The relative key prefix of registrations: <c>reg/ID/bits/host</c>.</summary>
    public const string RegistrationPrefix = "reg/";

    /// <summary>The relative key prefix of drains: <c>drain/host/ID/bits</c> or <c>drain/host/*</c>.</summary>
    public const string DrainPrefix = "drain/";

    /// <summary>The value format version written.</summary>
    public const int Version = 1;

    /// <summary>The key of <paramref name="prefix"/> registered by <paramref name="host"/>.</summary>
    public static string RegistrationKey(ServicePrefix prefix, LinkAddress host) =>
        RegistrationPrefix + prefix.ToString() + "/" + host.ToString();

    /// <summary>Parses a registration key; false (with a reason) when it is not one.</summary>
    public static bool TryParseRegistrationKey(string key, out ServicePrefix prefix, out LinkAddress host, out string? error)
    {
        ArgumentNullException.ThrowIfNull(key);
        prefix = default;
        host = LinkAddress.None;
        if (!key.StartsWith(RegistrationPrefix, StringComparison.Ordinal))
        {
            error = "not under " + RegistrationPrefix;
            return false;
        }

        var rest = key.AsSpan(RegistrationPrefix.Length);
        var first = rest.IndexOf('/');
        var second = first < 0 ? -1 : rest[(first + 1)..].IndexOf('/');
        if (second < 0)
        {
            error = "expected reg/ID/bits/host";
            return false;
        }

        second += first + 1;
        if (!ServicePrefix.TryParse(rest[..second], out prefix, out var why))
        {
            error = "bad prefix: " + why;
            return false;
        }

        if (!TryParseAddress(rest[(second + 1)..].ToString(), out host))
        {
            error = "bad host address";
            return false;
        }

        error = null;
        return true;
    }

    /// <summary>The key of a drain of <paramref name="host"/> (port 0: every port), for <paramref name="prefix"/> or all prefixes (null).</summary>
    public static string DrainKey(LinkAddress host, ServicePrefix? prefix) =>
        DrainPrefix + host.ToString() + "/" + (prefix is { } p ? p.ToString() : "*");

    /// <summary>Parses a drain key; false (with a reason) when it is not one.</summary>
    public static bool TryParseDrainKey(string key, out LinkAddress host, out ServicePrefix? prefix, out string? error)
    {
        ArgumentNullException.ThrowIfNull(key);
        host = LinkAddress.None;
        prefix = null;
        if (!key.StartsWith(DrainPrefix, StringComparison.Ordinal))
        {
            error = "not under " + DrainPrefix;
            return false;
        }

        var rest = key[DrainPrefix.Length..];
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0 || !TryParseAddress(rest[..slash], out host))
        {
            error = "expected drain/host/prefix";
            return false;
        }

        var p = rest[(slash + 1)..];
        if (p == "*")
        {
            error = null;
            return true;
        }

        if (!ServicePrefix.TryParse(p, out var parsed, out var why))
        {
            error = "bad prefix: " + why;
            return false;
        }

        prefix = parsed;
        error = null;
        return true;
    }

    /// <summary>The value of a drain entry: which router set it and when.</summary>
    public static string EncodeDrainValue(string router, long atUnixMilliseconds) =>
        Write(w =>
        {
            w.WriteNumber("v", Version);
            w.WriteString("router", router);
            w.WriteNumber("at", atUnixMilliseconds);
        });

    /// <summary>The JSON value of <paramref name="record"/> (its key carries the prefix and host).</summary>
    public static string EncodeValue(RegistryRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        return Write(w =>
        {
            w.WriteNumber("v", Version);
            w.WriteNumber("weight", record.Weight);
            w.WriteBoolean("draining", record.Draining);
            w.WriteNumber("transports", (int)record.Transports);
            w.WriteString("sender", record.Sender.ToString("x16", CultureInfo.InvariantCulture));
            w.WriteString("router", record.Router);
            w.WriteString("epoch", record.RouterEpoch.ToString("x16", CultureInfo.InvariantCulture));
            w.WriteNumber("lease_ms", record.LeaseMilliseconds);
            w.WriteNumber("at", record.WrittenAtUnixMilliseconds);
        });
    }

    /// <summary>Decodes a registration entry; false (with a reason) when the key or value is malformed or of an unknown version.</summary>
    public static bool TryDecode(string key, string value, out RegistryRecord? record, out string? error)
    {
        ArgumentNullException.ThrowIfNull(value);
        record = null;
        if (!TryParseRegistrationKey(key, out var prefix, out var host, out error))
        {
            return false;
        }

        try
        {
            using var doc = JsonDocument.Parse(value);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("v", out var v) || v.GetInt32() != Version)
            {
                error = "unknown value version";
                return false;
            }

            var weight = root.GetProperty("weight").GetUInt32();
            if (weight is 0 or > ControlProtocol.MaxWeight)
            {
                error = "weight out of range";
                return false;
            }

            record = new RegistryRecord
            {
                Prefix = prefix,
                Host = host,
                Weight = weight,
                Draining = root.GetProperty("draining").GetBoolean(),
                Transports = (ServiceTransports)root.GetProperty("transports").GetByte(),
                Sender = ulong.Parse(root.GetProperty("sender").GetString()!, NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                Router = root.GetProperty("router").GetString() ?? "",
                RouterEpoch = ulong.Parse(root.GetProperty("epoch").GetString()!, NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                LeaseMilliseconds = root.GetProperty("lease_ms").GetUInt32(),
                WrittenAtUnixMilliseconds = root.GetProperty("at").GetInt64(),
            };
            return true;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or FormatException or InvalidOperationException or OverflowException or ArgumentNullException)
        {
            error = "malformed value: " + e.Message;
            return false;
        }
    }

    private static bool TryParseAddress(string text, out LinkAddress address)
    {
        try
        {
            address = LinkAddress.Parse(text);
            return !address.IsNone;
        }
        catch (FormatException)
        {
            address = LinkAddress.None;
            return false;
        }
    }

    private static string Write(Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
