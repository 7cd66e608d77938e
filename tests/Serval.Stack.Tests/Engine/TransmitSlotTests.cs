using System.Security.Cryptography;
using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>
/// The engine's output path (docs/engine.md, "Output path"): stream segments are built at poll time straight into the
/// memory a link offers (<see cref="IPacketSink.GetTransmitSlot"/>), the payload copied once from the send buffer with
/// its checksum summed in the same pass; with a sink that offers no slot, once into the engine's packet buffer and
/// handed to <see cref="IPacketSink.Send"/>. Either way nothing is allocated per segment and every byte arrives.
/// </summary>
public sealed class TransmitSlotTests
{
    private readonly ITestOutputHelper _output;

    public TransmitSlotTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void Data_segments_are_built_in_the_links_slot_and_arrive_intact()
    {
        using var pair = new EnginePair(slots: true);
        var data = new byte[8 << 20];
        new Random(5).NextBytes(data);
        var received = pair.Transfer(data);

        Assert.Equal(SHA256.HashData(data), SHA256.HashData(received));
        var wire = pair.ToServer;
        _output.WriteLine($"to server: {wire.Committed} packets through slots ({wire.CommittedPayloadBytes} payload bytes), {wire.Sent} through Send ({wire.SentPayloadBytes} payload bytes)");
        Assert.True(wire.CommittedPayloadBytes >= data.Length, $"only {wire.CommittedPayloadBytes} of {data.Length} payload bytes went through transmit slots");
        Assert.True(wire.SentPayloadBytes == 0, $"{wire.SentPayloadBytes} payload bytes were copied through Send instead of a slot ({wire.Sent} packets)");
        Assert.Equal(0, pair.Server.Counters.BadTransportChecksum);
        Assert.Equal(0, pair.Client.Counters.BadTransportChecksum);
    }

