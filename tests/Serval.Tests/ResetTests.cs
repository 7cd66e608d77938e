using Serval.Stack;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// A reset (the peer's RST, our own abort) surfaces as <see cref="ServalException"/> on the pending and on every later
/// read and write, never as end of stream; only the peer's graceful end of stream is a 0-byte read. The suite runs
/// with hosts embedded in the test process (<see cref="EmbeddedResetTests"/>) and with applications attached to
/// servald processes (<see cref="AttachedResetTests"/>).
/// </summary>
public abstract class ResetTests(HostMode mode) : IAsyncDisposable
{
    private static readonly ServiceId Service = ServiceId.FromName("test.reset");

    protected HostMode Mode { get; } = mode;

    public ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return Mode.DisposeAsync();
    }

    private Task<ConnectedPair> ConnectPairAsync(CancellationToken ct) => ConnectedPair.ConnectAsync(Mode, Service, ct);

    private static byte[] Pattern(int length)
    {
        var data = new byte[length];
        new Random(length).NextBytes(data);
        return data;
    }

    /// <summary>Reads and writes on a connection that was reset all fail with <paramref name="error"/>, several times over.</summary>
    private static async Task AssertFailedAsync(ServalStream stream, ServalError error, CancellationToken ct)
    {
        for (var i = 0; i < 3; i++)
        {
            var read = await Assert.ThrowsAsync<ServalException>(async () => _ = await stream.ReadAsync(new byte[1024], ct));
            Assert.Equal(error, read.Error);
            var write = await Assert.ThrowsAsync<ServalException>(async () => await stream.WriteAsync(new byte[100], ct));
            Assert.Equal(error, write.Error);
        }

        var large = await Assert.ThrowsAsync<ServalException>(async () => await stream.WriteAsync(new byte[2 * 1024 * 1024], ct));
        Assert.Equal(error, large.Error);
        var ex = await Assert.ThrowsAsync<ServalException>(() => stream.ReadsClosed.WaitAsync(ct));
        Assert.Equal(error, ex.Error);
    }

    /// <summary>
    /// The measured case: the peer wrote everything and its end of stream (FIN), then closed with our bytes unread,
    /// which resets the connection. The reader must not see a clean end of stream after fewer bytes than were sent:
    /// it reads what had reached it (embedded: nothing the engine still held; attached: what the daemon had already
    /// forwarded) and then <see cref="ServalError.ConnectionReset"/>, and so do later reads and writes.
    /// </summary>
    [Fact]
    public async Task A_reset_after_the_peers_end_of_stream_is_never_read_as_end_of_stream()
    {
        var ct = TestNet.Timeout(60);
        await using var pair = await ConnectPairAsync(ct);
        var (client, accepted) = (pair.Connection.GetStream(), pair.Accepted.GetStream());

        // Bytes the server never reads: its close is a reset.
        await client.WriteAsync(Pattern(1000), ct);

        const int total = 16 * 1024 * 1024;
        var data = Pattern(total);
        var send = Task.Run(
            async () =>
            {
                await accepted.WriteAsync(data, ct);
                accepted.CompleteWrites();
            },
            ct);

        // Read all but the tail, which then waits in the client's receive buffer (attached: partly in the daemon's
        // engine, because the application's own queue holds at most about 4.3 MiB) with the server's FIN behind it.
        var unread = Mode.Attached ? 5 * 1024 * 1024 : 3 * 1024 * 1024;
        var head = new byte[total - unread];
        await client.ReadExactlyAsync(head, ct);
        Assert.True(head.AsSpan().SequenceEqual(data.AsSpan(0, head.Length)));
        await send.WaitAsync(ct);
        Assert.True(
            await TestNet.EventuallyAsync(async () => (await pair.Accepted.GetFlowInfoAsync(ct))?.Stream?.BytesAcked >= total, 30),
            "the client never acknowledged the whole transfer and its end");

        // The server closes with the client's bytes unread: a reset. Wait (bounded) until the client's flow ended.
        await pair.Accepted.DisposeAsync();
        Assert.True(
            await TestNet.EventuallyAsync(async () => await pair.Connection.GetFlowInfoAsync(ct) is null or { State: SalState.Closed }, 30),
            "the reset did not end the client's flow");

        var buffer = new byte[64 * 1024];
        long received = head.Length;
        var failure = await Assert.ThrowsAsync<ServalException>(async () =>
        {
            while (true)
            {
                var n = await client.ReadAsync(buffer, ct);
                Assert.True(n > 0, $"end of stream after {received} of {total} bytes, although the connection was reset");
                received += n;
            }
        });
        Assert.Equal(ServalError.ConnectionReset, failure.Error);
        Assert.True(received < total, "every byte arrived before the reset; the test did not leave any unread");
        await AssertFailedAsync(client, ServalError.ConnectionReset, ct);
    }

    /// <summary>
    /// The other end of the measured case: the client reads a part of a large transfer and closes with the rest
    /// unread (a reset). The server's write, blocked on the full window, fails with
    /// <see cref="ServalError.ConnectionReset"/>, and so do its later reads and writes.
    /// </summary>
    [Fact]
    public async Task A_write_blocked_when_the_reader_closes_with_unread_data_fails_with_a_reset()
    {
        var ct = TestNet.Timeout(60);
        await using var pair = await ConnectPairAsync(ct);
        var (client, accepted) = (pair.Connection.GetStream(), pair.Accepted.GetStream());

        // More than every buffer between the two applications holds (attached: about 13 MiB), so the write blocks.
        var data = Pattern(32 * 1024 * 1024);
        var write = accepted.WriteAsync(data, ct).AsTask();
        await client.ReadExactlyAsync(new byte[1024 * 1024], ct);
        Assert.False(write.IsCompleted);

        await pair.Connection.DisposeAsync(); // unread data: a reset
        var e = await Assert.ThrowsAsync<ServalException>(() => write.WaitAsync(ct));
        Assert.Equal(ServalError.ConnectionReset, e.Error);
        await AssertFailedAsync(accepted, ServalError.ConnectionReset, ct);
        var w = await Assert.ThrowsAsync<ServalException>(() => accepted.WritesClosed.WaitAsync(ct));
        Assert.Equal(ServalError.ConnectionReset, w.Error);
    }

    /// <summary>A read waiting for data when the peer resets fails with the reset, and so does every later read and write.</summary>
    [Fact]
    public async Task A_read_blocked_when_the_peer_resets_fails_and_so_do_later_reads_and_writes()
    {
        var ct = TestNet.Timeout(30);
        await using var pair = await ConnectPairAsync(ct);
        var (client, accepted) = (pair.Connection.GetStream(), pair.Accepted.GetStream());
        await client.WriteAsync(Pattern(5000), ct);
        await accepted.ReadExactlyAsync(new byte[5000], ct);

        var read = client.ReadAsync(new byte[1024], ct).AsTask();
        Assert.False(read.IsCompleted);
        accepted.Abort();
        var e = await Assert.ThrowsAsync<ServalException>(() => read.WaitAsync(ct));
        Assert.Equal(ServalError.ConnectionReset, e.Error);
        await AssertFailedAsync(client, ServalError.ConnectionReset, ct);

        // The side that aborted: Aborted, on reads and writes alike.
        await AssertFailedAsync(accepted, ServalError.Aborted, ct);
    }

    /// <summary>Our own abort fails the read and the write pending at that moment, and every later one, with <see cref="ServalError.Aborted"/>.</summary>
    [Fact]
    public async Task Our_abort_fails_pending_and_later_reads_and_writes()
    {
        var ct = TestNet.Timeout(60);
        await using var pair = await ConnectPairAsync(ct);
        var (client, accepted) = (pair.Connection.GetStream(), pair.Accepted.GetStream());

        var read = client.ReadAsync(new byte[1024], ct).AsTask();

        // Embedded, a write blocked on the full window fails too. (Attached, a write blocked in the channel holds the
        // daemon in its own blocked write, which does not see the abort before the peer reads: not checked here.)
        await client.WriteAsync(Pattern(1024), ct);
        var write = Mode.Attached ? Task.CompletedTask : client.WriteAsync(Pattern(32 * 1024 * 1024), ct).AsTask();
        await accepted.ReadExactlyAsync(new byte[1024], ct);
        Assert.False(read.IsCompleted);
        Assert.False(write.IsCompleted && !Mode.Attached);

        client.Abort();
        Assert.Equal(ServalError.Aborted, (await Assert.ThrowsAsync<ServalException>(() => read.WaitAsync(ct))).Error);
        if (!Mode.Attached)
        {
            Assert.Equal(ServalError.Aborted, (await Assert.ThrowsAsync<ServalException>(() => write.WaitAsync(ct))).Error);
        }

        await AssertFailedAsync(client, ServalError.Aborted, ct);

        // The peer: a reset, never end of stream, once the bytes that reached it are read.
        var buffer = new byte[64 * 1024];
        var e = await Assert.ThrowsAsync<ServalException>(async () =>
        {
            while (true)
            {
                Assert.True(await accepted.ReadAsync(buffer, ct) > 0, "end of stream after a reset");
            }
        });
        Assert.Equal(ServalError.ConnectionReset, e.Error);
        await AssertFailedAsync(accepted, ServalError.ConnectionReset, ct);
    }
}

/// <summary>The reset suite on hosts embedded in the test process.</summary>
public sealed class EmbeddedResetTests() : ResetTests(new EmbeddedMode());

/// <summary>The reset suite on applications attached to servald processes.</summary>
public sealed class AttachedResetTests() : ResetTests(new AttachedMode());
