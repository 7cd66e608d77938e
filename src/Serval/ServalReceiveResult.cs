using Serval.Wire;

namespace Serval;

/// <summary>What <see cref="ServalDatagramSocket.ReceiveFromAsync"/> received.</summary>
/// <param name="ReceivedBytes">Bytes copied into the buffer (a longer datagram is truncated).</param>
/// <param name="Source">The sender's serviceID.</param>
/// <param name="SourceAddress">The link address the datagram came from.</param>
public readonly record struct ServalReceiveResult(int ReceivedBytes, ServiceId Source, LinkAddress SourceAddress);
