namespace Serval.Stack.Tests.Streams;

/// <summary>Something a simulated link delivers packets to.</summary>
internal interface IPacketSink
{
    void Receive(TimeSpan now, ReadOnlySpan<byte> packet);
}
