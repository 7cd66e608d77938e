using System.IO.Pipelines;
using Serval.Backends;

namespace Serval;

/// <summary>
/// The bidirectional byte stream of a <see cref="ServalConnection"/> (System.Net.Quic's <c>QuicStream</c> shape).
/// One read and one write may be outstanding at a time. A write completes when its bytes are in the flow's send
/// buffer, so <see cref="FlushAsync(CancellationToken)"/> has nothing to do; the buffer (the flow-control window)
/// bounds how far a writer runs ahead of the network.
/// </summary>
public sealed class ServalStream : Stream
{
    private readonly ServalConnection _connection;
    private readonly IConnectionBackend _backend;
    private IDuplexPipe? _pipe;

    internal ServalStream(ServalConnection connection, IConnectionBackend backend)
    {
        _connection = connection;
        _backend = backend;
    }

    /// <summary>Completes when the peer's end of stream has been read; faults if the connection failed or was aborted.</summary>
    public Task ReadsClosed => _backend.ReadsClosed;

    /// <summary>
    /// Completes when writing is finished (<see cref="CompleteWrites"/>, or a graceful close); faults if the connection
    /// failed or was aborted. Attached (<see cref="ServalHost.IsAttached"/>): completes when the daemon reports it.
    /// </summary>
    public Task WritesClosed => _backend.WritesClosed;

    /// <inheritdoc/>
    public override bool CanRead => true;

    /// <inheritdoc/>
    public override bool CanWrite => true;

    /// <inheritdoc/>
    public override bool CanSeek => false;

    /// <summary>Not supported.</summary>
    public override long Length => throw new NotSupportedException();

    /// <summary>Not supported.</summary>
    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    /// <summary>
    /// Reads up to <c>buffer.Length</c> bytes; 0 means the peer finished writing (end of stream, its graceful close
    /// only: its transport FIN, every byte before it read). After a reset, a time-out or an abort, this and every later
    /// read (and write) throws instead, and unread bytes are discarded: a transfer cut short never looks complete.
    /// </summary>
    /// <exception cref="ServalException">The connection was reset, timed out or aborted.</exception>
    /// <exception cref="InvalidOperationException">Another read is in progress.</exception>
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        _backend.ReadAsync(buffer, cancellationToken);

    /// <inheritdoc/>
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>
    /// Writes all of <paramref name="buffer"/> into the send buffer, waiting for room as the peer acknowledges. A write
    /// that fits the connection's write stage (up to 1 MiB) completes at once and the stack moves it into the send
    /// buffer in order; if the connection fails before that, the next write fails with its error. Attached (<see cref="ServalHost.IsAttached"/>): completes when the bytes are in the channel to the daemon, which
    /// backs up when the flow's send buffer is full; a failure in the daemon fails the next write. Cancelling a write
    /// that is blocked in the middle of a frame aborts the connection.
    /// </summary>
    /// <exception cref="ServalException">The connection was reset, timed out or aborted, or writes were completed.</exception>
    /// <exception cref="InvalidOperationException">Another write is in progress.</exception>
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        _backend.WriteAsync(buffer, cancellationToken);

    /// <inheritdoc/>
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc/>
    public override int Read(byte[] buffer, int offset, int count) =>
        ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <inheritdoc/>
    public override void Write(byte[] buffer, int offset, int count) =>
        WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <summary>Nothing to do: each completed write is already queued for the flow, in order.</summary>
    public override void Flush()
    {
    }

    /// <summary>Nothing to do: each completed write is already queued for the flow, in order.</summary>
    public override Task FlushAsync(CancellationToken cancellationToken) =>
        cancellationToken.IsCancellationRequested ? Task.FromCanceled(cancellationToken) : Task.CompletedTask;

    /// <summary>Not supported.</summary>
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <summary>Not supported.</summary>
    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>
    /// Finishes the write side: the peer reads end of stream after the data already written. On the wire, the transport
    /// FIN follows that data and the SAL FIN follows its acknowledgement, without waiting for the dispose. Reading goes on
    /// until the peer finishes too.
    /// </summary>
    public void CompleteWrites() => _backend.CompleteWrites();

    /// <summary>Aborts the connection at once (a reset to the peer); pending and later operations fail with <see cref="ServalException"/>.</summary>
    public void Abort() => _ = _connection.CloseAsync(abort: true).AsTask();

    /// <summary>
    /// A pipe view of this stream (System.IO.Pipelines): the reader reads from the stream, the writer writes to it.
    /// Completing the writer completes the stream's writes; disposing the stream ends both.
    /// </summary>
    public IDuplexPipe AsDuplexPipe() => _pipe ??= new DuplexPipe(
        PipeReader.Create(this, new StreamPipeReaderOptions(bufferSize: PipeBufferSize, minimumReadSize: PipeBufferSize / 4, leaveOpen: true)),
        PipeWriter.Create(new CompletingStream(this), new StreamPipeWriterOptions(minimumBufferSize: PipeBufferSize, leaveOpen: false)));

    /// <summary>
    /// Segment size of the pipe view: each read or write crosses to the engine thread, so segments much larger than
    /// the pipelines' 4 KiB default keep bulk transfers from paying one crossing per 4 KiB.
    /// </summary>
    private const int PipeBufferSize = 64 * 1024;

    /// <summary>Closes the connection gracefully (see <see cref="ServalConnection.DisposeAsync"/>).</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _ = _connection.CloseAsync(abort: false).AsTask();
        }

        base.Dispose(disposing);
    }

    /// <summary>Closes the connection gracefully (see <see cref="ServalConnection.DisposeAsync"/>).</summary>
    public override async ValueTask DisposeAsync()
    {
        await _connection.CloseAsync(abort: false).ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }

    /// <summary>The pipe writer's target: writes go to the stream; disposing (completing the writer) completes the stream's writes.</summary>
    private sealed class CompletingStream(ServalStream inner) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override void Flush()
        {
        }

        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
            inner.WriteAsync(buffer, cancellationToken);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            inner.WriteAsync(buffer, offset, count, cancellationToken);

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.CompleteWrites();
            }

            base.Dispose(disposing);
        }
    }
}
