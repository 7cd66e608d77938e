using Serval.Wire;

namespace Serval.Runtime;

/// <summary>A received packet waiting for the engine thread (the buffer is rented from the shared pool).</summary>
internal readonly record struct InboundPacket(int Interface, LinkAddress Source, LinkAddress Destination, byte[] Buffer, int Length, int HopLimit);
