using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Serval.Netns;

/// <summary>
/// A Linux network namespace created for one test or benchmark and deleted on disposal, together with every process
/// started in it. Names are unique (<c>sv-&lt;tag&gt;-&lt;random&gt;</c>) so parallel runs never collide. Needs root
/// (see <see cref="IsSupported"/>); every operation throws <see cref="NetnsException"/> with the command's output when
/// it fails.
/// </summary>
public sealed partial class NetNamespace : IAsyncDisposable
{
    private readonly List<Process> _processes = [];
    private int _disposed;

    private NetNamespace(string name) => Name = name;

    /// <summary>The namespace's name (as in <c>ip netns list</c>).</summary>
    public string Name { get; }

    /// <summary>
    /// True when namespaces can be created here: Linux, effective user root and the <c>ip</c> tool present.
    /// </summary>
    public static bool IsSupported => OperatingSystem.IsLinux() && geteuid() == 0 && FindIp() is not null;

    /// <summary>The reason <see cref="IsSupported"/> is false, for skip messages; null when supported.</summary>
    public static string? UnsupportedReason =>
        !OperatingSystem.IsLinux() ? "network namespaces need Linux"
        : geteuid() != 0 ? "network namespaces need root (run the tests as root to include this test)"
        : FindIp() is null ? "the ip tool (iproute2) is not installed"
        : null;

    /// <summary>Creates a namespace with its loopback interface up.</summary>
    /// <param name="tag">A short readable tag (letters and digits, at most 8 characters).</param>
    public static NetNamespace Create(string tag)
    {
        ArgumentException.ThrowIfNullOrEmpty(tag);
        if (tag.Length > 8 || !tag.All(char.IsAsciiLetterOrDigit))
        {
            throw new ArgumentException("tag must be 1-8 ASCII letters or digits", nameof(tag));
        }

        if (UnsupportedReason is { } reason)
        {
            throw new NetnsException(reason);
        }

        var name = $"sv-{tag}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}";
        IpRoot("netns", "add", name);
        var ns = new NetNamespace(name);
        try
        {
            ns.Ip("link", "set", "lo", "up");
        }
        catch
        {
            TryIp("netns", "del", name);
            throw;
        }

        return ns;
    }

    /// <summary>Runs <c>ip -n NAME args…</c> in this namespace; returns its standard output.</summary>
    public string Ip(params string[] args) => IpRoot(["-n", Name, .. args]);

    /// <summary>Runs a command inside the namespace (<c>ip netns exec</c>) and waits for it; returns its output.</summary>
    public string Exec(string fileName, params string[] args) => Run(FindIp()!, ["netns", "exec", Name, fileName, .. args]);

    /// <summary>Writes a sysctl inside the namespace, e.g. <c>net.ipv4.ip_forward</c> = <c>1</c>.</summary>
    public void Sysctl(string key, string value) => Exec("sysctl", "-q", "-w", $"{key}={value}");

    /// <summary>Adds an address (CIDR form) to an interface of this namespace and sets the interface up.</summary>
    public void AddAddress(string device, string cidr)
    {
        Ip("addr", "add", cidr, "dev", device);
        Ip("link", "set", device, "up");
    }

    /// <summary>Sets an interface of this namespace up or down.</summary>
    public void SetLink(string device, bool up) => Ip("link", "set", device, up ? "up" : "down");

    /// <summary>Adds a route in this namespace, e.g. <c>("10.9.2.0/24", "10.9.1.1")</c>.</summary>
    public void AddRoute(string destination, string via) => Ip("route", "add", destination, "via", via);

    /// <summary>
    /// Runs several <c>ip</c> commands (e.g. <c>addr add 10.0.0.1/24 dev e0</c>) in this namespace with one
    /// <c>ip -batch</c>: one process, the changes back to back.
    /// </summary>
    public void IpBatch(params string[] commands)
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllLines(file, commands);
            Ip("-batch", file);
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>
    /// Renumbers <paramref name="device"/>: removes <paramref name="fromCidr"/>, adds <paramref name="toCidr"/> and
    /// points the default route at <paramref name="gateway"/>, in one <see cref="IpBatch"/>.
    /// </summary>
    public void ReplaceAddress(string device, string fromCidr, string toCidr, string gateway) =>
        IpBatch($"addr del {fromCidr} dev {device}", $"addr add {toCidr} dev {device}", $"route replace default via {gateway}");

