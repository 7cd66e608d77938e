using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Serval.Daemon;

/// <summary>An attached application: the process at the other end of its Unix connection (SO_PEERCRED).</summary>
/// <param name="Pid">Its process id.</param>
/// <param name="Name">Its program: <c>/proc/PID/comm</c>, or for <c>dotnet app.dll</c> the assembly's name.</param>
internal sealed record AppIdentity(int Pid, string Name)
{
    /// <summary>The process at the other end of a connected Unix socket, or null where the kernel does not say (not Linux).</summary>
    public static AppIdentity? Of(Socket socket)
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        try
        {
            // struct ucred { pid_t pid; uid_t uid; gid_t gid; } for SOL_SOCKET (1), SO_PEERCRED (17).
            Span<byte> credentials = stackalloc byte[12];
            if (socket.GetRawSocketOption(1, 17, credentials) < 4)
            {
                return null;
            }

            var pid = BitConverter.ToInt32(credentials);
            return pid > 0 ? new AppIdentity(pid, ProgramName(pid)) : null;
        }
        catch (Exception e) when (e is SocketException or PlatformNotSupportedException or ObjectDisposedException)
        {
            return null;
        }
    }

    /// <summary>The JSON form in <c>flows.list</c>: <c>{"pid":N,"name":"…"}</c>.</summary>
    public JsonObject ToJson() => new() { ["pid"] = Pid, ["name"] = Name };

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Name}[{Pid}]");

    private static string ProgramName(int pid)
    {
        try
        {
            var comm = File.ReadAllText($"/proc/{pid}/comm").Trim();
            if (comm != "dotnet")
            {
                return comm;
            }

            // "dotnet path/app.dll …": the application's name rather than the host's.
            var arguments = File.ReadAllText($"/proc/{pid}/cmdline", Encoding.UTF8).Split('\0', StringSplitOptions.RemoveEmptyEntries);
            var dll = arguments.Skip(1).FirstOrDefault(a => a.EndsWith(".dll", StringComparison.OrdinalIgnoreCase));
            return dll is null ? comm : Path.GetFileNameWithoutExtension(dll);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "?";
        }
    }
}

/// <summary>
/// Which attached application opened each engine socket (by socket handle, as <c>flows.list</c> shows it): recorded by
/// <see cref="AppServer"/> when it opens a connection or datagram socket for an application, removed when it closes.
/// </summary>
internal sealed class FlowOwners
{
    private readonly ConcurrentDictionary<long, AppIdentity> _owners = new();

    public void Add(long socket, AppIdentity owner) => _owners[socket] = owner;

    public void Remove(long socket) => _owners.TryRemove(socket, out _);

    public AppIdentity? Find(long socket) => _owners.TryGetValue(socket, out var owner) ? owner : null;
}
