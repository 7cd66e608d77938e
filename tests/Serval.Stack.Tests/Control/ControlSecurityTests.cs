using Serval.Stack.ControlPlane;
using Serval.Stack.Tests.Engine;
using Serval.Wire;
using Xunit;
using static Serval.Stack.Tests.ControlPlane.ControlTopology;

namespace Serval.Stack.Tests.ControlPlane;

/// <summary>Shared-key authentication, replay protection and hostile input at the router.</summary>
public sealed class ControlSecurityTests
{
    [Fact]
    public void With_a_key_only_authenticated_registrations_are_accepted_and_the_rest_are_counted()
    {
        var t = Build(21, replicas: 0, key: Key);
        t.AddReplica(HostOptions(Key));
        t.AddReplica(HostOptions());
        t.AddReplica(HostOptions([.. Enumerable.Repeat((byte)0xAB, 32)]));
        t.ListenAll(Web);
        t.Net.RunFor(TimeSpan.FromSeconds(2));

        Assert.Equal([t.ReplicaAddrs[0]], t.RouterTargets(Web));
        var c = t.RouterController.Counters;
        Assert.True(c.Unauthenticated >= 2, $"unauthenticated {c.Unauthenticated}");
        Assert.True(c.BadMac >= 2, $"bad MAC {c.BadMac}");
        Assert.Equal(1, Assert.Single(t.ReplicaControllers[0].GetRegistrations()).AcknowledgedBy);
        Assert.Equal(0, Assert.Single(t.ReplicaControllers[1].GetRegistrations()).AcknowledgedBy);
        Assert.Equal(0, Assert.Single(t.ReplicaControllers[2].GetRegistrations()).AcknowledgedBy);
        Assert.True(t.ReplicaControllers[1].Counters.Retransmissions > 0);
    }

    [Fact]
    public void A_keyed_host_ignores_acknowledgements_that_are_not_authenticated()
    {
        // The router has no key (so it answers without a MAC); the host insists on one.
        var t = Build(22, replicas: 0);
        t.AddReplica(HostOptions(Key));
        t.ListenAll(Web);
        t.Net.RunFor(TimeSpan.FromSeconds(1));
        Assert.Single(t.RouterTargets(Web)); // an unkeyed router accepts what it cannot verify
        Assert.True(t.ReplicaControllers[0].Counters.Unauthenticated >= 1);
        Assert.Equal(0, Assert.Single(t.ReplicaControllers[0].GetRegistrations()).AcknowledgedBy);
    }

    [Fact]
    public void A_replayed_registration_is_rejected_and_counted()
    {
        var t = Build(23, replicas: 1, key: Key);
        var captured = new List<(LinkAddress Source, LinkAddress Destination, byte[] Packet)>();
        t.Lan.Observer = (time, sender, src, dst, bytes) =>
        {
            if (sender == t.Replicas[0].Host && Payload(bytes) is { } p && ControlMessage.TryParse(p, out var m, out _) && m.Type == ControlMessageType.Register)
            {
                captured.Add((src, dst, bytes));
            }
        };
        var listener = Listen(t.Replicas[0], Web);
        t.Net.RunFor(TimeSpan.FromSeconds(1.5));
        t.Lan.Observer = null;
        Assert.Single(t.RouterTargets(Web));
        var stale = t.RouterController.Counters.Stale;

        // The service goes away; an attacker replays the last registration seen on the wire.
        t.Replicas[0].Do(() => t.Replicas[0].Host.Engine.Close(listener, t.Replicas[0].Now));
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        Assert.Empty(t.RouterTargets(Web));

        var (source, destination, packet) = captured[^1];
        t.Router.Do(() => t.Router.Host.Engine.Receive(t.RouterInterface, source, destination, packet, t.Router.Now));
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        Assert.Equal(1, t.RouterController.Counters.Replayed);
        Assert.Empty(t.RouterTargets(Web));

        // Much later the sender's state is gone, but the timestamp is outside the replay window: stale, not applied.
        t.Net.RunFor(TimeSpan.FromSeconds(40));
        Assert.Equal(0, t.RouterController.PeerCount);
        t.Router.Do(() => t.Router.Host.Engine.Receive(t.RouterInterface, source, destination, packet, t.Router.Now));
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        Assert.Equal(stale + 1, t.RouterController.Counters.Stale);
        Assert.Empty(t.RouterTargets(Web));
        Assert.Equal(0, t.RouterController.RegistrationCount);
    }

