using System.Diagnostics;
using System.Globalization;
using System.Net;
using Serval.Links;
using Serval.Stack;
using Serval.Stack.ControlPlane;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Benchmarks;

/// <summary>
/// How fast a packet held by a DELAY rule leaves once a rule for it appears (docs/resolution.md), on real hosts with
/// UDP links on loopback:
/// <list type="number">
/// <item>API: a client host with a default DELAY rule starts a connect (its SYN is held), then the rule is added with
/// <see cref="ServalHostAdministration.AddRuleAsync"/>. Time = from just before that call to the moment the client's link is handed
/// the SYN (a decorator link timestamps it): the cross-thread hop, the table update, the engine releasing the packet.</item>
/// <item>Registration: a service router with a default DELAY rule holds a client's SYN; a replica then binds the
/// service and registers it. Time = from the router's link receiving the Register to the router's link being handed
/// the forwarded SYN: the router controller installing the rule, the engine releasing the packet.</item>
/// </list>
/// p50 and p99 over the samples; bounded by a deadline per sample.
/// </summary>
internal static class DelayReleaseBenchmark
{
    private static readonly int Net = Random.Shared.Next(1, 250);
    private static int s_nextHost = 1;

    private static IPAddress NextLoopback() => new([127, (byte)Net, 1, (byte)Interlocked.Increment(ref s_nextHost)]);

