using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Serval.Stack;
using Serval.Wire;

namespace Serval.AspNetCore;

/// <summary>
/// A Serval stream connection as Kestrel sees it: the transport is the stream's <see cref="ServalStream.AsDuplexPipe"/>
/// view, the local end point is the <see cref="ServiceEndPoint"/> the client connected to, the remote end point the
/// client's link address as an <see cref="IPEndPoint"/> (a stream client has no serviceID), the Serval details are the
/// <see cref="IServalConnectionFeature"/>, and aborting resets the flow.
/// </summary>
internal sealed class ServalConnectionContext : ConnectionContext, IConnectionLifetimeFeature, IConnectionEndPointFeature, IConnectionIdFeature, IConnectionItemsFeature, IServalConnectionFeature
{
    private static long s_next;
    private readonly ServalConnection _connection;
    private readonly ServalStream _stream;
    private readonly CancellationTokenSource _closed = new();
    private int _disposed;

    public ServalConnectionContext(ServalConnection connection, ServiceEndPoint listenEndPoint, FlowInfo? flow)
    {
        _connection = connection;
        _stream = connection.GetStream();
        Transport = _stream.AsDuplexPipe();
        ListenEndPoint = listenEndPoint;
        ServiceLocalEndPoint = flow is null ? listenEndPoint : new ServiceEndPoint(flow.Service);
        LocalFlow = flow?.LocalFlow ?? default;
        PeerFlow = flow?.PeerFlow ?? default;
        PeerAddress = flow?.PeerAddress ?? LinkAddress.None;
        LocalEndPoint = ServiceLocalEndPoint;
        RemoteEndPoint = PeerAddress.IsNone ? null : PeerAddress.ToEndPoint();
        ConnectionId = $"serval-{Interlocked.Increment(ref s_next):x}";
        Features.Set<IConnectionLifetimeFeature>(this);
        Features.Set<IConnectionEndPointFeature>(this);
        Features.Set<IConnectionIdFeature>(this);
        Features.Set<IConnectionItemsFeature>(this);
        Features.Set<IServalConnectionFeature>(this);

        // The connection ends for Kestrel when the peer's data has ended and our writes are done, or on a failure.
        _ = WatchAsync();
    }

    public override string ConnectionId { get; set; }

    private ServiceEndPoint ServiceLocalEndPoint { get; }

    ServiceEndPoint IServalConnectionFeature.LocalEndPoint => ServiceLocalEndPoint;

    public ServiceEndPoint ListenEndPoint { get; }

    public FlowId LocalFlow { get; }

    public FlowId PeerFlow { get; }

    public LinkAddress PeerAddress { get; }

    public ServalConnection Connection => _connection;

    public ValueTask<FlowInfo?> GetFlowInfoAsync(CancellationToken cancellationToken = default) => _connection.GetFlowInfoAsync(cancellationToken);

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
