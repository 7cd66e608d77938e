namespace Serval.Links;

/// <summary>Counters of one link. Updated by the link's threads, readable from any thread.</summary>
public sealed class LinkCounters
{
    private long _packetsSent;
    private long _bytesSent;
    private long _packetsReceived;
    private long _bytesReceived;
    private long _sendErrors;
    private long _receiveDropped;
    private long _systemCalls;
    private long _offloadSends;
    private long _coalescedReceives;
    private long _offloadFallbacks;

    internal LinkCounters()
    {
    }

    /// <summary>Packets handed to the operating system (or the hub).</summary>
    public long PacketsSent => Volatile.Read(ref _packetsSent);

    /// <summary>Bytes handed to the operating system (or the hub).</summary>
    public long BytesSent => Volatile.Read(ref _bytesSent);

    /// <summary>Packets received and delivered to the host.</summary>
    public long PacketsReceived => Volatile.Read(ref _packetsReceived);

    /// <summary>Bytes received and delivered to the host.</summary>
    public long BytesReceived => Volatile.Read(ref _bytesReceived);

    /// <summary>Packets the operating system refused to send (no route, no buffer, port unreachable).</summary>
    public long SendErrors => Volatile.Read(ref _sendErrors);

    /// <summary>Received packets discarded by the link (truncated, not for us, malformed underlay header).</summary>
    public long ReceiveDropped => Volatile.Read(ref _receiveDropped);

    /// <summary>Send and receive system calls made (shows the effect of batching).</summary>
    public long SystemCalls => Volatile.Read(ref _systemCalls);

    /// <summary>Sends that carried several datagrams as one UDP GSO (<c>UDP_SEGMENT</c>) message.</summary>
    public long OffloadSends => Volatile.Read(ref _offloadSends);

    /// <summary>Received buffers the kernel had coalesced from several datagrams (UDP GRO) and the link split.</summary>
    public long CoalescedReceives => Volatile.Read(ref _coalescedReceives);

    /// <summary>Times the link found UDP GSO or GRO unavailable and fell back to one datagram per message.</summary>
    public long OffloadFallbacks => Volatile.Read(ref _offloadFallbacks);

    internal void Sent(int packets, long bytes)
    {
        Interlocked.Add(ref _packetsSent, packets);
        Interlocked.Add(ref _bytesSent, bytes);
    }

    internal void OffloadSend() => Interlocked.Increment(ref _offloadSends);

    internal void CoalescedReceive() => Interlocked.Increment(ref _coalescedReceives);

    internal void OffloadFallback() => Interlocked.Increment(ref _offloadFallbacks);

    internal void Sent(int bytes)
    {
        Interlocked.Increment(ref _packetsSent);
        Interlocked.Add(ref _bytesSent, bytes);
    }

    internal void Received(int bytes)
    {
        Interlocked.Increment(ref _packetsReceived);
        Interlocked.Add(ref _bytesReceived, bytes);
    }

    internal void SendError() => Interlocked.Increment(ref _sendErrors);

    internal void Dropped() => Interlocked.Increment(ref _receiveDropped);

    internal void SystemCall() => Interlocked.Increment(ref _systemCalls);
}
