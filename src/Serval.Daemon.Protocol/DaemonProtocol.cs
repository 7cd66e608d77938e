using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Serval.Stack;
using Serval.Wire;

namespace Serval.Daemon.Protocol;

/// <summary>Frame types of the application protocol between an attached <c>ServalHost</c> and servald (docs/daemon-mode.md).</summary>
public enum FrameType : byte
{
    /// <summary>No frame: the peer closed the channel.</summary>
    None = 0,

    /// <summary>A JSON request (the first frame of a channel, or a session request).</summary>
    Request = 0x01,

    /// <summary>A JSON reply: <c>{"ok":true,…}</c> or <c>{"ok":false,"error":ERROR}</c>.</summary>
    Reply = 0x02,

    /// <summary>Stream bytes, or one datagram of a connected datagram flow (both directions).</summary>
    Data = 0x10,

    /// <summary>The application finished writing (app to daemon).</summary>
    CompleteWrites = 0x11,

    /// <summary>The application aborts the connection (app to daemon).</summary>
    Abort = 0x12,

    /// <summary>The application closes the connection gracefully (app to daemon); the channel ends after it.</summary>
    Close = 0x13,

    /// <summary>The peer finished writing: end of stream (daemon to app).</summary>
    EndOfStream = 0x14,

    /// <summary>Reading failed; payload is an ERROR (daemon to app).</summary>
    ReadFailed = 0x15,

    /// <summary>The write side closed; empty payload = success, else an ERROR (daemon to app).</summary>
    WritesClosed = 0x16,

    /// <summary>A stream write failed; later writes fail with this ERROR (daemon to app).</summary>
    WriteFailed = 0x17,

    /// <summary>The result of one datagram send; empty = sent, else an ERROR (daemon to app).</summary>
    SendResult = 0x18,

    /// <summary>An unconnected datagram: 32-byte destination serviceID, then the datagram (app to daemon).</summary>
    SendTo = 0x20,

    /// <summary>A received unconnected datagram: 32-byte source serviceID, 1-byte address length, address text, datagram (daemon to app).</summary>
    ReceivedFrom = 0x21,
}

/// <summary>Constants and JSON helpers of the application protocol.</summary>
public static class DaemonProtocol
{
    /// <summary>The first bytes an application sends on every connection: a byte no JSON line starts with, "SV", version 1.</summary>
    public static ReadOnlySpan<byte> Magic => [0xA5, (byte)'S', (byte)'V', 1];

    /// <summary>The first byte of <see cref="Magic"/>: how the control socket tells an application from a JSON control client.</summary>
    public const byte MagicByte = 0xA5;

    /// <summary>Frame header: 4-byte little-endian length of (type + payload), 1-byte type.</summary>
    public const int HeaderSize = 5;

    /// <summary>The largest payload of a data frame (writes are split into frames of at most this).</summary>
    public const int MaxDataChunk = 64 * 1024;

    /// <summary>The largest frame accepted (JSON replies such as a flow list may exceed a data chunk).</summary>
    public const int MaxFrame = 16 * 1024 * 1024;

    /// <summary>The JSON options of requests and replies: web defaults, enums as names, serviceIDs, prefixes and link addresses as text, flowIDs and socket handles as numbers.</summary>
    public static JsonSerializerOptions Json { get; } = CreateOptions();

