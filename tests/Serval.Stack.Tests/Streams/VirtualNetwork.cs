using System.Buffers;

namespace Serval.Stack.Tests.Streams;

/// <summary>The event queue of a simulation on virtual time: packets in flight, ordered by arrival.</summary>
internal sealed class VirtualNetwork
{
    private readonly PriorityQueue<Delivery, (long Ticks, long Order)> _queue = new();
    private long _order;

    public long PacketsDelivered { get; private set; }

    public TimeSpan? NextEvent => _queue.TryPeek(out _, out var p) ? TimeSpan.FromTicks(p.Ticks) : null;

    public void Schedule(TimeSpan at, IPacketSink sink, ReadOnlySpan<byte> packet)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(packet.Length);
        packet.CopyTo(buffer);
        _queue.Enqueue(new Delivery(sink, buffer, packet.Length), (at.Ticks, _order++));
    }

    /// <summary>Delivers every packet due by <paramref name="now"/>.</summary>
    public void DeliverDue(TimeSpan now)
    {
        while (_queue.TryPeek(out var d, out var p) && p.Ticks <= now.Ticks)
        {
            _queue.Dequeue();
            PacketsDelivered++;
            d.Sink.Receive(now, d.Buffer.AsSpan(0, d.Length));
            ArrayPool<byte>.Shared.Return(d.Buffer);
        }
    }

    private readonly record struct Delivery(IPacketSink Sink, byte[] Buffer, int Length);
}
