using Serval.Wire;

namespace Serval.Links;

/// <summary>
/// The pure part of UDP segmentation offload: which queued datagrams can leave as one GSO send (<c>UDP_SEGMENT</c>),
/// and how a GRO-coalesced receive buffer (<c>UDP_GRO</c>) splits back into datagrams.
/// </summary>
internal static class UdpSegmentation
{
    /// <summary>Most segments one GSO send may carry (the kernel's UDP_MAX_SEGMENTS on older kernels).</summary>
    public const int MaxSegments = 64;

    /// <summary>Largest UDP payload of one GSO send (the whole super-datagram must fit a 16-bit IP length).</summary>
    public const int MaxBytes = 65_000;

    /// <summary>
    /// Length of the run of datagrams starting at <paramref name="start"/> that can be one GSO send: the same destination,
    /// every datagram as long as the first except the last, which may be shorter; at most <paramref name="maxSegments"/>
    /// datagrams and <paramref name="maxBytes"/> bytes. Always at least 1.
    /// </summary>
    public static int RunLength(ReadOnlySpan<int> lengths, ReadOnlySpan<LinkAddress> destinations, int start, int maxSegments = MaxSegments, int maxBytes = MaxBytes)
    {
        var size = lengths[start];
        var total = size;
        var end = start + 1;
        while (end < lengths.Length && end - start < maxSegments)
        {
            var length = lengths[end];
            if (length > size || total + length > maxBytes || !destinations[end].Equals(destinations[start]))
            {
                break;
            }

            total += length;
            end++;
            if (length < size)
            {
                break; // A shorter datagram ends the run.
            }
        }

        return end - start;
    }

    /// <summary>
    /// Calls <paramref name="deliver"/> for every datagram of a received <paramref name="buffer"/> that
    /// the kernel coalesced from datagrams of <paramref name="segmentSize"/> bytes (the last may be shorter); returns how
    /// many. A <paramref name="segmentSize"/> of 0 (no GRO) or at least the buffer length is one datagram.
    /// </summary>
    public static int Split<TState>(ReadOnlySpan<byte> buffer, int segmentSize, TState state, SpanAction<TState> deliver)
    {
        if (segmentSize <= 0 || segmentSize >= buffer.Length)
        {
            deliver(buffer, state);
            return 1;
        }

        var count = 0;
        for (var offset = 0; offset < buffer.Length; offset += segmentSize)
        {
            deliver(buffer.Slice(offset, Math.Min(segmentSize, buffer.Length - offset)), state);
            count++;
        }

        return count;
    }

    /// <summary>Receives one datagram of a split buffer.</summary>
    public delegate void SpanAction<in TState>(ReadOnlySpan<byte> datagram, TState state);
}
