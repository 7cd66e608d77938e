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

    private readonly FreeList _small = new(SmallSize, smallCapacity);
    private readonly FreeList _large = new(LargeSize, largeCapacity);

    /// <summary>A buffer of at least <paramref name="size"/> bytes.</summary>
    public byte[] Rent(int size) =>
        size <= SmallSize ? _small.Rent() : size <= LargeSize ? _large.Rent() : ArrayPool<byte>.Shared.Rent(size);

    /// <summary>Gives back a buffer from <see cref="Rent"/>.</summary>
    public void Return(byte[] buffer)
    {
        if (buffer.Length == SmallSize)
        {
            _small.Return(buffer);
        }
        else if (buffer.Length == LargeSize)
        {
            _large.Return(buffer);
        }
        else
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Buffers of one size, at most <c>capacity</c> kept; rented on one thread, returned on another.</summary>
    private sealed class FreeList(int size, int capacity)
    {
        private readonly ConcurrentQueue<byte[]> _buffers = new();
        private int _count;

        public byte[] Rent()
        {
            if (_buffers.TryDequeue(out var buffer))
            {
                Interlocked.Decrement(ref _count);
                return buffer;
            }

            return new byte[size];
        }

        public void Return(byte[] buffer)
        {
            if (Interlocked.Increment(ref _count) <= capacity)
            {
                _buffers.Enqueue(buffer);
            }
            else
            {
                Interlocked.Decrement(ref _count);
            }
        }
    }
}
