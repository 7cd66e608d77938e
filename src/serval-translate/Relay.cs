using System.Net.Sockets;

namespace Serval.Translate;

/// <summary>
/// Copies bytes both ways between a TCP socket and a Serval stream until both directions have ended. The end of one
/// direction is passed on as a half-close (TCP <c>shutdown(SHUT_WR)</c>, Serval <see cref="ServalStream.CompleteWrites"/>),
/// so request/response protocols that half-close keep working; a failure of either side (a reset, an error, the
/// translator stopping) resets the other side at once, so that neither end mistakes a broken relay for a clean end.
/// </summary>
internal static class Relay
{
    private const int BufferSize = 64 * 1024;

    /// <summary>Relays until both directions end; returns the bytes moved TCP → Serval and Serval → TCP.</summary>
    /// <exception cref="Exception">The relay failed (both sides have been reset by then).</exception>
    public static async Task<(long TcpToServal, long ServalToTcp)> RunAsync(Socket tcp, ServalStream serval, CancellationToken cancellationToken)
    {
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var ct = failed.Token;
        await using var tcpStream = new NetworkStream(tcp, ownsSocket: false);
        long up = 0, down = 0;

        async Task TcpToServalAsync()
        {
            var buffer = new byte[BufferSize];
            int n;
            while ((n = await tcpStream.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
            {
                await serval.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                up += n;
            }

            serval.CompleteWrites();
        }

        async Task ServalToTcpAsync()
        {
            var buffer = new byte[BufferSize];
            int n;
            while ((n = await serval.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
            {
                await tcpStream.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                down += n;
            }

            tcp.Shutdown(SocketShutdown.Send);
        }

        var directions = new[] { Guard(TcpToServalAsync()), Guard(ServalToTcpAsync()) };

        async Task Guard(Task direction)
        {
            try
            {
                await direction.ConfigureAwait(false);
            }
            catch
            {
                // Stop the other direction and reset both ends: the data cannot all arrive any more.
                await failed.CancelAsync().ConfigureAwait(false);
                Reset(tcp);
                serval.Abort();
                throw;
            }
        }

        try
        {
            await Task.WhenAll(directions).ConfigureAwait(false);
        }
        catch (Exception) when (directions.FirstOrDefault(d => d.IsFaulted && d.Exception?.InnerException is not OperationCanceledException) is { } first)
        {
            throw first.Exception!.InnerException!;
        }

        return (up, down);
    }

    /// <summary>Closes a TCP socket with a reset (linger 0) instead of a FIN.</summary>
    public static void Reset(Socket tcp)
    {
        try
        {
            tcp.LingerState = new LingerOption(true, 0);
            tcp.Close();
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already closed.
        }
    }
}
