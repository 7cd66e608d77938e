using System.Security.Cryptography;
using Serval.Simulation;
using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>Small helpers that drive engines in a simulated network the way an application would.</summary>
internal static class SimApp
{
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);

    public static SocketHandle Listen(this SimHost host, ServiceId service, TransportProtocol protocol = TransportProtocol.Stream, int backlog = 128)
    {
        var error = host.Do(e => e.Listen(ServicePrefix.Exact(service), protocol, backlog, host.Now, out var h) is var r && r == ServalError.None ? (r, h) : (r, default));
        Assert.Equal(ServalError.None, error.r);
        return error.h;
    }

    public static SocketHandle Connect(this SimHost host, ServiceId service, TransportProtocol protocol = TransportProtocol.Stream)
    {
        SocketHandle handle = default;
        var r = host.Do(e => e.Connect(service, protocol, host.Now, out handle));
        Assert.Equal(ServalError.None, r);
        return handle;
    }

    public static void AddForward(this SimHost host, ServicePrefix prefix, LinkAddress to, int iface, uint priority = 1, uint weight = 1) =>
        Assert.Equal(ServiceTableResult.Ok, host.Engine.Services.Add(prefix, ServiceTarget.Forward(to, iface), priority, weight, now: host.Now));

    public static bool IsConnected(this SimHost host, SocketHandle h) => host.Engine.GetState(h) is SalState.Connected;

    public static SocketHandle AcceptOne(this SimulatedNetwork net, SimHost server, SocketHandle listener)
    {
        SocketHandle conn = default;
        Assert.True(net.RunUntil(() => server.Engine.Accept(listener, out conn) == ServalError.None, Patience), "no connection to accept");
        return conn;
    }

    /// <summary>Sends <paramref name="data"/> from one end and reads it all at the other, pumping the network; returns what was read.</summary>
    public static byte[] Transfer(SimulatedNetwork net, SimHost from, SocketHandle sender, SimHost to, SocketHandle receiver, byte[] data, TimeSpan timeout, bool closeAfter = true)
    {
        var sent = 0;
        var received = new MemoryStream();
        var buffer = new byte[64 * 1024];
        var done = false;
        void Pump()
        {
            while (sent < data.Length)
            {
                var r = from.Engine.Write(sender, data.AsSpan(sent), from.Now, out var n);
                Assert.Equal(ServalError.None, r);
                if (n == 0)
                {
                    break;
                }

                sent += n;
            }

            if (sent == data.Length && closeAfter)
            {
                from.Engine.CompleteWrites(sender, from.Now);
            }

            from.Pump();
            while (true)
            {
                var r = to.Engine.Read(receiver, buffer, to.Now, out var n, out var completed);
                if (r != ServalError.None || n == 0)
                {
                    done |= completed;
                    break;
                }

                received.Write(buffer, 0, n);
            }

            to.Pump();
        }

        from.OnEvent = _ => { };
        to.OnEvent = _ => { };
        var ok = net.RunUntil(
            () =>
            {
                Pump();
                return closeAfter ? done : received.Length >= data.Length;
            },
            timeout);
        Assert.True(ok, $"transfer incomplete: sent {sent}, received {received.Length} of {data.Length}; sender {Describe(from, sender)}; receiver {Describe(to, receiver)}");
        return received.ToArray();
    }

    /// <summary>Reads from a connection, pumping the network, until <paramref name="count"/> bytes arrived; returns them.</summary>
    public static byte[] ReadBytes(SimulatedNetwork net, SimHost host, SocketHandle connection, int count, TimeSpan timeout)
    {
        var got = new MemoryStream();
        var buffer = new byte[64 * 1024];
        Assert.True(
            net.RunUntil(
                () =>
                {
                    while (host.Engine.Read(connection, buffer, host.Now, out var n, out _) == ServalError.None && n > 0)
                    {
                        got.Write(buffer, 0, n);
                    }

                    return got.Length >= count;
                },
                timeout),
            $"{got.Length} of {count} bytes arrived");
        return got.ToArray();
    }

    public static string Describe(SimHost host, SocketHandle h)
    {
        var f = host.Engine.GetFlow(h);
        var c = host.Engine.Counters;
        return f is null
            ? $"{host.Name}: no flow ({host.Engine.GetError(h)})"
            : $"{host.Name}: {f.State}/{f.Migration} peer {f.PeerAddress} local {f.LocalAddress} validated {c.PathsValidated} failures {c.PathValidationFailures} stream [{f.Stream}]";
    }

    public static byte[] RandomBytes(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    public static string Sha(byte[] b) => Convert.ToHexString(SHA256.HashData(b));
}
