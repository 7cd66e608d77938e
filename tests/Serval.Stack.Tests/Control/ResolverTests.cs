using Serval.Stack.ControlPlane;
using Serval.Stack.Services;
using Serval.Stack.Tests.Engine;
using Serval.Wire;
using Xunit;
using static Serval.Stack.Tests.ControlPlane.ControlTopology;

namespace Serval.Stack.Tests.ControlPlane;

/// <summary>DELAY rules answered by a resolver (docs/protocol.md §7; docs/design.md, "on demand").</summary>
public sealed class ResolverTests
{
    private static readonly ServicePrefix Lazy = new(ServiceId.FromName("lazy"), 16);
    private static readonly ServicePrefix Void = new(ServiceId.FromName("void"), 16);

    private sealed class Setup
    {
        public required ControlTopology T { get; init; }

        public required ResolverController Resolver { get; init; }

        public required StaticServiceResolver Map { get; init; }
    }

    private static Setup Build(ulong seed, IServiceResolver? resolver = null)
    {
        // The replica does not register the lazy prefix: only the resolver knows where it is.
        var t = ControlTopology.Build(seed, replicas: 0);
        t.AddReplica(HostOptions() with { Filter = p => !Lazy.Contains(p) });
        var map = new StaticServiceResolver();
        map.Add(Lazy, new ResolvedTarget(t.ReplicaAddrs[0], t.RouterInterface));
        var controller = t.Router.Add(new ResolverController(t.Router.Host.Engine, resolver ?? map));
        var services = t.Router.Host.Engine.Services;
        Assert.Equal(ServiceTableResult.Ok, services.Add(Lazy, ServiceTarget.Delay(), 10, 1));
        Assert.Equal(ServiceTableResult.Ok, services.Add(Void, ServiceTarget.Delay(), 10, 1));
        return new Setup { T = t, Resolver = controller, Map = map };
    }

    [Fact]
    public void A_delayed_syn_is_released_once_the_static_resolver_installs_a_rule()
    {
        var s = Build(41);
        var t = s.T;
        var a = ServiceId.FromName(Lazy, "a");
        var b = ServiceId.FromName(Lazy, "b");
        Listen(t.Replicas[0], a);
        Listen(t.Replicas[0], b);
        Assert.Empty(t.RouterController.GetRegistrations());

        var c = t.Client.Do(() => t.Client.Host.Connect(a));
        Assert.True(t.Net.RunUntil(() => t.Client.Host.IsConnected(c), TimeSpan.FromMilliseconds(100)));
        Assert.Equal(1, s.Resolver.Counters.Resolved);
        Assert.Equal(0, t.Client.Host.Engine.Counters.ControlRetransmissions);
        Assert.True(t.Router.Host.Engine.Services.TryGetExact(Lazy, out var entry));
        Assert.Contains(entry.Rules, r => r.Target.Type == ServiceTargetType.Forward && r.Target.Address == t.ReplicaAddrs[0] && r.Priority == 100);

        // The installed rule now answers for the whole prefix without the resolver.
        var d = t.Client.Do(() => t.Client.Host.Connect(b));
        Assert.True(t.Net.RunUntil(() => t.Client.Host.IsConnected(d), TimeSpan.FromMilliseconds(100)));
        Assert.Equal(1, s.Resolver.Counters.Delayed);
    }

    [Fact]
    public void An_unresolvable_service_is_dropped_and_counted_and_a_local_connection_waiting_on_it_fails()
    {
        var s = Build(42);
        var t = s.T;
        var c = t.Client.Do(() => t.Client.Host.Connect(ServiceId.FromName(Void, "nobody")));
        Assert.True(t.Net.RunUntil(() => t.Router.Host.Engine.DelayedCount == 0 && s.Resolver.Counters.Unresolved == 1, TimeSpan.FromMilliseconds(100)));
        Assert.Equal(0, s.Resolver.Counters.Resolved);
        Assert.Equal(SalState.Request, t.Client.Host.Engine.GetState(c)); // dropped at the router: the client just retries

        // On a host, the DELAY rule holds the local SYN; no answer fails the connection at once.
        var local = t.Client.Add(new ResolverController(t.Client.Host.Engine, new StaticServiceResolver()));
        t.Client.Host.Engine.Services.Add(Void, ServiceTarget.Delay(), 50, 1);
        var d = t.Client.Do(() => t.Client.Host.Connect(ServiceId.FromName(Void, "nobody")));
        Assert.Equal(SalState.Closed, t.Client.Host.Engine.GetState(d));
        Assert.Equal(ServalError.NoRoute, t.Client.Host.Engine.GetError(d));
        Assert.Equal(1, local.Counters.Unresolved);
    }