    [Fact]
    public void A_sink_without_slots_gets_the_same_stream()
    {
        using var pair = new EnginePair(slots: false);
        var data = new byte[4 << 20];
        new Random(6).NextBytes(data);
        var received = pair.Transfer(data);

        Assert.Equal(SHA256.HashData(data), SHA256.HashData(received));
        Assert.True(pair.ToServer.Committed == 0, $"{pair.ToServer.Committed} packets committed to a sink without slots");
        Assert.Equal(0, pair.Server.Counters.BadTransportChecksum);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Steady_state_allocates_nothing_per_segment(bool slots)
    {
        using var pair = new EnginePair(slots);
        var chunk = new byte[256 * 1024];
        new Random(7).NextBytes(chunk);
        pair.Pump(chunk, 64L << 20); // warm-up: the window, buffers, queues and pools reach their working size
        var packetsBefore = pair.ToServer.Committed + pair.ToServer.Sent;
        var before = GC.GetAllocatedBytesForCurrentThread();
        pair.Pump(chunk, 128L << 20);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        var packets = pair.ToServer.Committed + pair.ToServer.Sent - packetsBefore;
        _output.WriteLine($"slots={slots}: {packets} segments, {allocated} bytes allocated");
        Assert.True(packets > 10_000, $"only {packets} segments measured");
        Assert.True(allocated == 0, $"{allocated} bytes allocated for {packets} segments ({(double)allocated / packets:F2} per segment)");
    }

    /// <summary>Two engines joined in memory on one thread (as bench/run.sh stream-sim), one stream between them.</summary>
    private sealed class EnginePair : IDisposable
    {
        private readonly byte[] _readBuffer = new byte[256 * 1024];
        private readonly SocketHandle _client;
        private readonly SocketHandle _server;
        private TimeSpan _now = TimeSpan.FromSeconds(1);

        public EnginePair(bool slots)
        {
            var service = ServiceId.FromName("test.slots");
            Client = new Stack.Engine(EngineOptions.Default, new SeededRandomSource(1));
            Server = new Stack.Engine(EngineOptions.Default, new SeededRandomSource(2));
            var addrA = LinkAddress.Parse("10.0.0.1");
            var addrB = LinkAddress.Parse("10.0.0.2");
            var ai = Client.AddInterface(new InterfaceConfig { Name = "mem", Address = addrA, Mtu = 1500 });
            var bi = Server.AddInterface(new InterfaceConfig { Name = "mem", Address = addrB, Mtu = 1500 });
            Client.SetInterfaceUp(ai, true, _now);
            Server.SetInterfaceUp(bi, true, _now);
            Client.Services.Add(ServicePrefix.Default, ServiceTarget.Forward(addrB, ai));
            ToServer = new SlotWire(Server, bi, slots);
            ToClient = new SlotWire(Client, ai, slots);
            Assert.Equal(ServalError.None, Server.Listen(ServicePrefix.Exact(service), TransportProtocol.Stream, 8, _now, out var listener));
            Assert.Equal(ServalError.None, Client.Connect(service, TransportProtocol.Stream, _now, out _client));
            for (var i = 0; i < 100 && _server.IsNone; i++)
            {
                Step();
                Server.Accept(listener, out _server);
            }

            Assert.False(_server.IsNone, "the server never accepted the connection");
        }

        public Stack.Engine Client { get; }

        public Stack.Engine Server { get; }

        public SlotWire ToServer { get; }

        public SlotWire ToClient { get; }

        public byte[] Transfer(byte[] data)
        {
            var received = new byte[data.Length];
            long sent = 0, got = 0;
            for (var guard = 0; got < data.Length; guard++)
            {
                if (guard >= 10_000_000)
                {
                    Assert.Fail($"the transfer stalled at {got} of {data.Length} bytes");
                }

                if (sent < data.Length)
                {
                    Client.Write(_client, data.AsSpan((int)sent), _now, out var n);
                    sent += n;
                }

                Step();
                while (Server.Read(_server, received.AsSpan((int)got), _now, out var r, out _) == ServalError.None && r > 0)
                {
                    got += r;
                }
            }

            return received;
        }

        public void Pump(byte[] chunk, long bytes)
        {
            long got = 0;
            for (var guard = 0; got < bytes; guard++)
            {
                if (guard >= 10_000_000)
                {
                    Assert.Fail($"the transfer stalled at {got} of {bytes} bytes"); // (not an interpolated message on every round: it would allocate)
                }

                Client.Write(_client, chunk, _now, out _);
                Step();
                while (Server.Read(_server, _readBuffer, _now, out var r, out _) == ServalError.None && r > 0)
                {
                    got += r;
                }
            }
        }

        private void Step()
        {
            _now += TimeSpan.FromTicks(100);
            Client.Poll(_now, ToServer);
            ToServer.Deliver(_now);
            Server.Poll(_now, ToClient);
            ToClient.Deliver(_now);
            while (Client.TryGetEvent(out _))
            {
            }

            while (Server.TryGetEvent(out _))
            {
            }
        }

        public void Dispose()
        {
        }
    }

    /// <summary>
    /// A sink delivering to a peer engine, with (or without) transmit slots: pooled buffers handed out as slots and
    /// queued as they are when committed, as a link's send queue does; Send copies into one.
    /// </summary>
    private sealed class SlotWire(Stack.Engine peer, int peerInterface, bool slots) : IPacketSink
    {
        // Sized up front for a whole window of segments (4 MiB buffers), so that what the tests measure is the engine's.
        private const int Capacity = 8192;
        private readonly Queue<(LinkAddress Source, LinkAddress Destination, byte[] Buffer, int Length)> _pending = new(Capacity);
        private readonly Stack<byte[]> _pool = new(Enumerable.Range(0, Capacity).Select(_ => new byte[2048]));
        private byte[]? _slot;

        public long Sent { get; private set; }

        public long SentPayloadBytes { get; private set; }

        public long Committed { get; private set; }

        public long CommittedPayloadBytes { get; private set; }

        public void Send(int interfaceIndex, LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit)
        {
            var buffer = Rent();
            packet.CopyTo(buffer);
            _pending.Enqueue((source, destination, buffer, packet.Length));
            Sent++;
            SentPayloadBytes += PayloadLength(packet);
        }

        public Span<byte> GetTransmitSlot(int interfaceIndex, int maxLength)
        {
            if (!slots || maxLength > 2048)
            {
                return default;
            }

            _slot ??= Rent();
            return _slot;
        }

        public void CommitTransmitSlot(int interfaceIndex, LinkAddress source, LinkAddress destination, int length, int hopLimit)
        {
            var buffer = _slot ?? throw new InvalidOperationException("commit without a slot");
            _slot = null;
            _pending.Enqueue((source, destination, buffer, length));
            Committed++;
            CommittedPayloadBytes += PayloadLength(buffer.AsSpan(0, length));
        }

        public void Deliver(TimeSpan now)
        {
            while (_pending.TryDequeue(out var p))
            {
                peer.Receive(peerInterface, p.Source, p.Destination, p.Buffer.AsSpan(0, p.Length), now);
                _pool.Push(p.Buffer);
            }
        }

        private byte[] Rent() => _pool.Count > 0 ? _pool.Pop() : new byte[2048];

        private static int PayloadLength(ReadOnlySpan<byte> packet)
        {
            var sal = packet[8] * 4;
            if (packet[9] != SalPacketRepr.ProtocolTcp || packet.Length < sal + 20)
            {
                return 0;
            }

            return packet.Length - sal - ((packet[sal + 12] >> 4) * 4);
        }
    }
}
