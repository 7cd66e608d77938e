using System.Diagnostics.CodeAnalysis;
using Serval.Simulation;
using Serval.Stack.ControlPlane;
using Serval.Wire;
using Xunit;
using static Serval.Stack.Tests.ControlPlane.ControlTopology;

namespace Serval.Stack.Tests.ControlPlane;

/// <summary>
/// Registrations of self-certifying serviceIDs signed by the service's key (docs/control-protocol.md §5.1): accepted
/// only with a valid, fresh signature by the key of the serviceID; every refusal counted.
/// </summary>
public sealed class SignedRegistrationTests
{
    private static readonly ServicePrefix Region = ServicePrefix.Parse("0x5e1f/16");

    private static ServiceKey NewKey(ulong seed) => ServiceKey.Create(Region, new SeededRandomSource(seed));

    private static ControlTopology Secured(ulong seed, int replicas = 1, byte[]? key = null, IRouterRegistry? registry = null) =>
        Build(seed, replicas, key, router: o => o with { SelfCertifyingPrefixes = [Region] }, registry: registry);

    private static SocketHandle ListenWithKey(ControlNode node, ServiceKey key)
    {
        SocketHandle h = default;
        Assert.Equal(ServalError.None, node.Do(() => node.Host.Engine.Listen(ServicePrefix.Exact(key.ServiceId), TransportProtocol.Stream, 64, node.Now, out h, key)));
        return h;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_owner_registers_with_its_key_and_a_host_without_it_is_refused(bool hmac)
    {
        using var key = NewKey(1);
        var t = Secured(31, replicas: 2, key: hmac ? Key : null);
        ListenWithKey(t.Replicas[0], key);
        Listen(t.Replicas[1], key.ServiceId); // the same serviceID without its key
        t.Net.RunFor(TimeSpan.FromSeconds(2));

        var c = t.RouterController.Counters;
        Assert.True(t.RouterTargets(key.ServiceId) is [var only] && only == t.ReplicaAddrs[0], $"targets {string.Join(", ", t.RouterTargets(key.ServiceId))}");
        Assert.True(c.SignedAccepted >= 2, $"signed accepted {c.SignedAccepted}");
        Assert.True(c.Stale >= 1, $"stale {c.Stale} (the first signed Register has no epoch yet)");
        Assert.True(c.UnsignedRegistrations >= 2, $"unsigned {c.UnsignedRegistrations}");
        Assert.Equal(1, Assert.Single(t.ReplicaControllers[0].GetRegistrations()).AcknowledgedBy);
        Assert.Equal(0, Assert.Single(t.ReplicaControllers[1].GetRegistrations()).AcknowledgedBy);

        // Ordinary serviceIDs keep the ordinary rules.
        Listen(t.Replicas[1], Web);
        t.Net.RunFor(TimeSpan.FromMilliseconds(100));
        Assert.Equal([t.ReplicaAddrs[1]], t.RouterTargets(Web));
    }

    [Fact]
    public void Forged_foreign_and_unsigned_registrations_are_refused_and_counted()
    {
        using var victim = NewKey(2);
        using var attacker = NewKey(3);
        var t = Secured(32);
        ListenWithKey(t.Replicas[0], victim);
        t.Net.RunFor(TimeSpan.FromSeconds(1));
        Assert.Equal([t.ReplicaAddrs[0]], t.RouterTargets(victim.ServiceId));

        var epoch = t.RouterController.Epoch;
        var clock = (ulong)t.Router.Now.TotalMilliseconds;
        var register = new ControlMessage
        {
            Type = ControlMessageType.Register,
            Sender = 0xA77AC4,
            Sequence = 1,
            Epoch = epoch,
            Timestamp = clock,
            Weight = 1000,
            LeaseMilliseconds = 3000,
            Prefix = ServicePrefix.Exact(attacker.ServiceId),
        };

        // The attacker's own key, presented for the victim's serviceID.
        var foreign = Emit(register, attacker);
        victim.ServiceId.WriteTo(foreign.AsSpan(44));

        // The victim's public key with a signature it did not make (the attacker signs with its own key).
        var forged = Emit(register with { Sequence = 2, Prefix = ServicePrefix.Exact(victim.ServiceId) }, victim);
        attacker.Sign(forged.AsSpan(0, 20), forged.AsSpan(ControlProtocol.BodyLength + 36, 64));

        // A genuine signature, then the weight changed.
        var altered = Emit(register with { Sequence = 3, Prefix = ServicePrefix.Exact(victim.ServiceId) }, victim);
        altered[35] ^= 0x10;

        // Unsigned: the serviceID itself, and a short prefix over the whole region.
        var unsigned = Emit(register with { Sequence = 4, Prefix = ServicePrefix.Exact(victim.ServiceId) }, null);
        var covering = Emit(register with { Sequence = 5, Prefix = ServicePrefix.Parse("0x5e/8") }, null);

        var socket = t.Client.Do(() => t.Client.Host.Engine.BindDatagram(null, t.Client.Now, out var h) == ServalError.None ? h : default);
        foreach (var m in new[] { foreign, forged, altered, unsigned, covering })
        {
            Assert.Equal(ServalError.None, t.Client.Do(() => t.Client.Host.Engine.SendTo(socket, ControlProtocol.RouterServiceId, m, t.Client.Now)));
        }

        t.Net.RunFor(TimeSpan.FromMilliseconds(100));
        var c = t.RouterController.Counters;
        Assert.True(c.ForeignKeys == 1 && c.BadSignatures == 2 && c.UnsignedRegistrations == 2, $"foreign {c.ForeignKeys}, bad signatures {c.BadSignatures}, unsigned {c.UnsignedRegistrations}");
        Assert.Equal([t.ReplicaAddrs[0]], t.RouterTargets(victim.ServiceId));
        Assert.Empty(t.RouterTargets(ServicePrefix.Parse("0x5e/8")));
        Assert.Equal(1, t.RouterController.RegistrationCount);

        // The attacker may register its own self-certifying serviceID with its own key.
        var own = Emit(register with { Sequence = 6 }, attacker);
        t.Client.Do(() => t.Client.Host.Engine.SendTo(socket, ControlProtocol.RouterServiceId, own, t.Client.Now));
        t.Net.RunFor(TimeSpan.FromMilliseconds(100));
        Assert.Equal([ClientAddr], t.RouterTargets(attacker.ServiceId));
    }

    [Fact]
    public void Outside_the_configured_region_a_signed_registration_still_locks_out_unsigned_ones()
    {
        using var victim = NewKey(4);
        var t = Build(33, replicas: 2); // no SelfCertifyingPrefixes
        ListenWithKey(t.Replicas[0], victim);
        t.Net.RunFor(TimeSpan.FromSeconds(1));
        Listen(t.Replicas[1], victim.ServiceId);
        t.Net.RunFor(TimeSpan.FromSeconds(1));
        Assert.Equal([t.ReplicaAddrs[0]], t.RouterTargets(victim.ServiceId));
        Assert.True(t.RouterController.Counters.UnsignedRegistrations >= 1, $"unsigned {t.RouterController.Counters.UnsignedRegistrations}");
    }

    [Fact]
    public void A_replayed_signed_registration_is_refused_in_the_same_epoch_and_after_a_restart()
    {
        using var key = NewKey(5);
        var t = Secured(34);
        var captured = Capture(t);
        var listener = ListenWithKey(t.Replicas[0], key);
        t.Net.RunFor(TimeSpan.FromSeconds(1.5));
        t.Lan.Observer = null;
        Assert.Equal([t.ReplicaAddrs[0]], t.RouterTargets(key.ServiceId));
        var (source, destination, packet) = captured.Last(p => p.Message.Type == ControlMessageType.Register && p.Message.Epoch != 0).Packet;
        var payload = Payload(packet)!;
        var socket = t.Client.Do(() => t.Client.Host.Engine.BindDatagram(null, t.Client.Now, out var h) == ServalError.None ? h : default);
        void FromAttacker()
        {
            t.Client.Do(() => t.Client.Host.Engine.SendTo(socket, ControlProtocol.RouterServiceId, payload, t.Client.Now));
            t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        }

        // Replayed while the registration exists, from the attacker's own address (a move) and from the host's.
        var c = t.RouterController.Counters;
        var replayed = c.Replayed;
        FromAttacker();
        Assert.True(c.Replayed == replayed + 1, $"replayed {c.Replayed - replayed}, router {Nonzero(c)}");
        Inject(t, source, destination, packet);
        Assert.True(c.Replayed == replayed + 2, $"replayed {c.Replayed - replayed}, router {Nonzero(c)}");
        Assert.Equal([t.ReplicaAddrs[0]], t.RouterTargets(key.ServiceId));

        // The service goes away (a signed Unregister); the replay does not bring it back.
        t.Replicas[0].Do(() => t.Replicas[0].Host.Engine.Close(listener, t.Replicas[0].Now));
        t.Net.RunFor(TimeSpan.FromMilliseconds(100));
        Assert.Empty(t.RouterTargets(key.ServiceId));
        FromAttacker();
        Assert.Equal(replayed + 3, c.Replayed);
        Assert.Empty(t.RouterTargets(key.ServiceId));

        // Much later the sender's state is gone: the timestamp is outside the replay window.
        t.Net.RunFor(TimeSpan.FromSeconds(40));
        Assert.Equal(0, t.RouterController.PeerCount);
        var stale = c.Stale;
        FromAttacker();
        Assert.Equal(stale + 1, c.Stale);
        Assert.Empty(t.RouterTargets(key.ServiceId));

        // A new router incarnation (new epoch) at once: the captured message names the old epoch.
        t.Router.Kill(t.RouterInterface);
        t.StartRouter(configure: o => o with { SelfCertifyingPrefixes = [Region] });
        Inject(t, source, destination, packet);
        FromAttacker();
        Assert.Equal(2, t.RouterController.Counters.MessagesReceived);
        Assert.Equal(2, t.RouterController.Counters.Stale);
        Assert.Equal(0, t.RouterController.RegistrationCount);
        Assert.Empty(t.RouterTargets(key.ServiceId));
    }

    [Fact]
    public void A_sender_holding_signed_registrations_is_not_moved_by_an_unsigned_message()
    {
        using var key = NewKey(6);
        var t = Secured(35);
        var captured = Capture(t);
        ListenWithKey(t.Replicas[0], key);
        t.Net.RunFor(TimeSpan.FromSeconds(1));
        t.Lan.Observer = null;
        var seen = captured.Last(p => p.Message.Type == ControlMessageType.Register && p.Message.Epoch != 0).Message;

        // The attacker knows the host's sender identifier (it is on the wire) and registers something else with it.
        var moveAttempt = Emit(
            seen with { Sequence = seen.Sequence + 100, Flags = ControlMessageFlags.None, Prefix = ServicePrefix.Exact(Web), Timestamp = (ulong)t.Router.Now.TotalMilliseconds },
            null);
        var socket = t.Client.Do(() => t.Client.Host.Engine.BindDatagram(null, t.Client.Now, out var h) == ServalError.None ? h : default);
        t.Client.Do(() => t.Client.Host.Engine.SendTo(socket, ControlProtocol.RouterServiceId, moveAttempt, t.Client.Now));
        t.Net.RunFor(TimeSpan.FromMilliseconds(100));

        Assert.Equal(1, t.RouterController.Counters.RefusedMoves);
        Assert.Equal(0, t.RouterController.Counters.Moved);
        Assert.Equal([t.ReplicaAddrs[0]], t.RouterTargets(key.ServiceId));
        Assert.Empty(t.RouterTargets(Web));
    }

    [Fact]
    public void In_a_fleet_only_checked_registrations_reach_the_registry()
    {
        using var key = NewKey(7);
        var registry = new RecordingRegistry();
        var t = Secured(36, replicas: 2, registry: registry);
        ListenWithKey(t.Replicas[0], key);
        Listen(t.Replicas[1], key.ServiceId);
        t.Net.RunFor(TimeSpan.FromSeconds(2));

        var holder = RegistryCodec.RegistrationKey(ServicePrefix.Exact(key.ServiceId), t.ReplicaAddrs[0]);
        var impostor = RegistryCodec.RegistrationKey(ServicePrefix.Exact(key.ServiceId), t.ReplicaAddrs[1]);
        Assert.True(registry.Puts.Contains(holder) && !registry.Puts.Contains(impostor), $"registry keys written: {string.Join(", ", registry.Puts.Distinct())}");
        Assert.True(t.RouterController.Counters.UnsignedRegistrations >= 1);
    }

    private static List<(ControlMessage Message, (LinkAddress Source, LinkAddress Destination, byte[] Bytes) Packet)> Capture(ControlTopology t)
    {
        var captured = new List<(ControlMessage, (LinkAddress, LinkAddress, byte[]))>();
        t.Lan.Observer = (time, sender, src, dst, bytes) =>
        {
            if (sender == t.Replicas[0].Host && Payload(bytes) is { } p && ControlMessage.TryParse(p, out var m, out _) && m.IsSigned)
            {
                captured.Add((m, (src, dst, bytes)));
            }
        };
        return captured;
    }

    private static string Nonzero(object counters) =>
        string.Join(", ", counters.GetType().GetProperties().Where(p => p.PropertyType == typeof(long) && (long)p.GetValue(counters)! != 0).Select(p => $"{p.Name}={p.GetValue(counters)}"));

    private static void Inject(ControlTopology t, LinkAddress source, LinkAddress destination, byte[] packet)
    {
        t.Router.Do(() => t.Router.Host.Engine.Receive(t.RouterInterface, source, destination, packet, t.Router.Now));
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
    }

    private static byte[] Emit(ControlMessage m, ServiceKey? signer)
    {
        var buffer = new byte[ControlProtocol.MaxMessageLength];
        var n = m.Emit(buffer, default, signer);
        return buffer[..n];
    }

    private static byte[]? Payload(byte[] packet) =>
        SalPacketRepr.TryParse(packet, out var p, out var offset, out var length, out _) && p.Control is null && length > 0
            ? packet.AsSpan(offset, length).ToArray()
            : null;

    /// <summary>A fleet registry that records what the router writes (nothing comes back).</summary>
    private sealed class RecordingRegistry : IRouterRegistry
    {
        public List<string> Puts { get; } = [];

        public RegistryStatus Status { get; } = new();

        public long UnixTimeMilliseconds => 1_700_000_000_000;

        public void Attach(Action wake)
        {
        }

        public void Put(string key, string value, ulong group, TimeSpan ttl) => Puts.Add(key);

        public void KeepAlive(ulong group)
        {
        }

        public void Delete(string key, ulong group)
        {
        }

        public void Release(ulong group)
        {
        }

        public void PutPermanent(string key, string value)
        {
        }

        public void DeletePermanent(string key)
        {
        }

        public bool TryTake([NotNullWhen(true)] out RegistryUpdate? update)
        {
            update = null;
            return false;
        }
    }
}