    /// <summary>Adds <paramref name="cidr"/> to <paramref name="device"/> with a default route through <paramref name="gateway"/>, in one <see cref="IpBatch"/>.</summary>
    public void AddAddressWithDefaultRoute(string device, string cidr, string gateway) =>
        IpBatch($"addr add {cidr} dev {device}", $"route replace default via {gateway}");

    /// <summary>
    /// Starts a process inside the namespace. The process replaces <c>ip netns exec</c>, so its id is the program's
    /// own; it is killed (by that id) when the namespace is disposed unless it ended before. Output is redirected;
    /// read it with the returned process's streams or call <see cref="Process.BeginOutputReadLine"/>.
    /// </summary>
    public Process Start(string fileName, IEnumerable<string> args, IDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(FindIp()!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in (string[])["netns", "exec", Name, fileName, .. args])
        {
            info.ArgumentList.Add(a);
        }

        if (environment is not null)
        {
            foreach (var (k, v) in environment)
            {
                info.Environment[k] = v;
            }
        }

        var p = Process.Start(info) ?? throw new NetnsException($"could not start {fileName} in {Name}");
        lock (_processes)
        {
            _processes.Add(p);
        }

        return p;
    }

    /// <summary>
    /// Runs <paramref name="action"/> on a new thread that has entered this namespace, and returns its result. Sockets
    /// created by the action belong to the namespace for their whole life, whichever thread uses them afterwards —
    /// this is how one test process can own hosts in several namespaces.
    /// </summary>
    public T Invoke<T>(Func<T> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        T result = default!;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var handle = File.OpenHandle($"/run/netns/{Name}", FileMode.Open, FileAccess.Read);
                if (setns((int)handle.DangerousGetHandle(), CloneNewNet) != 0)
                {
                    throw new NetnsException($"setns({Name}) failed: errno {Marshal.GetLastPInvokeError()}");
                }

                result = action();
            }
            catch (Exception e)
            {
                error = e;
            }

            // The thread ends here: nothing else ever runs in the entered namespace on it.
        })
        { IsBackground = true, Name = $"netns {Name}" };
        thread.Start();
        thread.Join();
        if (error is not null)
        {
            throw new NetnsException($"action in namespace {Name} failed: {error.Message}", error);
        }

        return result;
    }

    /// <summary>Kills (by id) the processes started in the namespace that are still running, then deletes it.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Process[] processes;
        lock (_processes)
        {
            processes = [.. _processes];
        }

        foreach (var p in processes)
        {
            try
            {
                if (!p.HasExited)
                {
                    p.Kill(entireProcessTree: true);
                    using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                    await p.WaitForExitAsync(cts.Token).ConfigureAwait(false);
                }
            }
            catch (Exception e) when (e is InvalidOperationException or OperationCanceledException or System.ComponentModel.Win32Exception)
            {
                // Already gone, or not reaped in time: deleting the namespace below still happens.
            }
            finally
            {
                p.Dispose();
            }
        }

        TryIp("netns", "del", Name);
    }

    /// <inheritdoc/>
    public override string ToString() => Name;

    internal static string IpRoot(params string[] args) => Run(FindIp() ?? throw new NetnsException("ip (iproute2) not found"), args);

    internal static bool TryIp(params string[] args)
    {
        try
        {
            IpRoot(args);
            return true;
        }
        catch (NetnsException)
        {
            return false;
        }
    }

    private static string Run(string fileName, string[] args)
    {
        var info = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info) ?? throw new NetnsException($"could not start {fileName}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(30_000))
        {
            p.Kill(entireProcessTree: true);
            throw new NetnsException($"{fileName} {string.Join(' ', args)}: timed out");
        }

        if (p.ExitCode != 0)
        {
            throw new NetnsException($"{fileName} {string.Join(' ', args)}: exit {p.ExitCode}: {stderr.Result.Trim()}");
        }

        return stdout.Result;
    }

    private static string? FindIp()
    {
        foreach (var dir in (string[])["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        {
            var path = Path.Combine(dir, "ip");
            if (File.Exists(path))
            {
                return path;
            }
        }

        return null;
    }

    private const int CloneNewNet = 0x40000000;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setns(int fd, int nstype);

    [LibraryImport("libc")]
    private static partial uint geteuid();
}
