using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using Serval.Wire;
using Serval.Wire.Pcap;

namespace Serval.Links;

/// <summary>
/// A decorator that writes every packet its inner link sends and receives to a classic pcap file (link type raw IP),
/// with the real addresses: IP protocol 144 for raw-IP links, IP + UDP with the real ports for UDP encapsulation, so
/// that <c>servalctl decode</c>, tshark and Wireshark read it. The IP source and TTL are those the inner link puts on
/// the wire: the source and hop limit the engine gave when the link carries them (raw IP: a service router's
/// forwarded packet shows the client's source), else the link's own address and 64; received packets show the hop
/// limit the link reported (64 when unknown). Thread-safe; the file is flushed on dispose.
/// </summary>
public sealed class PcapCaptureLink : ServalLink
{
    private readonly ServalLink _inner;
    private readonly PcapWriter _writer;
    private readonly Lock _lock = new();
    private readonly long _startTimestamp = Stopwatch.GetTimestamp();
    private readonly long _startUnixNanoseconds = (DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).Ticks * 100;
    private bool _disposed;

    /// <summary>Captures <paramref name="inner"/>'s traffic into a new file at <paramref name="path"/>.</summary>
    public PcapCaptureLink(ServalLink inner, string path)
        : this(inner, File.Create(path), leaveOpen: false)
    {
    }

    /// <summary>Captures <paramref name="inner"/>'s traffic into <paramref name="output"/>.</summary>
    public PcapCaptureLink(ServalLink inner, Stream output, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(output);
        _inner = inner;
        _writer = new PcapWriter(output, PcapLinkType.Raw, leaveOpen: leaveOpen);
    }

    /// <summary>Packets written so far.</summary>
    public long CapturedPackets
    {
        get
        {
            lock (_lock)
            {
                return _writer.Count;
            }
        }
    }

    /// <inheritdoc/>
    public override string Name => _inner.Name + " +pcap";

    /// <inheritdoc/>
    public override LinkAddress LocalAddress => _inner.LocalAddress;

    /// <inheritdoc/>
    public override LinkAddress BroadcastAddress => _inner.BroadcastAddress;

    /// <inheritdoc/>
    public override int Mtu => _inner.Mtu;

    /// <inheritdoc/>
    public override void Start(ILinkReceiver receiver)
    {
        ArgumentNullException.ThrowIfNull(receiver);
        _inner.Start(new Tap(this, receiver));
    }

    /// <inheritdoc/>
    public override bool RewritesSource => _inner.RewritesSource;

    /// <inheritdoc/>
    public override void Send(LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit)
    {
        var keepsSource = !_inner.RewritesSource && !source.IsNone && source.Family == _inner.LocalAddress.Family;
        Write(keepsSource ? source : _inner.LocalAddress, destination, packet, _inner.RewritesSource ? IPHopLimit.Unknown : hopLimit);
        _inner.Send(source, destination, packet, hopLimit);
    }

    /// <inheritdoc/>
    public override void Flush() => _inner.Flush();

    internal override void AttachLogger(Microsoft.Extensions.Logging.ILogger logger) => _inner.AttachLogger(logger);

    internal override void AttachReceiveThreadStart(Action start) => _inner.AttachReceiveThreadStart(start);

    /// <inheritdoc/>
    internal override System.Net.IPAddress? OsAddress => _inner.OsAddress;

    /// <inheritdoc/>
    internal override void AttachNetworkErrorHandler(Action handler) => _inner.AttachNetworkErrorHandler(handler);

    private void Write(LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> sal, int hopLimit)
    {
        var udp = source.Port != 0 || destination.Port != 0;
        var ipLength = source.IsIPv6 ? Ipv6Repr.HeaderLength : Ipv4Repr.MinHeaderLength;
        var total = ipLength + (udp ? 8 : 0) + sal.Length;
        var buffer = ArrayPool<byte>.Shared.Rent(total);
        try
        {
            var span = buffer.AsSpan(0, total);
            var payloadLength = total - ipLength;
            byte protocol = udp ? (byte)17 : (byte)ServalInfo.IPProtocolNumber;
            if (source.IsIPv6)
            {
                new Ipv6Repr { Source = source, Destination = destination, NextHeader = protocol, HopLimit = IPHopLimit.OrDefault(hopLimit) }.Emit(span, payloadLength);
            }
            else
            {
                new Ipv4Repr { Source = source, Destination = destination, Protocol = protocol, Ttl = IPHopLimit.OrDefault(hopLimit), DontFragment = true }.Emit(span, payloadLength);
            }

            var at = ipLength;
            if (udp)
            {
                BinaryPrimitives.WriteUInt16BigEndian(span[at..], (ushort)source.Port);
                BinaryPrimitives.WriteUInt16BigEndian(span[(at + 2)..], (ushort)destination.Port);
                BinaryPrimitives.WriteUInt16BigEndian(span[(at + 4)..], (ushort)(8 + sal.Length));
                BinaryPrimitives.WriteUInt16BigEndian(span[(at + 6)..], 0);
                at += 8;
            }

            sal.CopyTo(span[at..]);
            var ns = _startUnixNanoseconds + (long)(Stopwatch.GetElapsedTime(_startTimestamp).Ticks * 100);
            lock (_lock)
            {
                if (!_disposed)
                {
                    _writer.Write(ns, span);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inner.Dispose();
            lock (_lock)
            {
                if (!_disposed)
                {
                    _disposed = true;
                    _writer.Dispose();
                }
            }
        }

        base.Dispose(disposing);
    }

    private sealed class Tap(PcapCaptureLink link, ILinkReceiver next) : ILinkReceiver
    {
        public void Receive(LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit)
        {
            link.Write(source, destination, packet, hopLimit);
            next.Receive(source, destination, packet, hopLimit);
        }
    }
}
