using System.Buffers;
using System.Collections.Concurrent;

namespace Serval.Runtime;

/// <summary>
/// The buffers of the inbound queue (docs/runtime.md, "One engine, one thread"): rented on a link's receive thread,
/// returned on the engine thread. <see cref="ArrayPool{T}.Shared"/> keeps only a few arrays per thread and per core,
/// so with thousands of packets queued it allocates on one thread what the other then drops; these free lists keep
/// every buffer the backlog needed, in two sizes (small packets such as first packets and acknowledgements, and
/// packets up to a common MTU), so that a steady stream of received packets allocates nothing. Larger packets (GRO
/// batches, jumbo MTUs) use the shared pool.
/// </summary>
internal sealed class InboundBufferPool(int smallCapacity, int largeCapacity)
{
    /// <summary>Size of a small buffer: headroom plus a 192-byte packet.</summary>
    public const int SmallSize = 256;

    /// <summary>Size of a large buffer: headroom plus a 2048-byte packet.</summary>
    public const int LargeSize = 2048 + 64;

    private readonly ConcurrentQueue<byte[]> _small = new();
    private readonly ConcurrentQueue<byte[]> _large = new();
    private int _smallCount;
    private int _largeCount;

    /// <summary>A buffer of at least <paramref name="size"/> bytes.</summary>
    public byte[] Rent(int size)
    {
        if (size <= SmallSize)
        {
            if (_small.TryDequeue(out var b))
            {
                Interlocked.Decrement(ref _smallCount);
                return b;
            }

            return new byte[SmallSize];
        }

        if (size <= LargeSize)
        {
            if (_large.TryDequeue(out var b))
            {
                Interlocked.Decrement(ref _largeCount);
                return b;
            }

            return new byte[LargeSize];
        }

        return ArrayPool<byte>.Shared.Rent(size);
    }

    /// <summary>Gives back a buffer from <see cref="Rent"/>.</summary>
    public void Return(byte[] buffer)
    {
        if (buffer.Length == SmallSize)
        {
            if (Interlocked.Increment(ref _smallCount) <= smallCapacity)
            {
                _small.Enqueue(buffer);
            }
            else
            {
                Interlocked.Decrement(ref _smallCount);
            }
        }
        else if (buffer.Length == LargeSize)
        {
            if (Interlocked.Increment(ref _largeCount) <= largeCapacity)
            {
                _large.Enqueue(buffer);
            }
            else
            {
                Interlocked.Decrement(ref _largeCount);
            }
        }
        else
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
