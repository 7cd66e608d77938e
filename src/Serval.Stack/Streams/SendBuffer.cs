namespace Serval.Stack.Streams;

/// <summary>
/// The send side's data: the bytes the application wrote and the peer has not acknowledged, the send sequence space
/// (SND.UNA, SND.NXT, the end of the written data) and our FIN's progress (written, sent, acknowledged). Positions count
/// octets from our SYN (position 0), so stream offset <c>k</c> is position <c>k + 1</c>. The peer's window, congestion
/// and retransmission are the connection's and its parts' business.
/// </summary>
internal sealed class SendBuffer(int size)
{
    private readonly ByteRing _ring = new(size);

    /// <summary>SND.UNA as a position: the first octet the peer has not acknowledged.</summary>
    public long Una { get; private set; }

    /// <summary>SND.NXT as a position: the next octet to send for the first time.</summary>
    public long Nxt { get; private set; }

    /// <summary>Stream offset just past the last byte written.</summary>
    public long WriteEnd { get; private set; }

    /// <summary>The application completed its writes: our FIN follows the data.</summary>
    public bool WritesCompleted { get; private set; }

    /// <summary>Our FIN was sent.</summary>
    public bool FinSent { get; private set; }

    /// <summary>Our FIN was acknowledged.</summary>
    public bool FinAcked { get; private set; }

    /// <summary>The buffer's size in bytes.</summary>
    public int Size => size;

    /// <summary>Stream offset of the first byte the peer has not acknowledged.</summary>
    public long AckedDataOffset => Math.Clamp(Una - 1, 0, WriteEnd);

    /// <summary>Bytes written and not acknowledged.</summary>
    public long Buffered => WriteEnd - AckedDataOffset;

    /// <summary>Whether data written was never sent (our FIN not sent yet).</summary>
    public bool HasUnsentData => !FinSent && Nxt < 1 + WriteEnd;

    /// <summary>Bytes written and never sent.</summary>
    public long Unsent => HasUnsentData ? 1 + WriteEnd - Nxt : 0;

    /// <summary>Our FIN is due (writes completed) and was not sent.</summary>
    public bool FinPending => WritesCompleted && !FinSent;

    /// <summary>Everything sent was acknowledged.</summary>
    public bool AllAcknowledged => Una == Nxt;

    /// <summary>Sets the sequence space at the handshake (before our SYN is acknowledged SND.UNA is 0).</summary>
    public void SetSequence(long una, long nxt)
    {
        Una = una;
        Nxt = nxt;
    }

    /// <summary>Appends <paramref name="data"/> (the caller checked the room).</summary>
    public void Write(ReadOnlySpan<byte> data)
    {
        _ring.Write(WriteEnd, data);
        WriteEnd += data.Length;
    }

    /// <summary>No more writes.</summary>
    public void CompleteWrites() => WritesCompleted = true;

    /// <summary>Copies the data at sequence <paramref name="position"/> into <paramref name="destination"/>.</summary>
    public void CopyOut(long position, Span<byte> destination) => _ring.Read(position - 1, destination);

    /// <summary>Copies the data at sequence <paramref name="position"/> into <paramref name="destination"/> and returns its Internet checksum running sum.</summary>
    public ulong CopyOutWithSum(long position, Span<byte> destination) => _ring.ReadWithSum(position - 1, destination);

    /// <summary>A first transmission of <paramref name="length"/> octets of sequence space went out (with our FIN when <paramref name="fin"/>).</summary>
    public void OnTransmitted(int length, bool fin)
    {
        Nxt += length;
        if (fin)
        {
            FinSent = true;
        }
    }

    /// <summary>The cumulative ACK moved to <paramref name="una"/>: the acknowledged bytes are released.</summary>
    public void Acknowledge(long una)
    {
        Una = una;
        _ring.Release(AckedDataOffset);
    }

    /// <summary>Our FIN was acknowledged.</summary>
    public void OnFinAcknowledged() => FinAcked = true;

    /// <summary>Bytes of storage held.</summary>
    public int StorageBytes => _ring.Capacity;

    /// <summary>Whether every byte written was acknowledged and storage is held (it can be given back).</summary>
    public bool CanReleaseStorage => _ring.Capacity > 0 && _ring.IsEmpty;

    /// <summary>Gives the storage back when every byte written was acknowledged; returns the bytes released.</summary>
    public int ReleaseStorage() => _ring.ReleaseStorage();
}