    [Fact]
    public void Malformed_messages_are_counted_and_never_break_the_router()
    {
        var t = Build(24, replicas: 1);
        var c = t.Client;
        var socket = c.Do(() => c.Host.Engine.BindDatagram(null, c.Now, out var h) == ServalError.None ? h : default);
        var valid = new ControlMessage
        {
            Type = ControlMessageType.Register,
            Sender = 7,
            Sequence = 1,
            Weight = 1,
            LeaseMilliseconds = 3000,
            Prefix = ServicePrefix.Exact(Web),
        };
        var good = new byte[ControlProtocol.BodyLength];
        valid.Emit(good);
        byte[][] bad =
        [
            [1],
            [.. good, 0],
            good[..^1],
            With(good, 0, 2), // version
            With(good, 1, 9), // type
            With(good, 2, 0x80), // undefined flag
            With(good, 2, 0x01), // MAC flag without a MAC
            With(good, 3, 1), // status in a request
            With(good, 4, 0, 8), // zero sender
            With(good, 32, 0x80), // weight of 2^31
            With(good, 32, 0, 4), // weight 0
            With(good, 36, 0, 4), // lease 0
            With(good, 40, 2), // prefix length 512
            With(With(With(good, 40, 0), 41, 8), 75, 1), // a /8 prefix with bits set beyond it
            With(good, 42, 4), // undefined transport
            With(good, 43, 1), // reserved byte
            [.. Enumerable.Range(0, 76).Select(i => (byte)(i * 37))],
        ];
        var ack = new byte[ControlProtocol.BodyLength];
        (valid with { Type = ControlMessageType.RegisterAck }).Emit(ack);
        foreach (var b in bad.Append(ack))
        {
            Assert.Equal(ServalError.None, c.Do(() => c.Host.Engine.SendTo(socket, ControlProtocol.RouterServiceId, b, c.Now)));
        }

        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        Assert.Equal(bad.Length + 1, t.RouterController.Counters.Malformed);
        Assert.Equal(0, t.RouterController.RegistrationCount);

        // The router still works.
        Listen(t.Replicas[0], Web);
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        Assert.Single(t.RouterTargets(Web));

        // Garbage sent to a host's control socket is counted there.
        var replica = t.ReplicaControllers[0];
        var hostSocket = t.Replicas[0].Host.Engine.GetLocalService(replica.Socket);
        c.Host.AddForward(ServicePrefix.Exact(hostSocket), t.ReplicaAddrs[0], 1);
        c.Do(() => c.Host.Engine.SendTo(socket, hostSocket, [1, 2, 3], c.Now));
        c.Do(() => c.Host.Engine.SendTo(socket, hostSocket, good, c.Now));
        t.Net.RunFor(TimeSpan.FromMilliseconds(50));
        Assert.Equal(2, replica.Counters.Malformed);
    }

    private static byte[] With(byte[] message, int offset, byte value, int count = 1)
    {
        var copy = (byte[])message.Clone();
        copy.AsSpan(offset, count).Fill(value);
        return copy;
    }

    private static byte[]? Payload(byte[] packet) =>
        SalPacketRepr.TryParse(packet, out var p, out var offset, out var length, out _) && p.Control is null && length > 0
            ? packet.AsSpan(offset, length).ToArray()
            : null;
}
