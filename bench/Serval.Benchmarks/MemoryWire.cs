using System.Buffers.Binary;
using Serval.Stack;
using Serval.Wire;

namespace Serval.Benchmarks;

/// <summary>
/// One direction of an in-memory link between two engines on one thread: queues what one engine sends and hands it to the
/// peer on <see cref="Deliver"/>, reusing its buffers. With <see cref="ObserveTcp"/> it remembers the last TCP header
/// fields it carried (the spoofing attacker's best guesses of the windows); off, the send path does no parsing.
/// </summary>
internal sealed class MemoryWire(Engine peer, int peerInterface, bool observeTcp = false) : IPacketSink
{
    private readonly Queue<(LinkAddress Src, LinkAddress Dst, byte[] Buf, int Len)> _pending = new();
    private readonly Stack<byte[]> _pool = new();

    /// <summary>Whether the TCP header fields below are tracked.</summary>
    public bool ObserveTcp { get; } = observeTcp;

    /// <summary>Packets carried so far.</summary>
    public long Packets { get; private set; }

    /// <summary>Sequence number of the last SYN (without ACK) or SYN-ACK seen.</summary>
    public uint SynSequence { get; private set; }

    /// <summary>Acknowledgement number of the last segment with ACK.</summary>
    public uint LastAck { get; private set; }

    /// <summary>Raw (unscaled) window field of the last segment — never more than the real window.</summary>
    public ushort LastWindow { get; private set; }

    public void Send(int interfaceIndex, LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit)
    {
        var buf = _pool.Count > 0 ? _pool.Pop() : new byte[Math.Max(2048, packet.Length)];
        if (buf.Length < packet.Length)
        {
            buf = new byte[packet.Length];
        }

        packet.CopyTo(buf);
        _pending.Enqueue((source, destination, buf, packet.Length));
        Packets++;
        if (ObserveTcp)
        {
            Observe(packet);
        }
    }

    /// <summary>
    /// A transmit slot, as a link's send queue offers: a pooled buffer the engine builds its packet in, queued as it is
    /// on commit (no copy here; the copy from the stream's send buffer into it is the engine's).
    /// </summary>
    public Span<byte> GetTransmitSlot(int interfaceIndex, int maxLength)
    {
        if (_slot is null || _slot.Length < maxLength)
        {
            _slot = _pool.Count > 0 ? _pool.Pop() : new byte[Math.Max(2048, maxLength)];
            if (_slot.Length < maxLength)
            {
                _slot = new byte[maxLength];
            }
        }

        return _slot;
    }

    public void CommitTransmitSlot(int interfaceIndex, LinkAddress source, LinkAddress destination, int length, int hopLimit)
    {
        var buf = _slot ?? throw new InvalidOperationException("no transmit slot to commit");
        _slot = null;
        _pending.Enqueue((source, destination, buf, length));
        Packets++;
        if (ObserveTcp)
        {
            Observe(buf.AsSpan(0, length));
        }
    }

    private byte[]? _slot;

    private void Observe(ReadOnlySpan<byte> packet)
    {
        var hl = packet[8] * 4;
        if (packet[9] == SalPacketRepr.ProtocolTcp && packet.Length >= hl + 20)
        {
            var tcp = packet[hl..];
            var flags = (TcpFlags)(((tcp[12] & 1) << 8) | tcp[13]);
            if ((flags & TcpFlags.Syn) != 0)
            {
                SynSequence = BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]);
            }

            if ((flags & TcpFlags.Ack) != 0)
            {
                LastAck = BinaryPrimitives.ReadUInt32BigEndian(tcp[8..]);
                LastWindow = BinaryPrimitives.ReadUInt16BigEndian(tcp[14..]);
            }
        }
    }

    /// <summary>Empties the buffer pool (the benchmark's own memory, not the engines').</summary>
    public void TrimPool() => _pool.Clear();

    public void Deliver(TimeSpan now)
    {
        while (_pending.TryDequeue(out var p))
        {
            peer.Receive(peerInterface, p.Src, p.Dst, p.Buf.AsSpan(0, p.Len), now);
            _pool.Push(p.Buf);
        }
    }
}