    [Fact]
    public void An_asynchronous_answer_releases_every_packet_that_waited_for_it()
    {
        var pending = new PendingResolver();
        var s = Build(43, pending);
        var t = s.T;
        var a = ServiceId.FromName(Lazy, "a");
        Listen(t.Replicas[0], a);
        var c1 = t.Client.Do(() => t.Client.Host.Connect(a));
        var c2 = t.Client.Do(() => t.Client.Host.Connect(a));
        Assert.True(t.Net.RunUntil(() => s.Resolver.PendingCount == 1 && t.Router.Host.Engine.DelayedCount == 2, TimeSpan.FromMilliseconds(100)));
        Assert.Equal(1, pending.Calls);
        Assert.Equal(2, s.Resolver.Counters.Pending);

        t.Net.RunFor(TimeSpan.FromMilliseconds(300));
        Assert.True(t.Router.Do(() => s.Resolver.Complete(a, s.Map.Resolve(a, t.Net.Now), t.Net.Now)));
        Assert.True(t.Net.RunUntil(() => t.Client.Host.IsConnected(c1) && t.Client.Host.IsConnected(c2), TimeSpan.FromMilliseconds(100)));
        Assert.Equal(2, s.Resolver.Counters.Resolved);
        Assert.False(s.Resolver.Complete(a, null, t.Net.Now));

        // Without an answer the wait ends with the engine's delay lifetime.
        var other = ServiceId.FromName(Void, "never");
        t.Client.Do(() => t.Client.Host.Connect(other));
        t.Net.RunFor(TimeSpan.FromSeconds(6));
        Assert.Equal(0, s.Resolver.PendingCount);
        Assert.Equal(1, s.Resolver.Counters.Expired);
    }

    [Fact]
    public void A_resolution_still_shadowed_by_a_more_specific_delay_rule_is_refused()
    {
        var s = Build(44);
        var t = s.T;
        var a = ServiceId.FromName(Lazy, "a");
        Listen(t.Replicas[0], a);
        t.Router.Host.Engine.Services.Add(ServicePrefix.Exact(a), ServiceTarget.Delay(), 10, 1);
        t.Client.Do(() => t.Client.Host.Connect(a));
        t.Net.RunFor(TimeSpan.FromMilliseconds(100));
        Assert.Equal(1, s.Resolver.Counters.Invalid);
        Assert.Equal(0, s.Resolver.Counters.Resolved);
        Assert.Equal(0, t.Router.Host.Engine.DelayedCount);
    }

    [Fact]
    public void The_static_resolver_answers_with_the_longest_matching_prefix()
    {
        var map = new StaticServiceResolver { Lifetime = TimeSpan.FromSeconds(30) };
        var broad = new ServicePrefix(ServiceId.FromName("x"), 4);
        var narrow = new ServicePrefix(ServiceId.FromName("x"), 12);
        map.Add(broad, new ResolvedTarget(LinkAddress.Parse("10.0.0.1"), 1));
        map.Add(narrow, new ResolvedTarget(LinkAddress.Parse("10.0.0.2"), 1, 5));
        map.Add(narrow, new ResolvedTarget(LinkAddress.Parse("10.0.0.3"), 1));

        var r = map.Resolve(ServiceId.FromName("x"), TimeSpan.Zero);
        Assert.NotNull(r);
        Assert.Equal(narrow, r.Prefix);
        Assert.Equal(2, r.Targets.Count);
        Assert.Equal(TimeSpan.FromSeconds(30), r.Lifetime);
        var outside = broad.Apply(ServiceId.FromName("x").WithBit(8, !ServiceId.FromName("x").GetBit(8)));
        Assert.Equal(broad, map.Resolve(outside, TimeSpan.Zero)!.Prefix);
        Assert.Null(map.Resolve(ServiceId.FromName("x").WithBit(0, !ServiceId.FromName("x").GetBit(0)), TimeSpan.Zero));
        Assert.True(map.Remove(narrow));
        Assert.Equal(broad, map.Resolve(ServiceId.FromName("x"), TimeSpan.Zero)!.Prefix);
        Assert.Throws<ArgumentException>(() => map.Add(broad, new ResolvedTarget(LinkAddress.None, 1)));
    }