    private static JsonSerializerOptions CreateOptions()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        o.Converters.Add(new ServiceIdConverter());
        o.Converters.Add(new ServicePrefixConverter());
        o.Converters.Add(new LinkAddressConverter());
        o.Converters.Add(new FlowIdConverter());
        o.Converters.Add(new SocketHandleConverter());
        o.Converters.Add(new JsonStringEnumConverter());
        return o;
    }

    /// <summary>A successful reply: <c>{"ok":true}</c>, to which the operation adds its fields.</summary>
    public static JsonObject Ok() => new() { ["ok"] = true };

    /// <summary>A failed reply: <c>{"ok":false,"error":ERROR}</c> for <paramref name="e"/>.</summary>
    public static JsonObject Fail(Exception e) => new() { ["ok"] = false, ["error"] = Error(e) };

    /// <summary>ERROR: <c>{"kind":…,"code":…,"message":…}</c>, kind one of serval, disposed, invalid, argument, unsupported, canceled, other.</summary>
    public static JsonObject Error(Exception e) => e switch
    {
        ServalException s => new() { ["kind"] = "serval", ["code"] = s.Error.ToString(), ["message"] = s.Message },
        ObjectDisposedException d => new() { ["kind"] = "disposed", ["code"] = d.ObjectName, ["message"] = d.Message },
        ArgumentException a => new() { ["kind"] = "argument", ["code"] = a.ParamName, ["message"] = a.Message },
        NotSupportedException n => new() { ["kind"] = "unsupported", ["message"] = n.Message },
        InvalidOperationException i => new() { ["kind"] = "invalid", ["message"] = i.Message },
        OperationCanceledException c => new() { ["kind"] = "canceled", ["message"] = c.Message },
        _ => new() { ["kind"] = "other", ["message"] = e.Message },
    };

    /// <summary>The exception an ERROR object stands for.</summary>
    public static Exception ToException(JsonNode? error)
    {
        var kind = (string?)error?["kind"];
        var code = (string?)error?["code"];
        var message = (string?)error?["message"] ?? "The Serval daemon reported an error.";
        return kind switch
        {
            "serval" => new ServalException(Enum.TryParse<ServalError>(code, out var c) ? c : ServalError.InvalidState, message),
            "disposed" => new ObjectDisposedException(code, message),
            "argument" => new ArgumentException(message, code),
            "unsupported" => new NotSupportedException(message),
            "invalid" => new InvalidOperationException(message),
            "canceled" => new OperationCanceledException(message),
            _ => new ServalException(ServalError.InvalidState, message),
        };
    }

    /// <summary>A request or reply as UTF-8 JSON (a frame's payload).</summary>
    public static byte[] Serialize(JsonObject o) => JsonSerializer.SerializeToUtf8Bytes(o, Json);

    /// <summary>A request or reply from a frame's payload.</summary>
    /// <exception cref="InvalidDataException">The payload is JSON but not an object.</exception>
    public static JsonObject Parse(ReadOnlySpan<byte> utf8) =>
        JsonNode.Parse(utf8) as JsonObject ?? throw new InvalidDataException("A request or reply must be a JSON object.");

    /// <summary>A value as a JSON node with the protocol's converters.</summary>
    public static JsonNode? ToNode<T>(T value) => JsonSerializer.SerializeToNode(value, Json);

    /// <summary>A value from a JSON node with the protocol's converters; default for a missing node.</summary>
    public static T? FromNode<T>(JsonNode? node) => node is null ? default : node.Deserialize<T>(Json);

    /// <summary>Writes an ERROR as a frame payload.</summary>
    public static byte[] ErrorPayload(Exception e) => JsonSerializer.SerializeToUtf8Bytes(Error(e), Json);

    /// <summary>The exception an ERROR frame payload stands for.</summary>
    public static Exception ErrorFromPayload(ReadOnlySpan<byte> payload) => ToException(JsonNode.Parse(payload));

    /// <summary>Writes a received datagram as a <see cref="FrameType.ReceivedFrom"/> payload (daemon side).</summary>
    public static byte[] EncodeReceivedFrom(ServiceId source, LinkAddress address, ReadOnlySpan<byte> datagram)
    {
        var text = address.ToString();
        var payload = new byte[ServiceId.Size + 1 + text.Length + datagram.Length];
        source.WriteTo(payload);
        payload[ServiceId.Size] = checked((byte)text.Length);
        Encoding.ASCII.GetBytes(text, payload.AsSpan(ServiceId.Size + 1));
        datagram.CopyTo(payload.AsSpan(ServiceId.Size + 1 + text.Length));
        return payload;
    }

    /// <summary>Reads a <see cref="FrameType.ReceivedFrom"/> payload (application side): the source, its address and the datagram.</summary>
    public static ServiceId DecodeReceivedFrom(ReadOnlySpan<byte> payload, out LinkAddress address, out ReadOnlySpan<byte> datagram)
    {
        var source = ServiceId.Read(payload);
        var addressLength = payload[ServiceId.Size];
        var text = Encoding.ASCII.GetString(payload.Slice(ServiceId.Size + 1, addressLength));
        address = text == "-" ? LinkAddress.None : LinkAddress.Parse(text);
        datagram = payload[(ServiceId.Size + 1 + addressLength)..];
        return source;
    }

    private sealed class ServiceIdConverter : JsonConverter<ServiceId>
    {
        public override ServiceId Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            ServiceId.Parse(reader.GetString() ?? throw new JsonException("a serviceID is a string"), CultureInfo.InvariantCulture);

        public override void Write(Utf8JsonWriter writer, ServiceId value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
    }

    private sealed class ServicePrefixConverter : JsonConverter<ServicePrefix>
    {
        public override ServicePrefix Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            ServicePrefix.Parse(reader.GetString() ?? throw new JsonException("a prefix is a string"), CultureInfo.InvariantCulture);

        public override void Write(Utf8JsonWriter writer, ServicePrefix value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
    }

    private sealed class LinkAddressConverter : JsonConverter<LinkAddress>
    {
        public override LinkAddress Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            reader.GetString() is { } s && s != "-" ? LinkAddress.Parse(s) : LinkAddress.None;

        public override void Write(Utf8JsonWriter writer, LinkAddress value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
    }

    private sealed class FlowIdConverter : JsonConverter<FlowId>
    {
        public override FlowId Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => new(reader.GetUInt32());

        public override void Write(Utf8JsonWriter writer, FlowId value, JsonSerializerOptions options) => writer.WriteNumberValue(value.Value);
    }

    private sealed class SocketHandleConverter : JsonConverter<SocketHandle>
    {
        public override SocketHandle Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => new(reader.GetInt64());

        public override void Write(Utf8JsonWriter writer, SocketHandle value, JsonSerializerOptions options) => writer.WriteNumberValue(value.Value);
    }
}
