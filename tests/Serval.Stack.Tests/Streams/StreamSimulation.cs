using Serval.Simulation;
using Serval.Stack.Streams;
using Serval.Wire;

namespace Serval.Stack.Tests.Streams;

/// <summary>
/// A deterministic simulation on virtual time: stream connections joined by simulated paths (<see cref="SimPath"/> on a
/// <see cref="SimulatedNetwork"/>'s event queue). The handshake is
/// done directly through the connections' handshake methods (advancing time by the links' delays, serialising each
/// segment through the wire code); then the loop delivers packets, runs timers and lets the applications act.
/// </summary>
internal sealed class StreamSimulation : IDisposable
{
    private readonly List<StreamEndpoint> _endpoints = [];
    private readonly byte[] _scratch = new byte[128];

    public SimulatedNetwork Network { get; } = new(0);

    public TimeSpan Now { get; private set; } = TimeSpan.FromSeconds(1);

    public IReadOnlyList<StreamEndpoint> Endpoints => _endpoints;

    public long Steps { get; private set; }

    public SimPath CreateLink(LinkConditions conditions, ulong seed) => new(Network, conditions, seed);

    /// <summary>Opens a connection from a new client to a new server over the two links.</summary>
    public (StreamEndpoint Client, StreamEndpoint Server) Connect(
        StreamOptions clientOptions,
        StreamOptions serverOptions,
        SimPath clientToServer,
        SimPath serverToClient,
        ulong seed,
        uint? clientIss = null,
        uint? serverIss = null,
        Func<TcpRepr, TcpRepr>? clientSynTransform = null)
    {
        var client = new StreamEndpoint("client", new StreamConnection(clientOptions, new SeededRandomSource(seed), Now, clientIss), seed * 31 + 7);
        var server = new StreamEndpoint("server", new StreamConnection(serverOptions, new SeededRandomSource(seed + 1), Now, serverIss), seed * 31 + 11);
        client.Outbound = clientToServer;
        client.Destination = server;
        server.Outbound = serverToClient;
        server.Destination = client;

        var syn = RoundTrip(client.Connection.CreateSyn(Now));
        if (clientSynTransform is not null)
        {
            syn = clientSynTransform(syn);
        }

        Now += clientToServer.Conditions.Delay;
        if (!server.Connection.OnSyn(syn, Now))
        {
            throw new InvalidOperationException("SYN refused");
        }

        var synAck = RoundTrip(server.Connection.CreateSynAck(Now));
        Now += serverToClient.Conditions.Delay;
        if (!client.Connection.OnSynAck(synAck, Now))
        {
            throw new InvalidOperationException("SYN-ACK refused");
        }

        var ack = RoundTrip(client.Connection.CreateHandshakeAck());
        Now += clientToServer.Conditions.Delay;
        if (!server.Connection.OnHandshakeAck(ack, default, Now))
        {
            throw new InvalidOperationException("handshake ACK refused");
        }

        _endpoints.Add(client);
        _endpoints.Add(server);
        return (client, server);
    }

    /// <summary>
    /// Runs until <paramref name="done"/> holds (true) or nothing can happen / the time limit passes (false).
    /// <paramref name="tick"/> wakes the applications periodically even when the network is idle (for applications
    /// that act on a schedule of their own).
    /// </summary>
    public bool RunUntil(Func<bool> done, TimeSpan limit, TimeSpan? tick = null)
    {
        var deadline = Now + limit;
        var sameTime = 0;
        while (true)
        {
            foreach (var e in _endpoints)
            {
                e.Service(Now);
            }

            if (done())
            {
                return true;
            }

            TimeSpan? next = Network.NextEventTime;
            if (tick is { } t0 && (next is null || Now + t0 < next))
            {
                next = Now + t0;
            }

            foreach (var e in _endpoints)
            {
                var t = e.Connection.NextTimeout;
                if (t is { } tv && (next is null || tv < next))
                {
                    next = tv;
                }
            }

            if (next is not { } n || n > deadline)
            {
                return false;
            }

            if (n <= Now)
            {
                if (++sameTime > 100_000)
                {
                    throw new InvalidOperationException($"No progress at {Now}: a timer stays due.");
                }

                n = Now;
            }
            else
            {
                sameTime = 0;
            }

            Now = n;
            Steps++;
            Network.RunUntil(Now);
        }
    }

    /// <summary>Advances virtual time (nothing is delivered on the way).</summary>
    public void Advance(TimeSpan by) => Now += by;

    public void Dispose()
    {
        foreach (var e in _endpoints)
        {
            e.Dispose();
        }
    }

    private TcpRepr RoundTrip(TcpRepr segment)
    {
        var n = segment.Emit(_scratch);
        if (!TcpRepr.TryParse(_scratch.AsSpan(0, n), out var parsed, out _, out var error))
        {
            throw new InvalidOperationException($"handshake segment does not parse: {error}");
        }

        return parsed;
    }
}
