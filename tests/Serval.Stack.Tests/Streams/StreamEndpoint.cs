using System.Security.Cryptography;
using Serval.Simulation;
using Serval.Stack.Streams;
using Serval.Wire;

namespace Serval.Stack.Tests.Streams;

/// <summary>
/// One end of a simulated stream: the connection plus a tiny application that writes a deterministic byte stream,
/// reads everything it can, and hashes both directions.
/// </summary>
internal sealed class StreamEndpoint : IPathReceiver, IDisposable
{
    private readonly byte[] _wire = new byte[65536];
    private readonly byte[] _payload;
    private readonly byte[] _chunk = new byte[64 * 1024];
    private readonly IncrementalHash _sentHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly IncrementalHash _receivedHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly DataSource _source;

    public StreamEndpoint(string name, StreamConnection connection, ulong dataSeed)
    {
        Name = name;
        Connection = connection;
        _payload = new byte[connection.Options.Mss];
        _source = new DataSource(dataSeed);
    }

    public string Name { get; }

    public StreamConnection Connection { get; }

    public SimPath? Outbound { get; set; }

    public IPathReceiver? Destination { get; set; }

    /// <summary>Bytes the application writes in total.</summary>
    public long BytesToSend { get; set; }

    /// <summary>Complete writes (send FIN) once everything is written.</summary>
    public bool CompleteAfterSending { get; set; } = true;

    /// <summary>Stop reading (the receive window fills).</summary>
    public bool ReadPaused { get; set; }

    public long BytesWritten { get; private set; }

    public long BytesRead { get; private set; }

    public TimeSpan? FirstByteReadAt { get; private set; }

    /// <summary>When set, <see cref="MarkReachedAt"/> records when this many bytes had been read.</summary>
    public long MarkAfterBytes { get; set; } = -1;

    public TimeSpan? MarkReachedAt { get; private set; }

    public TimeSpan? LastByteReadAt { get; private set; }

    public TimeSpan? ReadsCompletedAt { get; private set; }

    public long SegmentsTransmitted { get; private set; }

    public long MalformedReceived { get; private set; }

    /// <summary>Observes every transmitted segment (tracing in tests).</summary>
    public Action<TimeSpan, TcpRepr, int>? OnTransmit { get; set; }

    public byte[] SentHash => _sentHash.GetCurrentHash();

    public byte[] ReceivedHash => _receivedHash.GetCurrentHash();

    public void Receive(TimeSpan now, ReadOnlySpan<byte> packet)
    {
        if (!TcpRepr.TryParse(packet, out var repr, out var headerLength, out _))
        {
            MalformedReceived++;
            return;
        }

        Connection.OnSegment(repr, packet[headerLength..], now);
    }

    /// <summary>Lets the application read and write, then transmits everything the connection has to send.</summary>
    public void Service(TimeSpan now)
    {
        if (!ReadPaused)
        {
            int n;
            while ((n = Connection.Read(_chunk)) > 0)
            {
                _receivedHash.AppendData(_chunk, 0, n);
                BytesRead += n;
                FirstByteReadAt ??= now;
                LastByteReadAt = now;
                if (MarkAfterBytes >= 0 && MarkReachedAt is null && BytesRead >= MarkAfterBytes)
                {
                    MarkReachedAt = now;
                }
            }

            if (Connection.ReadsCompleted && ReadsCompletedAt is null)
            {
                ReadsCompletedAt = now;
            }
        }

        while (BytesWritten < BytesToSend && Connection.SendBufferFree > 0)
        {
            var n = (int)Math.Min(Math.Min(_chunk.Length, BytesToSend - BytesWritten), Connection.SendBufferFree);
            var span = _chunk.AsSpan(0, n);
            _source.Fill(span);
            var written = Connection.Write(span);
            if (written != n)
            {
                throw new InvalidOperationException($"Write accepted {written} of {n} bytes with {Connection.SendBufferFree} free.");
            }

            _sentHash.AppendData(span);
            BytesWritten += n;
        }

        if (BytesWritten == BytesToSend && CompleteAfterSending && !Connection.WritesCompleted && Connection.Error == StreamError.None)
        {
            Connection.CompleteWrites();
        }

        Flush(now);
    }

    /// <summary>Transmits everything the connection wants to send now.</summary>
    public void Flush(TimeSpan now)
    {
        while (Connection.TryPoll(now, _payload, out var segment, out var length))
        {
            var headerLength = segment.Emit(_wire);
            _payload.AsSpan(0, length).CopyTo(_wire.AsSpan(headerLength));
            SegmentsTransmitted++;
            OnTransmit?.Invoke(now, segment, length);
            Outbound?.Transmit(now, Destination!, _wire.AsSpan(0, headerLength + length));
        }
    }

    public void Dispose()
    {
        _sentHash.Dispose();
        _receivedHash.Dispose();
    }
}
