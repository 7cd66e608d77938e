using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>Arbitrary segments never make the connection throw or break its invariants.</summary>
public sealed class RobustnessTests
{
    [Theory]
    [InlineData(1, true)]
    [InlineData(2, false)]
    [InlineData(3, true)]
    [InlineData(4, false)]
    [InlineData(5, true)]
    [InlineData(6, false)]
    [InlineData(7, true)]
    [InlineData(8, false)]
    public void Random_segments_and_calls_never_throw(int seed, bool passive)
    {
        var random = new Random(seed);
        var peerOptions = ScriptedPeer.DefaultPeerOptions with
        {
            Timestamp = random.Next(2) == 0 ? new TcpTimestamp(100, 0) : null,
            SackPermitted = random.Next(3) != 0,
            WindowScale = (byte)random.Next(0, 15),
        };
        var peer = passive ? ScriptedPeer.PassiveOpen(peerOptions: peerOptions) : ScriptedPeer.ActiveOpen(peerOptions: peerOptions);
        var tcb = peer.Tcb;
        var buffer = new byte[70_000];
        for (var step = 0; step < 20_000 && tcb.State != StreamState.Closed; step++)
        {
            switch (random.Next(10))
            {
                case 0:
                    tcb.Write(new byte[random.Next(0, 5000)]);
                    break;
                case 1:
                    tcb.Read(buffer.AsSpan(0, random.Next(0, 5000)));
                    break;
                case 2:
                    peer.Advance(TimeSpan.FromMilliseconds(random.Next(0, 300)));
                    break;
                case 3 when random.Next(200) == 0:
                    tcb.CompleteWrites();
                    break;
                case 4 when random.Next(50) == 0:
                    tcb.Freeze();
                    break;
                case 5:
                    tcb.Resume(peer.Now);
                    break;
                default:
                    peer.Send(RandomSegment(random, peer), new byte[random.Next(0, 3) == 0 ? random.Next(0, 1500) : 0]);
                    break;
            }

            while (tcb.TryPoll(peer.Now, buffer, out var s, out var n))
            {
                Assert.InRange(n, 0, tcb.Mss);
                Assert.True(s.HeaderLength <= 60);
            }

            Assert.InRange(tcb.BytesAvailable, 0, ScriptedPeer.TestOptions.ReceiveBufferSize);
            Assert.InRange(tcb.SendBufferFree, 0, ScriptedPeer.TestOptions.SendBufferSize);
            var stats = tcb.Statistics;
            Assert.True(stats.BytesInFlight >= 0);
            Assert.True(stats.CongestionWindow > 0);
            if (tcb.NextTimeout is { } t)
            {
                Assert.True(t >= peer.Now - TimeSpan.FromSeconds(1));
            }
        }
    }

    private static TcpRepr RandomSegment(Random random, ScriptedPeer peer)
    {
        uint Near(uint center, int spread) => unchecked(center + (uint)random.Next(-spread, spread));
        var flags = TcpFlags.Ack;
        var r = random.Next(100);
        if (r < 3)
        {
            flags |= TcpFlags.Rst;
        }
        else if (r < 6)
        {
            flags |= TcpFlags.Fin;
        }
        else if (r < 8)
        {
            flags |= TcpFlags.Syn;
        }
        else if (r < 10)
        {
            flags = TcpFlags.None;
        }

        var sack = TcpSackBlocks.Empty;
        for (var i = random.Next(0, 5); i > 0; i--)
        {
            var left = Near(peer.Seq(0), 70_000);
            sack = sack.Add(new TcpSackBlock(left, unchecked(left + (uint)random.Next(-2000, 20_000))));
        }

        return new TcpRepr
        {
            SequenceNumber = random.Next(4) == 0 ? (uint)random.NextInt64(0, uint.MaxValue) : Near(peer.PeerNext, 40_000),
            AckNumber = random.Next(4) == 0 ? (uint)random.NextInt64(0, uint.MaxValue) : Near(peer.Seq(0), 70_000),
            Flags = flags,
            Window = (ushort)random.Next(0, 65536),
            SackBlocks = sack,
            Timestamp = random.Next(2) == 0 ? new TcpTimestamp((uint)random.Next(), (uint)random.Next()) : null,
        };
    }
}
