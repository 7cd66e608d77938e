using System.Diagnostics;
using System.Security.Cryptography;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// A SHA-256-checked stream from one connection to another: the sender writes seeded random bytes in 64 KiB writes and
/// completes its writes, the receiver reads to the end hashing what it gets, and records the time of every read (to
/// find pauses). <see cref="CompleteAsync"/> checks that every byte arrived intact.
/// </summary>
internal sealed class HashedTransfer
{
    private const int WriteSize = 64 * 1024;
    private readonly byte[] _data;
    private readonly List<long> _reads = [];
    private long _received;
    private Task _writer = Task.CompletedTask;
    private Task<byte[]> _reader = Task.FromResult(Array.Empty<byte>());

    private HashedTransfer(int size, int seed)
    {
        _data = new byte[size];
        new Random(seed).NextBytes(_data);
    }

    /// <summary>Bytes the receiver has read so far.</summary>
    public long Received => Interlocked.Read(ref _received);

    /// <summary>Whether the receiver has seen the end of the stream (or failed).</summary>
    public bool IsCompleted => _reader.IsCompleted;

    /// <summary>The SHA-256 of what the sender writes.</summary>
    public byte[] SentDigest => SHA256.HashData(_data);

    /// <summary>Starts sending <paramref name="size"/> bytes (from <paramref name="seed"/>) on <paramref name="from"/>, read from <paramref name="to"/> in reads of at most <paramref name="readSize"/>.</summary>
    public static HashedTransfer Start(ServalConnection from, ServalConnection to, int size, CancellationToken ct, int seed = 63, int readSize = 256 * 1024)
    {
        var t = new HashedTransfer(size, seed);
        t._reader = Task.Run(
            async () =>
            {
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var buffer = new byte[readSize];
                var stream = to.GetStream();
                int n;
                while ((n = await stream.ReadAsync(buffer, ct)) > 0)
                {
                    hash.AppendData(buffer, 0, n);
                    lock (t._reads)
                    {
                        t._reads.Add(Stopwatch.GetTimestamp());
                    }

                    Interlocked.Add(ref t._received, n);
                }

                return hash.GetHashAndReset();
            },
            ct);
        t._writer = Task.Run(
            async () =>
            {
                var stream = from.GetStream();
                for (var offset = 0; offset < t._data.Length; offset += WriteSize)
                {
                    await stream.WriteAsync(t._data.AsMemory(offset, Math.Min(WriteSize, t._data.Length - offset)), ct);
                }

                stream.CompleteWrites();
            },
            ct);
        return t;
    }

    /// <summary>Waits (at most 20 s) until the receiver has read <paramref name="bytes"/> bytes.</summary>
    public Task ReachedAsync(long bytes, CancellationToken ct) =>
        Eventually.UntilAsync(() => Received, received => received >= bytes, $"{bytes} bytes to arrive (bytes received)", TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(5), ct);

    /// <summary>Waits for both ends and checks that every byte arrived intact; returns the receiver's SHA-256.</summary>
    public async Task<byte[]> CompleteAsync()
    {
        await _writer;
        var digest = await _reader;
        Assert.Equal(_data.Length, Received);
        Assert.Equal(SentDigest, digest);
        return digest;
    }

    /// <summary>The longest time without a read from <paramref name="since"/> (a timestamp) to the end.</summary>
    public TimeSpan LongestPauseAfter(long since)
    {
        long[] reads;
        lock (_reads)
        {
            reads = [.. _reads];
        }

        var longest = 0L;
        var previous = since;
        foreach (var at in reads.Where(r => r > since))
        {
            longest = Math.Max(longest, at - previous);
            previous = at;
        }

        return Stopwatch.GetElapsedTime(0, longest);
    }
}
