using Serval.Wire;

namespace Serval.Stack;

/// <summary>A datagram waiting to be read.</summary>
/// <param name="Data">The payload.</param>
/// <param name="SourceService">The sender's serviceID (from the second SERVICE extension).</param>
/// <param name="SourceAddress">The link address it came from.</param>
internal readonly record struct ReceivedDatagram(byte[] Data, ServiceId SourceService, LinkAddress SourceAddress);
