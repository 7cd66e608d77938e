using BenchmarkDotNet.Attributes;
using Serval.Wire;

namespace Serval.Benchmarks;

/// <summary>Parse and emit of a SYN (CONTROL + SERVICE + TCP options) and of a 1400-byte data segment.</summary>
[MemoryDiagnoser]
public class WireBenchmarks
{
    private static readonly TransportPseudoHeader Pseudo = new(LinkAddress.Parse("10.0.0.1"), LinkAddress.Parse("10.0.0.2"));
    private readonly byte[] _syn = new byte[256];
    private readonly byte[] _data = new byte[1600];
    private readonly byte[] _payload = new byte[1400];
    private readonly byte[] _out = new byte[1600];
    private int _synLength;
    private int _dataLength;
    private SalPacketRepr _synRepr;
    private SalPacketRepr _dataRepr;

    [GlobalSetup]
    public void Setup()
    {
        _synRepr = new SalPacketRepr
        {
            SourceFlow = new FlowId(0x1234),
            Protocol = SalPacketRepr.ProtocolTcp,
            Control = new SalControl(SalControlFlags.Syn, 77, 0, new Nonce(0x0102030405060708)),
            DestinationService = ServiceId.FromName("bench"),
            Tcp = new TcpRepr { Flags = TcpFlags.Syn, SequenceNumber = 1, Window = 65535, MaxSegmentSize = 1400, WindowScale = 7, SackPermitted = true, Timestamp = new TcpTimestamp(1, 0) },
        };
        _dataRepr = new SalPacketRepr
        {
            SourceFlow = new FlowId(0x1234),
            DestinationFlow = new FlowId(0x5678),
            Protocol = SalPacketRepr.ProtocolTcp,
            Tcp = new TcpRepr { Flags = TcpFlags.Ack | TcpFlags.Psh, SequenceNumber = 1000, AckNumber = 2000, Window = 1024, Timestamp = new TcpTimestamp(5, 6) },
        };
        new Random(1).NextBytes(_payload);
        _synLength = _synRepr.Emit(_syn, [], Pseudo);
        _dataLength = _dataRepr.Emit(_data, _payload, Pseudo);
    }

    [Benchmark]
    public int ParseSyn()
    {
        return SalPacketRepr.TryParse(_syn.AsSpan(0, _synLength), out var p, out var off, out _, out _)
            ? off + (int)p.Tcp.SequenceNumber
            : -1;
    }

    [Benchmark]
    public int ParseData()
    {
        return SalPacketRepr.TryParse(_data.AsSpan(0, _dataLength), out var p, out var off, out var len, out _)
            ? off + len + (int)p.Tcp.SequenceNumber
            : -1;
    }

    [Benchmark]
    public int EmitSyn() => _synRepr.Emit(_out, [], Pseudo);

    [Benchmark]
    public int EmitData() => _dataRepr.Emit(_out, _payload, Pseudo);
}
