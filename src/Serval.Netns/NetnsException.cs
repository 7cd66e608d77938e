namespace Serval.Netns;

/// <summary>A namespace operation failed; the message carries the command and its error output.</summary>
public sealed class NetnsException : Exception
{
    /// <summary>Creates the exception.</summary>
    public NetnsException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public NetnsException(string message, Exception inner)
        : base(message, inner)
    {
    }

    /// <summary>Creates the exception.</summary>
    public NetnsException()
    {
    }
}
