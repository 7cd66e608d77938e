using Serval.Stack.Tests.Engine;
using Serval.Wire;
using Xunit;
using static Serval.Stack.Tests.ControlPlane.ControlTopology;

namespace Serval.Stack.Tests.ControlPlane;

/// <summary>Replicas join and leave under load, in the simulator: established flows never notice.</summary>
public sealed class ChurnTests
{
    private sealed record Held(SocketHandle Client, int Replica, SocketHandle Server, byte[] Sent);

    [Fact]
    public void Replicas_joining_and_leaving_every_two_seconds_break_no_established_flow_and_leave_nothing_behind()
    {
        var t = Build(31, replicas: 4);
        var prefix = ServicePrefix.Exact(Web);
        var listeners = new SocketHandle[4];
        for (var i = 0; i < 3; i++)
        {
            listeners[i] = Listen(t.Replicas[i], Web);
        }

        t.Net.RunFor(TimeSpan.FromSeconds(1));
        var client = t.Client.Host;
        var connecting = new List<SocketHandle>();
        var held = new Dictionary<uint, Held>(); // by the server's flowID
        var byClientPeerFlow = new Dictionary<uint, SocketHandle>();
        var refused = 0;
        var draining = -1;
        var seed = 100;

        void AcceptEverywhere()
        {
            for (var r = 0; r < t.Replicas.Count; r++)
            {
                if (listeners[r].IsNone)
                {
                    continue;
                }

                var engine = t.Replicas[r].Host.Engine;
                while (engine.Accept(listeners[r], out var s) == ServalError.None)
                {
                    held[engine.GetFlow(s)!.LocalFlow.Value] = new Held(default, r, s, []);
                }
            }
        }

        void PairAndSend()
        {
            foreach (var c in connecting.ToList())
            {
                var state = client.Engine.GetState(c);
                if (state == SalState.Closed)
                {
                    // Only a connect that raced a replica's abrupt leave may fail, and then at once, as refused.
                    Assert.Equal(ServalError.ConnectionRefused, client.Engine.GetError(c));
                    refused++;
                    connecting.Remove(c);
                    continue;
                }

                if (state != SalState.Connected || !held.TryGetValue(client.Engine.GetFlow(c)!.PeerFlow.Value, out var h) || !h.Client.IsNone)
                {
                    continue;
                }

                var data = SimApp.RandomBytes(8 * 1024, seed++);
                Assert.Equal(ServalError.None, client.Engine.Write(c, data, client.Now, out var n));
                Assert.Equal(data.Length, n);
                held[client.Engine.GetFlow(c)!.PeerFlow.Value] = h with { Client = c, Sent = data };
                connecting.Remove(c);
            }
        }

        for (var step = 0; step < 200; step++)
        {
            connecting.Add(t.Client.Do(() => client.Connect(Web)));
            connecting.Add(t.Client.Do(() => client.Connect(Web)));
            t.Net.RunFor(TimeSpan.FromMilliseconds(100));
            AcceptEverywhere();
            PairAndSend();

            if (step % 20 == 10)
            {
                // Every 2 s one replica leaves — gracefully (drain, then close 1 s later) or abruptly (close) in turn —
                // and a stopped one joins.
                var up = Enumerable.Range(0, 4).Where(r => !listeners[r].IsNone && r != draining).ToList();
                var leaving = up[step / 20 % up.Count];
                if (step / 20 % 2 == 0)
                {
                    Assert.True(t.Replicas[leaving].Do(() => t.ReplicaControllers[leaving].SetDraining(prefix, true, t.Net.Now)));
                    draining = leaving;
                }
                else
                {
                    t.Replicas[leaving].Do(() => t.Replicas[leaving].Host.Engine.Close(listeners[leaving], t.Net.Now));
                    listeners[leaving] = default;
                }

                var joining = Enumerable.Range(0, 4).First(r => listeners[r].IsNone && r != leaving);
                listeners[joining] = Listen(t.Replicas[joining], Web);
            }
            else if (step % 20 == 0 && draining >= 0)
            {
                var r = draining;
                t.Replicas[r].Do(() => t.Replicas[r].Host.Engine.Close(listeners[r], t.Net.Now));
                listeners[r] = default;
                draining = -1;
            }
        }

        Assert.True(t.Net.RunUntil(() => { AcceptEverywhere(); PairAndSend(); return connecting.Count == 0; }, TimeSpan.FromSeconds(10)), $"{connecting.Count} connects still pending");

        // Every established flow still works both ways: the bytes sent at its start arrive, and an echo comes back.
        var flows = held.Values.Where(h => !h.Client.IsNone).ToList();
        Assert.True(flows.Count >= 350, $"only {flows.Count} flows were established");
        Assert.Contains(client.Events, e => e.Kind == EngineEventKind.Connected);
        Assert.DoesNotContain(client.Events, e => e.Kind == EngineEventKind.Closed && flows.Any(f => f.Client == e.Socket));
        foreach (var f in flows)
        {
            var server = t.Replicas[f.Replica];
            Assert.Equal(SimApp.Sha(f.Sent), SimApp.Sha(SimApp.ReadBytes(t.Net, server.Host, f.Server, f.Sent.Length, TimeSpan.FromSeconds(30))));
            t.Exchange(server, f.Server, f.Client, 1000);
        }

        // Everyone closes; after TIME-WAIT nothing is left on any host, and the router holds exactly the live listeners.
        foreach (var f in flows)
        {
            t.Client.Do(() => client.Engine.Close(f.Client, client.Now));
            t.Replicas[f.Replica].Do(() => t.Replicas[f.Replica].Host.Engine.Close(f.Server, t.Net.Now));
        }

        t.Net.RunFor(TimeSpan.FromSeconds(70));
        Assert.DoesNotContain(client.Events, e => e.Kind == EngineEventKind.Closed && e.Error != ServalError.None && flows.Any(f => f.Client == e.Socket));
        Assert.Equal(0, client.Engine.GetFlows().Count(f => f.Protocol == TransportProtocol.Stream));
        for (var r = 0; r < 4; r++)
        {
            Assert.Equal(0, t.Replicas[r].Host.Engine.GetFlows().Count(f => f.Protocol == TransportProtocol.Stream));
        }

        var live = Enumerable.Range(0, 4).Count(r => !listeners[r].IsNone);
        Assert.Equal(live, t.RouterTargets(Web).Count);
        Assert.Equal(0, t.Router.Host.Engine.Counters.FlowFaults + client.Engine.Counters.FlowFaults);
        Assert.True(refused == 0, $"{refused} connects refused although refused SYNs are resolved once more");
    }
}
