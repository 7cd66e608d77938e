using Serval.Simulation;
using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>
/// Flows whose only address goes away (docs/migration-model.md, "Flows without a path"): they wait, frozen, for an
/// interface of their family; a new one (another address, or the same address back) takes them over with an RSYN and
/// no byte is lost; the interface coming back resumes them at once; none within the user timeout fails them with
/// <see cref="ServalError.NetworkDown"/>. Removed interface indices are reused once no flow refers to them.
/// </summary>
public sealed class StrandedFlowTests
{
    private static readonly ServiceId Svc = ServiceId.FromName("renumbered");
    private static readonly LinkAddress ClientAddr = LinkAddress.Parse("10.0.0.1");
    private static readonly LinkAddress ServerAddr = LinkAddress.Parse("10.0.0.2");

    private sealed record Setup(SimulatedNetwork Net, SimLink Lan, SimHost Client, SimHost Server, int ClientIface, SocketHandle C, SocketHandle S);

    private static Setup Build(ulong seed, StreamOptions? clientStream = null)
    {
        var net = new SimulatedNetwork(seed);
        var lan = net.AddLink("lan", LinkConditions.Perfect with { Delay = TimeSpan.FromMilliseconds(5), BandwidthBitsPerSecond = 100_000_000, QueueBytes = 512 * 1024 });
        var client = net.AddHost("client");
        var server = net.AddHost("server");
        if (clientStream is not null)
        {
            client.Engine.StreamOptions = clientStream;
        }

        var c1 = client.Attach(lan, ClientAddr);
        server.Attach(lan, ServerAddr);
        client.AddForward(ServicePrefix.Default, ServerAddr, c1);
        var l = server.Listen(Svc);
        var c = client.Connect(Svc);
        Assert.True(net.RunUntil(() => client.IsConnected(c), TimeSpan.FromSeconds(10)));
        var s = net.AcceptOne(server, l);
        return new Setup(net, lan, client, server, c1, c, s);
    }

    /// <summary>
    /// Streams <paramref name="size"/> bytes client→server; runs <paramref name="during"/> once when <paramref name="at"/>
    /// bytes have arrived; returns the virtual times at which bytes arrived (for gaps) after checking every byte.
    /// </summary>
    private static List<TimeSpan> Transfer(Setup t, int size, int at, Action during, TimeSpan? limit = null)
    {
        var data = SimApp.RandomBytes(size, size);
        var sent = 0;
        var received = new MemoryStream();
        var arrivals = new List<TimeSpan>();
        var buffer = new byte[65536];
        var fired = false;
        var done = false;
        var ok = t.Net.RunUntil(
            () =>
            {
                while (sent < data.Length && t.Client.Engine.Write(t.C, data.AsSpan(sent), t.Client.Now, out var n) == ServalError.None && n > 0)
                {
                    sent += n;
                }

                if (sent == data.Length)
                {
                    t.Client.Engine.CompleteWrites(t.C, t.Client.Now);
                }

                t.Client.Pump();
                while (t.Server.Engine.Read(t.S, buffer, t.Server.Now, out var n, out _) == ServalError.None && n > 0)
                {
                    received.Write(buffer, 0, n);
                    arrivals.Add(t.Net.Now);
                }

                t.Server.Engine.Read(t.S, buffer, t.Server.Now, out _, out done);
                t.Server.Pump();
                if (!fired && received.Length >= at)
                {
                    fired = true;
                    during();
                }

                return done;
            },
            limit ?? TimeSpan.FromMinutes(2));
        Assert.True(ok, $"transfer incomplete: {received.Length} of {size}; client {SimApp.Describe(t.Client, t.C)}; server {SimApp.Describe(t.Server, t.S)}");
        Assert.Equal(SimApp.Sha(data), SimApp.Sha(received.ToArray()));
        return arrivals;
    }

