using Serval.Simulation;
using Serval.Stack.Streams;
using Serval.Wire;

namespace Serval.Stack.Tests.Streams;

/// <summary>Runs bulk transfers through <see cref="StreamSimulation"/>.</summary>
internal static class Transfers
{
    /// <summary>
    /// Client sends <paramref name="bytes"/> to the server (or the server to the client when
    /// <paramref name="serverSends"/>), both close; returns when the receiver has read everything and both FINs
    /// were acknowledged.
    /// </summary>
    public static TransferResult OneWay(
        LinkConditions forward,
        LinkConditions reverse,
        long bytes,
        ulong seed,
        StreamOptions? senderOptions = null,
        StreamOptions? receiverOptions = null,
        bool serverSends = false,
        TimeSpan? limit = null,
        Func<TcpRepr, TcpRepr>? clientSynTransform = null,
        uint? clientIss = null,
        uint? serverIss = null)
    {
        using var sim = new StreamSimulation();
        var clientToServer = sim.CreateLink(serverSends ? reverse : forward, seed * 7919 + 1);
        var serverToClient = sim.CreateLink(serverSends ? forward : reverse, seed * 7919 + 2);
        var clientOptions = (serverSends ? receiverOptions : senderOptions) ?? StreamOptions.Default;
        var serverOptions = (serverSends ? senderOptions : receiverOptions) ?? StreamOptions.Default;
        var (client, server) = sim.Connect(clientOptions, serverOptions, clientToServer, serverToClient, seed, clientIss, serverIss, clientSynTransform);
        var sender = serverSends ? server : client;
        var receiver = serverSends ? client : server;
        sender.BytesToSend = bytes;
        var start = sim.Now;
        var completed = sim.RunUntil(
            () => receiver.ReadsCompletedAt is not null && sender.Connection.FinAcknowledged &&
                  receiver.Connection.WritesCompleted && receiver.Connection.FinAcknowledged,
            limit ?? TimeSpan.FromMinutes(30));
        var end = receiver.LastByteReadAt ?? sim.Now;
        return new TransferResult
        {
            Completed = completed,
            HashesMatch = sender.SentHash.AsSpan().SequenceEqual(receiver.ReceivedHash),
            BytesSent = sender.BytesWritten,
            BytesReceived = receiver.BytesRead,
            Duration = end - start,
            SenderStatistics = sender.Connection.Statistics,
            ReceiverStatistics = receiver.Connection.Statistics,
            Steps = sim.Steps,
        };
    }
}
