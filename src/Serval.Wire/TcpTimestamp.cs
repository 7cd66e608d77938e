namespace Serval.Wire;

/// <summary>The TCP timestamps option (RFC 7323 §3).</summary>
/// <param name="Value">TSval: the sender's clock.</param>
/// <param name="EchoReply">TSecr: the most recent TSval received from the peer.</param>
public readonly record struct TcpTimestamp(uint Value, uint EchoReply);