    [Fact]
    public void A_flow_whose_only_address_goes_waits_and_moves_to_the_new_address_without_losing_a_byte()
    {
        var t = Build(1);
        var renumbered = LinkAddress.Parse("10.0.1.1");
        var removedAt = TimeSpan.Zero;
        var newIface = -1;
        var arrivals = Transfer(t, 8 * 1024 * 1024, 2 * 1024 * 1024, () =>
        {
            removedAt = t.Net.Now;
            t.Client.Remove(t.ClientIface);
            Assert.Equal(1, t.Client.Engine.Counters.FlowsStranded);
            Assert.Equal(0, t.Client.Engine.Counters.MigrationsStarted); // nowhere to go yet
            t.Net.After(TimeSpan.FromSeconds(3), () => newIface = t.Client.Attach(t.Lan, renumbered));
        });

        Assert.NotEqual(t.ClientIface, newIface); // the old index is still the flow's until it moves
        var flow = t.Client.Engine.GetFlow(t.C)!;
        Assert.Equal(renumbered, flow.LocalAddress);
        Assert.Equal(newIface, flow.Interface);
        Assert.Equal(renumbered, t.Server.Engine.GetFlow(t.S)!.PeerAddress);
        Assert.Equal(1, t.Client.Engine.Counters.MigrationsCompleted);
        Assert.Equal(0, t.Client.Engine.Counters.StrandedTimeouts);

        // Nothing arrived while the host had no address; the flow resumed within a few round trips of the new one.
        var resumed = arrivals.First(a => a > removedAt + TimeSpan.FromSeconds(3));
        Assert.DoesNotContain(arrivals, a => a > removedAt + TimeSpan.FromMilliseconds(100) && a < removedAt + TimeSpan.FromSeconds(3));
        Assert.InRange(resumed - (removedAt + TimeSpan.FromSeconds(3)), TimeSpan.Zero, TimeSpan.FromMilliseconds(100));

        // The old index is free now: the next interface takes it.
        Assert.Equal(t.ClientIface, t.Client.Attach(t.Lan, LinkAddress.Parse("10.0.2.1")));
    }

    [Fact]
    public void The_same_address_coming_back_as_a_new_interface_takes_the_flow_over()
    {
        var t = Build(2);
        var newIface = -1;
        Transfer(t, 4 * 1024 * 1024, 1024 * 1024, () =>
        {
            t.Client.Remove(t.ClientIface);
            t.Net.After(TimeSpan.FromSeconds(2), () => newIface = t.Client.Attach(t.Lan, ClientAddr));
        });

        var flow = t.Client.Engine.GetFlow(t.C)!;
        Assert.Equal(newIface, flow.Interface);
        Assert.Equal(ClientAddr, flow.LocalAddress);
        Assert.Equal(1, t.Client.Engine.Counters.MigrationsCompleted);
    }

    [Fact]
    public void A_flow_resumes_at_once_when_its_interface_comes_back_up()
    {
        var t = Build(3);
        var upAt = TimeSpan.Zero;
        var arrivals = Transfer(t, 4 * 1024 * 1024, 1024 * 1024, () =>
        {
            t.Client.Do(e => e.SetInterfaceUp(t.ClientIface, false, t.Client.Now));
            upAt = t.Net.Now + TimeSpan.FromSeconds(4);
            t.Net.After(TimeSpan.FromSeconds(4), () => t.Client.Do(e => e.SetInterfaceUp(t.ClientIface, true, t.Client.Now)));
        });

        // No RSYN was needed (same interface, same address), and the stream did not wait out a backed-off timer.
        Assert.Equal(0, t.Client.Engine.Counters.MigrationsStarted);
        Assert.Equal(1, t.Client.Engine.Counters.FlowsStranded);
        Assert.InRange(arrivals.First(a => a > upAt) - upAt, TimeSpan.Zero, TimeSpan.FromMilliseconds(50));
    }

    [Fact]
    public void A_flow_without_an_address_fails_with_NetworkDown_after_its_user_timeout()
    {
        var t = Build(4, StreamOptions.Default with { UserTimeout = TimeSpan.FromSeconds(2) });
        var closed = new List<(TimeSpan At, EngineEvent Event)>();
        t.Client.OnEvent = e =>
        {
            if (e.Kind == EngineEventKind.Closed)
            {
                closed.Add((t.Net.Now, e));
            }
        };
        var data = SimApp.RandomBytes(1024 * 1024, 4);
        t.Client.Do(e => e.Write(t.C, data, t.Client.Now, out _));
        t.Net.RunFor(TimeSpan.FromMilliseconds(30)); // data in flight
        var removedAt = t.Net.Now;
        t.Client.Remove(t.ClientIface);
        t.Net.RunFor(TimeSpan.FromSeconds(1.9));
        Assert.Empty(closed);
        Assert.True(t.Net.RunUntil(() => closed.Count > 0, TimeSpan.FromSeconds(2)));
        Assert.Equal(ServalError.NetworkDown, closed[0].Event.Error);
        Assert.Equal(t.C, closed[0].Event.Socket);
        Assert.InRange(closed[0].At - removedAt, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(2.1));
        Assert.Equal(1, t.Client.Engine.Counters.StrandedTimeouts);
        Assert.Equal(0, t.Client.Engine.Counters.UserTimeouts);
        Assert.Equal(ServalError.NetworkDown, t.Client.Engine.Write(t.C, data, t.Client.Now, out _));
    }

