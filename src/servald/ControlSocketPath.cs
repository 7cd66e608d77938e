namespace Serval.Daemon;

/// <summary>
/// The default path of servald's control socket: <c>$XDG_RUNTIME_DIR/servald.sock</c> when that variable is set,
/// otherwise <c>/tmp/servald-UID.sock</c> (<see cref="ServalHost.DefaultDaemonSocketPath"/>, which attached
/// applications use too). Shared (as a linked source file) by servald and servalctl.
/// </summary>
internal static class ControlSocketPath
{
    public static string Default => ServalHost.DefaultDaemonSocketPath;
}