    [Fact]
    public void The_cache_keeps_at_most_max_answers_installed_and_flush_forgets_everything()
    {
        var net = new Serval.Simulation.SimulatedNetwork(45);
        var lan = net.AddLink("lan", Serval.Simulation.LinkConditions.Perfect with { Delay = TimeSpan.FromMilliseconds(1) });
        var client = new ControlNode(net, net.AddHost("client"));
        var server = net.AddHost("server");
        var ci = client.Host.Attach(lan, ClientAddr);
        var serverAddr = LinkAddress.Parse("10.0.0.20");
        server.Attach(lan, serverAddr);
        var map = new StaticServiceResolver { Lifetime = TimeSpan.FromMinutes(5) };
        var services = Enumerable.Range(0, 3).Select(i => ServiceId.FromName($"cached{i}")).ToArray();
        foreach (var svc in services)
        {
            map.Add(ServicePrefix.Exact(svc), new ResolvedTarget(serverAddr, ci));
            server.Listen(svc);
        }

        var negative = new NegativeResolver(map, TimeSpan.FromSeconds(10));
        var controller = client.Add(new ResolverController(client.Host.Engine, negative, new ResolverControllerOptions { MaxAnswers = 2, NegativeLifetime = TimeSpan.FromSeconds(1) }));
        client.Do(() => client.Host.Engine.Services.Add(ServicePrefix.Default, ServiceTarget.Delay(), 20, 1));
        bool Installed(ServiceId svc) => client.Host.Engine.Services.TryGetExact(ServicePrefix.Exact(svc), out _);

        foreach (var svc in services)
        {
            var c = client.Do(() => client.Host.Connect(svc));
            Assert.True(net.RunUntil(() => client.Host.IsConnected(c), TimeSpan.FromMilliseconds(50)));
        }

        Assert.Equal(1, controller.Counters.Evicted);
        Assert.False(Installed(services[0])); // the oldest answer's rule went with it
        Assert.True(Installed(services[1]) && Installed(services[2]));
        Assert.Equal(2, controller.AnswerCount);

        // A negative answer is kept for min(its lifetime, NegativeLifetime) = 1 s.
        var unknown = ServiceId.FromName("unknown");
        client.Do(() => client.Host.Connect(unknown));
        client.Do(() => client.Host.Connect(unknown));
        Assert.Equal(1, controller.Counters.NegativeHits);
        Assert.Equal(4, negative.Calls);
        net.RunFor(TimeSpan.FromSeconds(1));
        client.Do(() => client.Host.Connect(unknown));
        Assert.Equal(5, negative.Calls);

        // Flush: the rules and the negative answer are forgotten; a rule added by hand at another priority stays.
        Assert.Equal(ServiceTableResult.Ok, client.Host.Engine.Services.Add(ServicePrefix.Exact(services[1]), ServiceTarget.Forward(LinkAddress.Parse("10.0.0.21"), ci), 7, 1));
        Assert.Equal(3, client.Do(() => controller.Flush(client.Now)));
        Assert.False(Installed(services[2]));
        Assert.True(client.Host.Engine.Services.TryGetExact(ServicePrefix.Exact(services[1]), out var kept));
        Assert.Equal(7u, Assert.Single(kept.Rules).Priority);
        client.Do(() => client.Host.Connect(unknown));
        Assert.Equal(6, negative.Calls);
        Assert.Equal(1, controller.NegativeCount); // the new negative answer only
        Assert.Equal(0, controller.AnswerCount);
    }

    /// <summary>Answers from a static map, and NotFound (with a lifetime) where the map has nothing.</summary>
    private sealed class NegativeResolver(StaticServiceResolver map, TimeSpan lifetime) : IServiceResolver
    {
        public int Calls { get; private set; }

        public ServiceResolution? Resolve(ServiceId service, TimeSpan now)
        {
            Calls++;
            return map.Resolve(service, now) ?? ServiceResolution.NotFound(lifetime);
        }
    }

    private sealed class PendingResolver : IServiceResolver
    {
        public int Calls { get; private set; }

        public ServiceResolution? Resolve(ServiceId service, TimeSpan now)
        {
            Calls++;
            return ServiceResolution.Pending;
        }
    }
}
