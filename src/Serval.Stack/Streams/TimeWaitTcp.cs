namespace Serval.Stack.Streams;

/// <summary>The transport state a compacted TIME-WAIT flow keeps: enough to acknowledge the peer's retransmitted FIN.</summary>
/// <param name="SndNxt">Our next sequence number on the wire (after our FIN).</param>
/// <param name="RcvNxt">The next sequence number expected from the peer (after its FIN).</param>
/// <param name="Timestamps">Whether timestamps were negotiated.</param>
/// <param name="TimestampOffset">Our timestamp clock's offset.</param>
/// <param name="TimestampRecent">The peer's latest timestamp.</param>
internal readonly record struct TimeWaitTcp(uint SndNxt, uint RcvNxt, bool Timestamps, uint TimestampOffset, uint TimestampRecent);
