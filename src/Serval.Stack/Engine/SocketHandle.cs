namespace Serval.Stack;

/// <summary>Identifies a socket (listener, connection or datagram socket) of one engine. Never reused by that engine.</summary>
/// <param name="Value">The numeric handle; 0 is "no socket".</param>
public readonly record struct SocketHandle(long Value)
{
    /// <summary>No socket.</summary>
    public static SocketHandle None => default;

    /// <summary>Whether this is <see cref="None"/>.</summary>
    public bool IsNone => Value == 0;

    /// <inheritdoc/>
    public override string ToString() => $"socket#{Value}";
}
