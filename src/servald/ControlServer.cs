using System.Net.Sockets;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace Serval.Daemon;

/// <summary>
/// The control endpoint: a Unix domain socket (mode 0600) speaking newline-delimited JSON, one response line per
/// request line (docs/servald.md). Each connection is served on its own task; requests go to a <see cref="ControlHandler"/>.
/// </summary>
internal sealed partial class ControlServer : IAsyncDisposable
{
    private static readonly JsonSerializerOptions s_json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private readonly Socket _listener;
    private readonly ControlHandler _handler;
    private readonly AppServer? _apps;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _acceptLoop;

    private ControlServer(string path, Socket listener, ControlHandler handler, AppServer? apps, ILogger logger)
    {
        Path = path;
        _listener = listener;
        _handler = handler;
        _apps = apps;
        _logger = logger;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public string Path { get; }

    /// <summary>
    /// Binds <paramref name="path"/> (removing a stale socket left by a dead daemon) and starts serving; connections
    /// that start with the application preamble go to <paramref name="apps"/> (docs/daemon-mode.md).
    /// </summary>
    /// <exception cref="DaemonException">Another daemon serves that path, or it cannot be bound.</exception>
    public static ControlServer Start(string path, ControlHandler handler, ILogger logger, AppServer? apps = null)
    {
        if (File.Exists(path))
        {
            if (IsAlive(path))
            {
                throw new DaemonException($"another servald is already listening on {path}");
            }

            File.Delete(path);
        }

        var dir = System.IO.Path.GetDirectoryName(path);
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }

        // Bound under a temporary name, restricted to mode 0600, listening, and only then renamed into place: the
        // path never exists with the default (umask) mode, and a client that finds it can connect.
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        var temporary = $"{path}.{Environment.ProcessId}.tmp";
        try
        {
            File.Delete(temporary);
            listener.Bind(new UnixDomainSocketEndPoint(temporary));
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            listener.Listen(16);
            File.Move(temporary, path, overwrite: true);
        }
        catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException)
        {
            listener.Dispose();
            try
            {
                File.Delete(temporary);
            }
            catch (IOException)
            {
            }

            throw new DaemonException($"cannot listen on control socket {path}: {e.Message}", e);
        }

        return new ControlServer(path, listener, handler, apps, logger);
    }

    private static bool IsAlive(string path)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(Socket client)
    {
        try
        {
            if (_apps is not null)
            {
                // An attached application starts with a byte no JSON request line starts with.
                var first = new byte[1];
                var n = await client.ReceiveAsync(first, SocketFlags.Peek, _stop.Token).ConfigureAwait(false);
                if (n == 1 && first[0] == Protocol.DaemonProtocol.MagicByte)
                {
                    await _apps.ServeAsync(client).ConfigureAwait(false);
                    return;
                }
            }

            await using var stream = new NetworkStream(client, ownsSocket: true);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            await using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { NewLine = "\n", AutoFlush = true };
            while (await reader.ReadLineAsync(_stop.Token).ConfigureAwait(false) is { } line)
            {
                if (line.Length == 0)
                {
                    continue;
                }

                JsonObject response;
                try
                {
                    response = JsonNode.Parse(line) is JsonObject request
                        ? await _handler.HandleAsync(request, _stop.Token).ConfigureAwait(false)
                        : ControlHandler.Error("bad_request", "a request is a JSON object");
                }
                catch (JsonException e)
                {
                    response = ControlHandler.Error("bad_request", $"not JSON: {e.Message}");
                }

                await writer.WriteLineAsync(response.ToJsonString(s_json)).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
            ClientGone(_logger, e.Message);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        try
        {
            File.Delete(Path);
        }
        catch (IOException)
        {
        }

        _stop.Dispose();
    }

    [LoggerMessage(EventId = 10, Level = LogLevel.Debug, Message = "control client gone: {Reason}")]
    private static partial void ClientGone(ILogger logger, string reason);
}
