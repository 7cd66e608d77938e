namespace Serval.Daemon;

/// <summary>servald cannot start: bad configuration, the control socket is in use, a link cannot be bound.</summary>
internal sealed class DaemonException : Exception
{
    public DaemonException(string message)
        : base(message)
    {
    }

    public DaemonException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