    public static async Task<int> RunAsync(string[] args)
    {
        var samples = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 200;
        var api = await ApiAsync(samples).ConfigureAwait(false);
        var registration = await RegistrationAsync(Math.Max(10, samples / 4)).ConfigureAwait(false);
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"delay-release: delay_release_ms_p50={Percentile(api, 0.5):F3} p99={Percentile(api, 0.99):F3} registration_release_ms_p50={Percentile(registration, 0.5):F3} p99={Percentile(registration, 0.99):F3} samples={api.Count}+{registration.Count}"));
        return 0;
    }

    private static async Task<List<double>> ApiAsync(int samples)
    {
        var serverLink = new UdpLink(NextLoopback());
        await using var server = await ServalHost.StartAsync(new ServalHostOptions { Name = "server", Links = [serverLink], MonitorInterfaces = false }).ConfigureAwait(false);
        var tap = new TapLink(new UdpLink(NextLoopback()));
        await using var client = await ServalHost.StartAsync(new ServalHostOptions { Name = "client", Links = [tap], MonitorInterfaces = false }).ConfigureAwait(false);
        await client.Admin.AddRuleAsync(ServicePrefix.Default, ServiceTarget.Delay()).ConfigureAwait(false);
        var results = new List<double>();
        for (var i = -10; i < samples; i++)
        {
            var svc = ServiceId.FromName($"bench.delay.api.{i}");
            await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = server, ListenEndPoint = new ServiceEndPoint(svc) }).ConfigureAwait(false);
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            var delayed = client.Counters.Delayed;
            tap.Watch(svc);
            var connect = ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = svc }, deadline.Token).AsTask();
            while (client.Counters.Delayed == delayed)
            {
                await Task.Delay(1, deadline.Token).ConfigureAwait(false);
            }

            var added = Stopwatch.GetTimestamp();
            await client.Admin.AddRuleAsync(ServicePrefix.Exact(svc), client.Admin.ForwardTo(server.Links[0].LocalAddress), cancellationToken: deadline.Token).ConfigureAwait(false);
            await using var connection = await connect.ConfigureAwait(false);
            if (i >= 0)
            {
                results.Add(Stopwatch.GetElapsedTime(added, tap.SentAt).TotalMilliseconds);
            }

            await client.Admin.RemoveRuleAsync(ServicePrefix.Exact(svc), client.Admin.ForwardTo(server.Links[0].LocalAddress)).ConfigureAwait(false);
        }

        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"api: {results.Count} held SYNs released by AddRuleAsync; p50 {Percentile(results, 0.5):F3} ms, max {results.Max():F3} ms"));
        return results;
    }

    private static async Task<List<double>> RegistrationAsync(int samples)
    {
        var tap = new TapLink(new UdpLink(NextLoopback()));
        await using var router = await ServalHost.StartAsync(new ServalHostOptions
        {
            Name = "router",
            Links = [tap],
            Engine = EngineOptions.Default with { Mode = EngineMode.ServiceRouter },
            RouterControl = RouterControllerOptions.Default,
            MonitorInterfaces = false,
        }).ConfigureAwait(false);
        await router.Admin.AddRuleAsync(ServicePrefix.Default, ServiceTarget.Delay()).ConfigureAwait(false);
        var routerAddress = tap.LocalAddress;
        await using var client = await ServalHost.StartAsync(new ServalHostOptions { Name = "client", Links = [new UdpLink(NextLoopback())], DefaultRouter = routerAddress, MonitorInterfaces = false }).ConfigureAwait(false);
        var results = new List<double>();
        for (var i = -3; i < samples; i++)
        {
            var svc = ServiceId.FromName($"bench.delay.registration.{i}");
            await using var replica = await ServalHost.StartAsync(new ServalHostOptions
            {
                Name = $"replica{i}",
                Links = [new UdpLink(NextLoopback())],
                RegisterWithRouter = routerAddress,
                MonitorInterfaces = false,
            }).ConfigureAwait(false);
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            var delayed = router.Counters.Delayed;
            tap.Watch(svc);
            var connect = ServalConnection.ConnectAsync(new ServalConnectionOptions { Host = client, Service = svc }, deadline.Token).AsTask();
            while (router.Counters.Delayed == delayed)
            {
                await Task.Delay(1, deadline.Token).ConfigureAwait(false);
            }

            await using var listener = await ServalListener.ListenAsync(new ServalListenerOptions { Host = replica, ListenEndPoint = new ServiceEndPoint(svc) }, deadline.Token).ConfigureAwait(false);
            await using var connection = await connect.ConfigureAwait(false);
            if (i >= 0)
            {
                results.Add(Stopwatch.GetElapsedTime(tap.RegisterAt, tap.SentAt).TotalMilliseconds);
            }
        }

        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"registration: {results.Count} SYNs held at the router released by a registration; p50 {Percentile(results, 0.5):F3} ms, max {results.Max():F3} ms"));
        return results;
    }

    private static double Percentile(List<double> values, double p)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
    }

    /// <summary>A decorator that timestamps the first SYN to the watched service it is handed, and the last Register it receives.</summary>
    private sealed class TapLink(ServalLink inner) : ServalLink
    {
        private ServiceId _watched;
        private long _sentAt;
        private long _registerAt;

        public long SentAt => Interlocked.Read(ref _sentAt);

        public long RegisterAt => Interlocked.Read(ref _registerAt);

        public override string Name => inner.Name + " +tap";

        public override LinkAddress LocalAddress => inner.LocalAddress;

        public override int Mtu => inner.Mtu;

        public override bool RewritesSource => inner.RewritesSource;

        public void Watch(ServiceId service)
        {
            _watched = service;
            Interlocked.Exchange(ref _sentAt, 0);
        }

        public override void Start(ILinkReceiver receiver) => inner.Start(new Receiver(this, receiver));

        public override void Send(LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit)
        {
            if (Interlocked.Read(ref _sentAt) == 0 && SalPacketRepr.TryParse(packet, out var p, out _, out _, out _)
                && p.Control is { } c && c.Flags == SalControlFlags.Syn && p.DestinationService == _watched)
            {
                Interlocked.Exchange(ref _sentAt, Stopwatch.GetTimestamp());
            }

            inner.Send(source, destination, packet, hopLimit);
        }

        public override void Flush() => inner.Flush();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        private sealed class Receiver(TapLink tap, ILinkReceiver next) : ILinkReceiver
        {
            public void Receive(LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit)
            {
                if (SalPacketRepr.TryParse(packet, out var p, out var off, out var len, out _) && p.DestinationService == ControlProtocol.RouterServiceId
                    && len > 1 && packet[off + 1] == (byte)ControlMessageType.Register)
                {
                    Interlocked.Exchange(ref tap._registerAt, Stopwatch.GetTimestamp());
                }

                next.Receive(source, destination, packet, hopLimit);
            }
        }
    }
}