    [Fact]
    public void An_idle_flow_without_an_address_also_gives_up_and_one_that_waits_for_ever_does_not()
    {
        var t = Build(5, StreamOptions.Default with { UserTimeout = TimeSpan.FromSeconds(1) });
        t.Client.Remove(t.ClientIface);
        Assert.True(t.Net.RunUntil(() => t.Client.Engine.GetState(t.C) == SalState.Closed, TimeSpan.FromSeconds(1.1)));
        Assert.Equal(1, t.Client.Engine.Counters.StrandedTimeouts);

        var forever = Build(6, StreamOptions.Default with { UserTimeout = null });
        forever.Client.Remove(forever.ClientIface);
        forever.Net.RunFor(TimeSpan.FromMinutes(5));
        Assert.Equal(SalState.Connected, forever.Client.Engine.GetState(forever.C));
        Assert.Equal(0, forever.Client.Engine.Counters.ControlRetransmissions); // nothing sent into the void
        var iface = forever.Client.Attach(forever.Lan, LinkAddress.Parse("10.0.1.1"));
        Assert.True(forever.Net.RunUntil(() => forever.Server.Engine.GetFlow(forever.S)!.PeerAddress == LinkAddress.Parse("10.0.1.1"), TimeSpan.FromSeconds(1)));
        Assert.Equal(iface, forever.Client.Engine.GetFlow(forever.C)!.Interface);
    }

    [Fact]
    public void A_flow_whose_new_address_goes_too_waits_again_and_completes_on_a_third()
    {
        var t = Build(7);
        Transfer(t, 4 * 1024 * 1024, 1024 * 1024, () =>
        {
            t.Client.Remove(t.ClientIface);
            t.Net.After(TimeSpan.FromSeconds(1), () =>
            {
                var second = t.Client.Attach(t.Lan, LinkAddress.Parse("10.0.1.1")); // the RSYN leaves...
                t.Client.Remove(second);                                            // ...and its address is gone
            });
            t.Net.After(TimeSpan.FromSeconds(2), () => t.Client.Attach(t.Lan, LinkAddress.Parse("10.0.2.1")));
        });

        Assert.Equal(LinkAddress.Parse("10.0.2.1"), t.Server.Engine.GetFlow(t.S)!.PeerAddress);
        Assert.Equal(1, t.Client.Engine.Counters.FlowsStranded); // one wait: it ends when a move completes
        Assert.Equal(1, t.Client.Engine.Counters.MigrationsCompleted);
        Assert.Equal(0, t.Client.Engine.Counters.StrandedTimeouts);
        Assert.Equal(0, t.Client.Engine.Counters.MigrationsFailed);
    }

    [Fact]
    public void A_removed_index_is_reused_only_once_no_flow_refers_to_it()
    {
        var t = Build(8);
        var c2 = t.Client.Attach(t.Lan, LinkAddress.Parse("10.0.0.3"));
        Assert.Equal(2, c2);

        // The flow's interface goes: it moves to interface 2 (an RSYN); until the answer, index 1 is still its own.
        t.Client.Remove(t.ClientIface);
        var flow = t.Client.Engine.GetFlow(t.C)!;
        Assert.Equal(MigrationState.RsynSent, flow.Migration);
        Assert.Equal(3, t.Client.Attach(t.Lan, LinkAddress.Parse("10.0.0.5")));
        Assert.True(t.Net.RunUntil(() => t.Client.Engine.GetFlow(t.C)!.Migration == MigrationState.None, TimeSpan.FromSeconds(1)));
        Assert.Equal(c2, t.Client.Engine.GetFlow(t.C)!.Interface);

        t.Client.Remove(3);
        Assert.Throws<InvalidOperationException>(() => t.Client.Engine.SetInterfaceUp(3, true, t.Client.Now));
        Assert.Throws<ArgumentException>(() => t.Client.Engine.RemoveInterface(0, t.Client.Now));
        t.Client.Remove(3); // removing twice does nothing
        Assert.Equal(1, t.Client.Attach(t.Lan, LinkAddress.Parse("10.0.0.6")));
        Assert.Equal(3, t.Client.Attach(t.Lan, LinkAddress.Parse("10.0.0.7")));
        Assert.Equal(4, t.Client.Attach(t.Lan, LinkAddress.Parse("10.0.0.8")));
        var interfaces = t.Client.Engine.Interfaces;
        Assert.Equal(5, interfaces.Count);
        Assert.All(interfaces.Skip(1), i => Assert.True(i.IsUp));
        Assert.Equal(LinkAddress.Parse("10.0.0.6"), interfaces[1].Address);
    }
}
