using System.Security.Cryptography;
using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>
/// An idle connection holds no buffer storage: buffers are allocated when data flows and given back
/// <see cref="StreamOptions.IdleBufferRelease"/> after the last segment (docs/stream-transport.md, "Memory").
/// Two connections are pumped directly into each other (no simulated network).
/// </summary>
public sealed class IdleMemoryTests
{
    private readonly ITestOutputHelper _output;

    public IdleMemoryTests(ITestOutputHelper output) => _output = output;

    private sealed class Pair
    {
        private readonly byte[] _payload;

        public Pair(StreamOptions options)
        {
            _payload = new byte[options.Mss];
            A = new StreamConnection(options, new SeededRandomSource(1), Now);
            B = new StreamConnection(options, new SeededRandomSource(2), Now);
            Assert.True(B.OnSyn(A.CreateSyn(Now), Now));
            Assert.True(A.OnSynAck(B.CreateSynAck(Now), Now));
            Assert.True(B.OnHandshakeAck(A.CreateHandshakeAck(), default, Now));
        }

        public StreamConnection A { get; }

        public StreamConnection B { get; }

        public TimeSpan Now { get; private set; } = TimeSpan.FromSeconds(1);

        /// <summary>Moves segments both ways and runs due timers, <paramref name="dt"/> per step.</summary>
        public void Step(TimeSpan dt)
        {
            Now += dt;
            foreach (var (from, to) in new[] { (A, B), (B, A) })
            {
                if (from.NextTimeout is { } t && t <= Now)
                {
                    from.OnTimeout(Now);
                }

                while (from.TryPoll(Now, _payload, out var s, out var n))
                {
                    to.OnSegment(s, _payload.AsSpan(0, n), Now);
                }
            }
        }

        /// <summary>Sends <paramref name="data"/> from A to B and returns what B read.</summary>
        public byte[] Transfer(byte[] data)
        {
            var received = new MemoryStream();
            var buf = new byte[32 * 1024];
            var sent = 0;
            for (var i = 0; i < 100_000 && (received.Length < data.Length || A.BytesUnacknowledged > 0); i++)
            {
                sent += A.Write(data.AsSpan(sent));
                Step(TimeSpan.FromMilliseconds(1));
                int r;
                while ((r = B.Read(buf)) > 0)
                {
                    received.Write(buf, 0, r);
                }
            }

            Assert.True(received.Length == data.Length, $"received {received.Length} of {data.Length} bytes");
            return received.ToArray();
        }
    }

    [Fact]
    public void A_new_connection_holds_no_buffer_storage_and_little_managed_memory()
    {
        var options = StreamOptions.Default;
        var now = TimeSpan.FromSeconds(1);
        var client = new StreamConnection(options, new SeededRandomSource(1), now);
        var syn = client.CreateSyn(now);

        // Everything a server allocates for one connection through its handshake, measured on this thread.
        var before = GC.GetAllocatedBytesForCurrentThread();
        var server = new StreamConnection(options, new SeededRandomSource(2), now);
        Assert.True(server.OnSyn(syn, now));
        var synAck = server.CreateSynAck(now);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(client.OnSynAck(synAck, now));
        Assert.True(server.OnHandshakeAck(client.CreateHandshakeAck(), default, now));
        _output.WriteLine($"server connection through the handshake: {allocated} bytes allocated; storage {server.BufferStorageBytes}");

        Assert.Equal(StreamState.Established, server.State);
        Assert.Equal(0, server.BufferStorageBytes);
        Assert.Equal(0, client.BufferStorageBytes);
        Assert.True(allocated <= 2048, $"a connection's control state took {allocated} bytes (bound 2048)");
    }

    [Fact]
    public void Buffers_are_released_when_idle_and_acquired_again_with_data_intact()
    {
        var pair = new Pair(StreamOptions.Default);
        for (var round = 0; round < 3; round++)
        {
            var data = RandomNumberGenerator.GetBytes(1 << 20);
            var received = pair.Transfer(data);
            Assert.Equal(Convert.ToHexString(SHA256.HashData(data)), Convert.ToHexString(SHA256.HashData(received)));
            Assert.True(pair.A.BufferStorageBytes > 0 && pair.B.BufferStorageBytes > 0, $"round {round}: storage while data flowed: A {pair.A.BufferStorageBytes}, B {pair.B.BufferStorageBytes}");

            // Idle: within a little more than IdleBufferRelease both ends give their storage back.
            for (var i = 0; i < 15 && (pair.A.BufferStorageBytes > 0 || pair.B.BufferStorageBytes > 0); i++)
            {
                pair.Step(TimeSpan.FromMilliseconds(100));
            }

            _output.WriteLine($"round {round}: idle at {pair.Now.TotalSeconds:F1} s, storage A {pair.A.BufferStorageBytes} B {pair.B.BufferStorageBytes}");
            Assert.True(pair.A.BufferStorageBytes == 0, $"round {round}: the sender still holds {pair.A.BufferStorageBytes} bytes after 1.5 s idle");
            Assert.True(pair.B.BufferStorageBytes == 0, $"round {round}: the receiver still holds {pair.B.BufferStorageBytes} bytes after 1.5 s idle");
            Assert.Equal(StreamState.Established, pair.A.State);
        }
    }

    [Fact]
    public void Unread_data_keeps_the_receive_buffer_and_nothing_spins()
    {
        var pair = new Pair(StreamOptions.Default);
        var data = RandomNumberGenerator.GetBytes(100_000);
        Assert.Equal(data.Length, pair.A.Write(data));
        for (var i = 0; i < 50; i++)
        {
            pair.Step(TimeSpan.FromMilliseconds(100));
        }

        // The sender's data was all acknowledged: its buffer went. The receiver's holds unread bytes: it stays, and no
        // timer is due for it (an expired release deadline that cannot release would make the engine poll forever).
        Assert.Equal(0, pair.A.BufferStorageBytes);
        Assert.True(pair.B.BufferStorageBytes > 0, "unread data must keep the receive buffer");
        Assert.True(pair.B.NextTimeout is not { } t || t > pair.Now, $"receiver timer {pair.B.NextTimeout} at {pair.Now}");
        var read = new byte[data.Length];
        Assert.Equal(data.Length, pair.B.Read(read));
        Assert.Equal(data, read);
        pair.Step(TimeSpan.FromMilliseconds(100));
        Assert.Equal(0, pair.B.BufferStorageBytes);
    }

    [Fact]
    public void No_release_when_turned_off()
    {
        var pair = new Pair(StreamOptions.Default with { IdleBufferRelease = null });
        pair.Transfer(RandomNumberGenerator.GetBytes(64 * 1024));
        for (var i = 0; i < 30; i++)
        {
            pair.Step(TimeSpan.FromMilliseconds(100));
        }

        Assert.True(pair.A.BufferStorageBytes > 0 && pair.B.BufferStorageBytes > 0, $"storage A {pair.A.BufferStorageBytes} B {pair.B.BufferStorageBytes}");
    }
}
