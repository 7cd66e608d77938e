using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serval.Cli;

/// <summary>One request to servald's control socket: a JSON line out, a JSON line back (docs/servald.md).</summary>
internal static class ControlClient
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);

    /// <summary>Sends <paramref name="request"/> and returns the response when it says <c>"ok":true</c>.</summary>
    /// <exception cref="ControlException">servald is not reachable, or it answered with an error.</exception>
    public static JsonObject Send(string socketPath, JsonObject request)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.ReceiveTimeout = socket.SendTimeout = (int)s_timeout.TotalMilliseconds;
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(socketPath));
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AccessDenied)
        {
            throw new ControlException($"permission denied on {socketPath}: the control socket is only open to servald's user");
        }
        catch (SocketException e)
        {
            var why = File.Exists(socketPath) ? e.Message : "no such socket";
            throw new ControlException($"cannot reach servald at {socketPath}: {why} (is servald running? pick another with --socket)");
        }
        catch (UnauthorizedAccessException)
        {
            throw new ControlException($"permission denied on {socketPath}: the control socket is only open to servald's user");
        }

        string? line;
        try
        {
            using var stream = new NetworkStream(socket, ownsSocket: false);
            var bytes = Encoding.UTF8.GetBytes(request.ToJsonString() + "\n");
            stream.Write(bytes);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            line = reader.ReadLine();
        }
        catch (IOException e)
        {
            throw new ControlException($"servald at {socketPath} did not answer: {e.Message}");
        }

        JsonObject response;
        try
        {
            response = line is null ? throw new ControlException($"servald at {socketPath} closed the connection without answering")
                : JsonNode.Parse(line) as JsonObject ?? throw new ControlException($"servald at {socketPath} sent something other than a JSON object");
        }
        catch (JsonException e)
        {
            throw new ControlException($"servald at {socketPath} sent malformed JSON: {e.Message}");
        }

        if (response["ok"]?.GetValue<bool>() != true)
        {
            throw new ControlException((string?)response["message"] ?? "servald refused the request");
        }

        return response;
    }
}
