using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace Serval.AspNetCore;

/// <summary>
/// A Serval stream connection as Kestrel sees it: the transport is the stream's <see cref="ServalStream.AsDuplexPipe"/>
/// view, the endpoints are <see cref="ServiceEndPoint"/>s, and aborting resets the flow.
/// </summary>
internal sealed class ServalConnectionContext : ConnectionContext, IConnectionLifetimeFeature, IConnectionEndPointFeature, IConnectionIdFeature, IConnectionItemsFeature
{
    private static long s_next;
    private readonly ServalConnection _connection;
    private readonly ServalStream _stream;
    private readonly CancellationTokenSource _closed = new();
    private int _disposed;

    public ServalConnectionContext(ServalConnection connection, EndPoint localEndPoint)
    {
        _connection = connection;
        _stream = connection.GetStream();
        Transport = _stream.AsDuplexPipe();
        LocalEndPoint = localEndPoint;
        RemoteEndPoint = connection.RemoteEndPoint;
        ConnectionId = $"serval-{Interlocked.Increment(ref s_next):x}";
        Features.Set<IConnectionLifetimeFeature>(this);
        Features.Set<IConnectionEndPointFeature>(this);
        Features.Set<IConnectionIdFeature>(this);
        Features.Set<IConnectionItemsFeature>(this);

        // The connection ends for Kestrel when the peer's data has ended and our writes are done, or on a failure.
        _ = WatchAsync();
    }

    public override string ConnectionId { get; set; }

    public override IFeatureCollection Features { get; } = new FeatureCollection();

    public override IDictionary<object, object?> Items { get; set; } = new Dictionary<object, object?>();

    public override IDuplexPipe Transport { get; set; }

    public override EndPoint? LocalEndPoint { get; set; }

    public override EndPoint? RemoteEndPoint { get; set; }

    public override CancellationToken ConnectionClosed
    {
        get => _closed.Token;
        set => throw new NotSupportedException("The Serval transport owns the ConnectionClosed token.");
    }

    public override void Abort(ConnectionAbortedException abortReason)
    {
        _stream.Abort();
        Cancel();
    }

    private async Task WatchAsync()
    {
        try
        {
            await Task.WhenAll(_stream.ReadsClosed, _stream.WritesClosed).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // reset, timed out or aborted: closed as well
        }

        Cancel();
    }

    private void Cancel()
    {
        try
        {
            _closed.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public override async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            await Transport.Input.CompleteAsync().ConfigureAwait(false);
            await Transport.Output.CompleteAsync().ConfigureAwait(false);
            await _connection.DisposeAsync().ConfigureAwait(false);
            Cancel();
            _closed.Dispose();
        }

        await base.DisposeAsync().ConfigureAwait(false);
    }
}
