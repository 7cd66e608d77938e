using System.Runtime.InteropServices;

namespace Serval.Daemon;

/// <summary>
/// The default path of servald's control socket: <c>$XDG_RUNTIME_DIR/servald.sock</c> when that variable is set,
/// otherwise <c>/tmp/servald-UID.sock</c>. Shared (as a linked source file) by servald and servalctl.
/// </summary>
internal static partial class ControlSocketPath
{
    public static string Default
    {
        get
        {
            var runtimeDir = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
            if (!string.IsNullOrEmpty(runtimeDir))
            {
                return Path.Combine(runtimeDir, "servald.sock");
            }

            var uid = OperatingSystem.IsWindows() ? 0u : GetUid();
            return Path.Combine("/tmp", $"servald-{uid}.sock");
        }
    }

    [LibraryImport("libc", EntryPoint = "getuid")]
    private static partial uint GetUid();
}
