using Serval.Wire;

namespace Serval.Stack.Streams;

/// <summary>
/// A bounded byte store addressed by absolute stream offsets: it holds the window
/// [<see cref="Base"/>, <see cref="Base"/> + <see cref="Limit"/>). The backing array is a power of two that grows
/// geometrically on demand up to the limit (so an idle connection does not pin its full buffer), and never
/// shrinks; steady-state use allocates nothing.
/// </summary>
internal sealed class ByteRing
{
    internal const int InitialCapacity = 16 * 1024;

    private byte[] _storage = [];
    private int _mask = -1;
    private long _highWater;

    /// <summary>Creates an empty ring that can hold up to <paramref name="limit"/> bytes.</summary>
    public ByteRing(int limit)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        Limit = limit;
    }

    /// <summary>Largest number of bytes the ring holds.</summary>
    public int Limit { get; }

    /// <summary>Offset of the first byte held.</summary>
    public long Base { get; private set; }

    /// <summary>Bytes of backing storage currently allocated.</summary>
    public int Capacity => _storage.Length;

    /// <summary>Copies <paramref name="data"/> to <paramref name="offset"/> (within the window).</summary>
    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return;
        }

        var end = offset + data.Length;
        if (offset < Base || end > Base + Limit)
        {
            throw new ArgumentOutOfRangeException(nameof(offset));
        }

        EnsureCapacity((int)(end - Base));
        var start = (int)(offset & _mask);
        var first = Math.Min(data.Length, _storage.Length - start);
        data[..first].CopyTo(_storage.AsSpan(start));
        if (first < data.Length)
        {
            data[first..].CopyTo(_storage);
        }

        if (end > _highWater)
        {
            _highWater = end;
        }
    }

    /// <summary>Copies the bytes at <paramref name="offset"/> into <paramref name="destination"/>.</summary>
    public void Read(long offset, Span<byte> destination)
    {
        if (destination.IsEmpty)
        {
            return;
        }

        if (offset < Base || offset + destination.Length > Base + _storage.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset));
        }

        var start = (int)(offset & _mask);
        var first = Math.Min(destination.Length, _storage.Length - start);
        _storage.AsSpan(start, first).CopyTo(destination);
        if (first < destination.Length)
        {
            _storage.AsSpan(0, destination.Length - first).CopyTo(destination[first..]);
        }
    }

    /// <summary>
    /// Copies the bytes at <paramref name="offset"/> into <paramref name="destination"/> and returns their Internet
    /// checksum running sum (as <see cref="InternetChecksum.Add(ulong, ReadOnlySpan{byte})"/> over
    /// <paramref name="destination"/> would), computed during the copy.
    /// </summary>
    public ulong ReadWithSum(long offset, Span<byte> destination)
    {
        if (destination.IsEmpty)
        {
            return 0;
        }

        if (offset < Base || offset + destination.Length > Base + _storage.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset));
        }

        var start = (int)(offset & _mask);
        var first = Math.Min(destination.Length, _storage.Length - start);
        var sum = InternetChecksum.CopyAndAdd(0, _storage.AsSpan(start, first), destination);
        if (first < destination.Length)
        {
            var rest = InternetChecksum.CopyAndAdd(0, _storage.AsSpan(0, destination.Length - first), destination[first..]);
            // A piece that starts at an odd offset of the payload contributes its sum byte-swapped (RFC 1071 §2(B)).
            sum += (first & 1) == 0 ? rest : System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(InternetChecksum.Fold(rest));
        }

        return sum;
    }

    /// <summary>Forgets every byte before <paramref name="newBase"/>, making room at the end.</summary>
    public void Release(long newBase)
    {
        if (newBase > Base)
        {
            Base = newBase;
            if (_highWater < Base)
            {
                _highWater = Base;
            }
        }
    }

    /// <summary>Whether no byte is held: every byte written was released.</summary>
    public bool IsEmpty => _highWater <= Base;

    /// <summary>
    /// Gives the backing storage back when no byte is held (an idle connection); the next write allocates it again,
    /// starting small. Returns the bytes released.
    /// </summary>
    public int ReleaseStorage()
    {
        if (!IsEmpty || _storage.Length == 0)
        {
            return 0;
        }

        var released = _storage.Length;
        _storage = [];
        _mask = -1;
        return released;
    }

    /// <summary>Forgets everything and moves the window to start at <paramref name="newBase"/>.</summary>
    public void Reset(long newBase)
    {
        Base = newBase;
        _highWater = newBase;
    }

    private void EnsureCapacity(int needed)
    {
        if (needed <= _storage.Length)
        {
            return;
        }

        var size = (int)Math.Min(
            (long)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(needed, InitialCapacity)),
            (long)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Limit));
        var grown = new byte[size];
        var live = (int)(_highWater - Base);
        if (live > 0 && _storage.Length > 0)
        {
            // Copy the live bytes from the old layout into the new one, preserving offset & mask addressing.
            var newMask = size - 1;
            for (long o = Base; o < _highWater;)
            {
                var from = (int)(o & _mask);
                var to = (int)(o & newMask);
                var n = (int)Math.Min(_highWater - o, Math.Min(_storage.Length - from, size - to));
                _storage.AsSpan(from, n).CopyTo(grown.AsSpan(to));
                o += n;
            }
        }

        _storage = grown;
        _mask = size - 1;
    }
}
