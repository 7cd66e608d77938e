using System.Buffers.Binary;
using FsCheck;
using FsCheck.Fluent;
using Serval.Stack.ControlPlane;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.ControlPlane;

/// <summary>The control message format (docs/control-protocol.md): layout, validation, MAC, round trips, hostile bytes.</summary>
public sealed class ControlMessageTests
{
    private static readonly Config Config = Config.QuickThrowOnFailure.WithMaxTest(3000);
    private static readonly byte[] Key = [.. Enumerable.Range(0, 32).Select(i => (byte)(i * 3))];

    private static Gen<uint> UInt32 => Gen.Choose(0, 0xFFFF).SelectMany(hi => Gen.Choose(0, 0xFFFF), (hi, lo) => ((uint)hi << 16) | (uint)lo);

    private static Gen<ulong> UInt64 => UInt32.SelectMany(_ => UInt32, (a, b) => ((ulong)a << 32) | b);

    private static Gen<ServicePrefix> Prefixes =>
        from a in UInt64
        from b in UInt64
        from c in UInt64
        from d in UInt64
        from bits in Gen.Choose(0, 256)
        select new ServicePrefix(new ServiceId(a, b, c, d), bits);

    /// <summary>Every valid message: per-type rules for flags, status, weight and lease.</summary>
    private static Gen<ControlMessage> Messages =>
        from type in Gen.Elements(ControlMessageType.Register, ControlMessageType.Unregister, ControlMessageType.RegisterAck, ControlMessageType.UnregisterAck)
        from draining in Gen.Elements(false, true)
        from refresh in Gen.Elements(false, true)
        from status in Gen.Elements(ControlStatus.Ok, ControlStatus.Stale, ControlStatus.Rejected)
        from sender in UInt64.Where(s => s != 0)
        from sequence in UInt32
        from epoch in UInt64
        from timestamp in UInt64
        from weight in UInt32.Select(w => (w % ControlProtocol.MaxWeight) + 1)
        from lease in UInt32.Select(l => (l % ControlProtocol.MaxLeaseMilliseconds) + 1)
        from prefix in Prefixes
        from transports in Gen.Choose(0, 3)
        select new ControlMessage
        {
            Type = type,
            Flags = type switch
            {
                ControlMessageType.Register => (draining ? ControlMessageFlags.Draining : 0) | (refresh ? ControlMessageFlags.Refresh : 0),
                ControlMessageType.RegisterAck => draining ? ControlMessageFlags.Draining : 0,
                _ => ControlMessageFlags.None,
            },
            Status = type is ControlMessageType.RegisterAck or ControlMessageType.UnregisterAck ? status : ControlStatus.Ok,
            Sender = sender,
            Sequence = sequence,
            Epoch = epoch,
            Timestamp = timestamp,
            Weight = type == ControlMessageType.Unregister ? 0 : weight,
            LeaseMilliseconds = type == ControlMessageType.Unregister ? 0 : lease,
            Prefix = prefix,
            Transports = (ServiceTransports)transports,
        };

    [Fact]
    public void Emit_then_parse_is_identity_with_and_without_a_key() =>
        Check.One(Config, Prop.ForAll(Messages.ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (m, keyed) =>
        {
            var buffer = new byte[ControlProtocol.AuthenticatedLength];
            var n = m.Emit(buffer, keyed ? Key : default);
            var expected = keyed ? m with { Flags = m.Flags | ControlMessageFlags.Authenticated } : m;
            return n == ControlMessage.GetLength(keyed)
                && ControlMessage.TryParse(buffer.AsSpan(0, n), out var back, out var error)
                && error == ControlMessageError.None
                && back == expected
                && ControlMessageView.TryCreate(buffer.AsSpan(0, n), out var view, out _)
                && view.VerifyMac(Key) == keyed;
        }));

    [Fact]
    public void The_parser_survives_arbitrary_and_mutated_bytes()
    {
        var rng = new Random(20120425);
        var valid = new byte[ControlProtocol.AuthenticatedLength];
        var accepted = 0;
        for (var i = 0; i < 100_000; i++)
        {
            byte[] bytes;
            switch (i % 3)
            {
                case 0: // anything
                    bytes = new byte[rng.Next(0, 130)];
                    rng.NextBytes(bytes);
                    break;
                case 1: // the right length and version, random contents
                    bytes = new byte[rng.Next(2) == 0 ? ControlProtocol.BodyLength : ControlProtocol.AuthenticatedLength];
                    rng.NextBytes(bytes);
                    bytes[0] = ControlProtocol.Version;
                    break;
                default: // a valid message with a few bytes changed
                    var n = Sample() with { Type = (ControlMessageType)rng.Next(1, 5), Flags = 0, Weight = 1 };
                    var length = n.Emit(valid, rng.Next(2) == 0 ? Key : default);
                    bytes = valid[..length];
                    for (var k = rng.Next(1, 4); k > 0; k--)
                    {
                        bytes[rng.Next(length)] = (byte)rng.Next(256);
                    }

                    break;
            }

            if (ControlMessage.TryParse(bytes, out var m, out var error))
            {
                accepted++;
                Assert.Equal(ControlMessageError.None, error);
                Assert.NotEqual(0ul, m.Sender);
                var again = new byte[ControlProtocol.MaxMessageLength];
                var k = m.Emit(again); // no key: the same body without the Authenticated flag
                var body = bytes[..k];
                body[2] &= unchecked((byte)~ControlMessageFlags.Authenticated);
                Assert.True(body.AsSpan().SequenceEqual(again.AsSpan(0, k)), "parse then emit changed the body");
            }
            else
            {
                Assert.NotEqual(ControlMessageError.None, error);
                Assert.Equal(default, m);
            }
        }

        Assert.InRange(accepted, 1000, 50_000); // the mutations reach past the first checks
    }

    [Fact]
    public void Every_single_bit_flip_of_an_authenticated_message_breaks_its_mac()
    {
        var buffer = new byte[ControlProtocol.AuthenticatedLength];
        var n = Sample().Emit(buffer, Key);
        for (var bit = 0; bit < n * 8; bit++)
        {
            var copy = (byte[])buffer.Clone();
            copy[bit / 8] ^= (byte)(1 << (bit % 8));
            var verified = ControlMessageView.TryCreate(copy, out var view, out _) && view.VerifyMac(Key);
            Assert.False(verified, $"bit {bit}");
        }

        Assert.True(ControlMessageView.TryCreate(buffer, out var original, out _) && original.VerifyMac(Key));
        Assert.False(original.VerifyMac([.. Key.Reverse()]));
    }

    [Fact]
    public void The_layout_is_big_endian_at_the_documented_offsets()
    {
        var m = Sample();
        var b = new byte[ControlProtocol.BodyLength];
        Assert.Equal(76, m.Emit(b));
        Assert.Equal([1, 1, 0x06, 0], b[..4]);
        Assert.Equal(0x0102030405060708ul, BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(4)));
        Assert.Equal(0x0A0B0C0Du, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(12)));
        Assert.Equal(0x1111111122222222ul, BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(16)));
        Assert.Equal(123_456ul, BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(24)));
        Assert.Equal(7u, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(32)));
        Assert.Equal(3000u, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(36)));
        Assert.Equal(24, BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(40)));
        Assert.Equal(3, b[42]);
        Assert.Equal(0, b[43]);
        Assert.Equal(m.Prefix.Id.ToArray(), b[44..76]);
        Assert.Equal(ControlProtocol.RouterServiceId, ServiceId.FromName("serval.router"));
    }

    [Theory]
    [InlineData(0, 2, ControlMessageError.UnsupportedVersion)]
    [InlineData(1, 0, ControlMessageError.UnknownType)]
    [InlineData(1, 9, ControlMessageError.UnknownType)]
    [InlineData(2, 0x10, ControlMessageError.BadFlags)]
    [InlineData(2, 0x01, ControlMessageError.BadLength)]
    [InlineData(3, 1, ControlMessageError.BadStatus)]
    [InlineData(42, 0x04, ControlMessageError.BadTransports)]
    [InlineData(43, 0xFF, ControlMessageError.BadReserved)]
    [InlineData(40, 0x01, ControlMessageError.BadPrefix)]
    [InlineData(75, 0x01, ControlMessageError.BadPrefix)]
    [InlineData(32, 0x80, ControlMessageError.BadWeight)]
    [InlineData(36, 0x01, ControlMessageError.BadLease)]
    public void A_bad_field_is_rejected_with_its_reason(int offset, byte value, ControlMessageError expected)
    {
        var b = new byte[ControlProtocol.BodyLength];
        Sample().Emit(b);
        b[offset] = value;
        Assert.False(ControlMessage.TryParse(b, out _, out var error));
        Assert.Equal(expected, error);
    }

    [Fact]
    public void Type_specific_rules_are_enforced()
    {
        static ControlMessageError Error(ControlMessage m)
        {
            var b = new byte[ControlProtocol.BodyLength];
            m.Emit(b);
            return ControlMessage.TryParse(b, out _, out var e) ? ControlMessageError.None : e;
        }

        var register = Sample();
        Assert.Equal(ControlMessageError.None, Error(register));
        Assert.Equal(ControlMessageError.BadSender, Error(register with { Sender = 0 }));
        Assert.Equal(ControlMessageError.BadWeight, Error(register with { Weight = 0 }));
        Assert.Equal(ControlMessageError.BadLease, Error(register with { LeaseMilliseconds = 0 }));
        Assert.Equal(ControlMessageError.BadLease, Error(register with { LeaseMilliseconds = ControlProtocol.MaxLeaseMilliseconds + 1 }));
        var unregister = register with { Type = ControlMessageType.Unregister, Flags = 0, Weight = 0, LeaseMilliseconds = 0 };
        Assert.Equal(ControlMessageError.None, Error(unregister));
        Assert.Equal(ControlMessageError.BadFlags, Error(unregister with { Flags = ControlMessageFlags.Draining }));
        Assert.Equal(ControlMessageError.BadWeight, Error(unregister with { Weight = 1 }));
        Assert.Equal(ControlMessageError.BadLease, Error(unregister with { LeaseMilliseconds = 1 }));
        var ack = register with { Type = ControlMessageType.RegisterAck, Flags = ControlMessageFlags.Draining, Status = ControlStatus.Rejected, Weight = 0, LeaseMilliseconds = 0 };
        Assert.Equal(ControlMessageError.None, Error(ack));
        Assert.Equal(ControlMessageError.BadFlags, Error(ack with { Flags = ControlMessageFlags.Refresh }));
        Assert.Equal(ControlMessageError.BadStatus, Error(ack with { Status = (ControlStatus)3 }));
        var unflagged = new byte[ControlProtocol.AuthenticatedLength];
        register.Emit(unflagged);
        Assert.False(ControlMessage.TryParse(unflagged, out _, out var e1)); // 108 bytes without the Authenticated flag
        Assert.Equal(ControlMessageError.BadLength, e1);
        Assert.Throws<ArgumentException>(() => register.Emit(new byte[75]));
    }

    private static ControlMessage ResolveAck(params ControlTarget[] targets) => new()
    {
        Type = ControlMessageType.ResolveAck,
        Status = targets.Length > 0 ? ControlStatus.Ok : ControlStatus.NotFound,
        Sender = 0x0102030405060708,
        Sequence = 9,
        Epoch = 77,
        Timestamp = 1234,
        LeaseMilliseconds = 5000,
        Prefix = new ServicePrefix(ServiceId.FromName("resolve"), 32),
        Targets = targets,
    };

    [Fact]
    public void Resolve_and_resolve_ack_round_trip_with_their_targets_and_the_mac_covers_the_targets()
    {
        var resolve = new ControlMessage { Type = ControlMessageType.Resolve, Sender = 5, Sequence = 1, Prefix = ServicePrefix.Exact(ServiceId.FromName("x")) };
        var b = new byte[ControlProtocol.MaxMessageLength];
        Assert.Equal(76, resolve.Emit(b));
        Assert.True(ControlMessage.TryParse(b.AsSpan(0, 76), out var r, out _));
        Assert.Equal(resolve, r);
        Assert.False(ControlMessage.TryParse(b.AsSpan(0, 76 + ControlProtocol.TargetLength), out _, out var e0)); // only a ResolveAck has targets
        Assert.Equal(ControlMessageError.BadLength, e0);

        ControlTarget[] targets = [.. Enumerable.Range(1, ControlProtocol.MaxResolveTargets).Select(i => new ControlTarget(
            i % 2 == 0 ? LinkAddress.Parse($"[fd00::{i}]:{50000 + i}") : LinkAddress.Parse($"10.0.0.{i}:54325"), (uint)i))];
        foreach (var keyed in new[] { false, true })
        {
            foreach (var count in new[] { 0, 1, ControlProtocol.MaxResolveTargets })
            {
                var ack = ResolveAck(targets[..count]);
                var n = ack.Emit(b, keyed ? Key : default);
                Assert.Equal(ControlMessage.GetLength(keyed, count), n);
                Assert.True(ControlMessage.TryParse(b.AsSpan(0, n), out var back, out var error), $"{error}");
                Assert.Equal(targets[..count], back.Targets);
                Assert.Equal(ack with { Flags = keyed ? ControlMessageFlags.Authenticated : 0, Targets = back.Targets }, back);
                Assert.True(ControlMessageView.TryCreate(b.AsSpan(0, n), out var view, out _));
                Assert.Equal(count, view.TargetCount);
                Assert.Equal(keyed, view.VerifyMac(Key));
                if (keyed && count > 0)
                {
                    var copy = b[..n];
                    copy[ControlProtocol.BodyLength + 9] ^= 1; // an address byte of the first target
                    Assert.True(ControlMessageView.TryCreate(copy, out var tampered, out _));
                    Assert.False(tampered.VerifyMac(Key));
                }
            }
        }

        Assert.Throws<ArgumentException>(() => ResolveAck([.. targets, targets[0]]).Emit(new byte[400]));
        Assert.Throws<ArgumentException>(() => (resolve with { Targets = targets[..1] }).Emit(b));
    }

    [Fact]
    public void Malformed_resolve_acks_are_rejected_with_their_reason()
    {
        static ControlMessageError Error(byte[] b) => ControlMessage.TryParse(b, out _, out var e) ? ControlMessageError.None : e;
        byte[] Emit(ControlMessage m)
        {
            var b = new byte[ControlProtocol.MaxMessageLength];
            return b[..m.Emit(b)];
        }

        var one = Emit(ResolveAck(new ControlTarget(LinkAddress.Parse("10.0.0.1:54325"), 3)));
        Assert.Equal(ControlMessageError.None, Error(one));
        Assert.Equal(ControlMessageError.BadLength, Error(one[..^1]));
        Assert.Equal(ControlMessageError.BadLength, Error([.. one, 0]));
        var nine = new byte[ControlProtocol.BodyLength + (9 * ControlProtocol.TargetLength)];
        one.AsSpan(0, ControlProtocol.BodyLength).CopyTo(nine);
        Assert.Equal(ControlMessageError.BadLength, Error(nine)); // more than MaxResolveTargets
        foreach (var (offset, value) in new (int, byte)[] { (0, 5), (1, 1), (4, 0), (5, 0), (6, 0), (7, 0), (8 + 5, 1) })
        {
            var b = (byte[])one.Clone();
            b[ControlProtocol.BodyLength + offset] = value;
            if (offset is 4 or 5 or 6)
            {
                b[ControlProtocol.BodyLength + 4] = 0x80; // weight above 2^31 - 1
            }

            Assert.Equal(ControlMessageError.BadTargets, Error(b));
        }

        var zero = (byte[])one.Clone();
        zero.AsSpan(ControlProtocol.BodyLength + 8, 16).Clear();
        Assert.Equal(ControlMessageError.BadTargets, Error(zero)); // the unspecified address
        var okWithout = Emit(ResolveAck() with { Status = ControlStatus.Ok });
        Assert.Equal(ControlMessageError.BadTargets, Error(okWithout));
        var notFoundWith = (byte[])one.Clone();
        notFoundWith[3] = (byte)ControlStatus.NotFound;
        Assert.Equal(ControlMessageError.BadTargets, Error(notFoundWith));
        var statusFour = Emit(ResolveAck());
        statusFour[3] = 4;
        Assert.Equal(ControlMessageError.BadStatus, Error(statusFour));
        var resolve = Emit(new ControlMessage { Type = ControlMessageType.Resolve, Sender = 5, Sequence = 1, Prefix = ServicePrefix.Exact(ServiceId.FromName("x")) });
        resolve[40] = 0;
        resolve[41] = 255; // prefix_bits 255 (with bit 255 clear, so a valid prefix): a Resolve asks for a whole serviceID
        resolve[75] &= 0xFE;
        Assert.Equal(ControlMessageError.BadPrefix, Error(resolve));
    }

    [Fact]
    public void The_replay_window_accepts_each_number_once_and_tolerates_reordering_within_its_size()
    {
        var w = new ReplayWindow();
        Assert.True(w.TryAccept(10));
        Assert.False(w.TryAccept(10));
        Assert.True(w.TryAccept(12));
        Assert.True(w.TryAccept(11));
        Assert.False(w.TryAccept(11));
        Assert.True(w.TryAccept(5)); // older but inside the window, never seen
        Assert.True(w.TryAccept(12 + ReplayWindow.Size - 1));
        Assert.False(w.TryAccept(12)); // now at the window's edge: seen
        Assert.False(w.TryAccept(11)); // now older than the window
        Assert.True(w.TryAccept(13));
        Assert.True(w.TryAccept(100_000)); // a jump clears everything
        Assert.False(w.TryAccept(100_000 - ReplayWindow.Size));
        Assert.True(w.TryAccept(100_000 - ReplayWindow.Size + 1));

        // Against a set-based model on random sequences.
        var rng = new Random(5);
        var model = new HashSet<uint>();
        var window = new ReplayWindow();
        uint highest = 0;
        var any = false;
        for (var i = 0; i < 100_000; i++)
        {
            var s = (uint)Math.Max(0, (int)highest + rng.Next(-1500, 40));
            var expected = !model.Contains(s) && (!any || s > highest || highest - s < ReplayWindow.Size);
            Assert.Equal(expected, window.TryAccept(s));
            if (expected)
            {
                model.Add(s);
                highest = any ? Math.Max(highest, s) : s;
                any = true;
            }
        }
    }

    [Fact]
    public void Options_are_validated()
    {
        var router = new RouterEndpoint(LinkAddress.Parse("10.0.0.1"), 1);
        Assert.Equal(ControlProtocol.RouterServiceId, router.ServiceId);
        HostControllerOptions Host(Func<HostControllerOptions, HostControllerOptions> f) => f(new HostControllerOptions { Routers = [router] });
        Host(o => o).Validate();
        Assert.Throws<ArgumentException>(Host(o => o with { Lease = o.RefreshInterval }).Validate);
        Assert.Throws<ArgumentException>(Host(o => o with { Key = new byte[8] }).Validate);
        Assert.Throws<ArgumentException>(Host(o => o with { DefaultWeight = 0 }).Validate);
        Assert.Throws<ArgumentException>(Host(o => o with { Routers = [new RouterEndpoint(LinkAddress.None, 1)] }).Validate);
        Assert.Throws<ArgumentException>(Host(o => o with { RetryInterval = TimeSpan.Zero }).Validate);
        RouterControllerOptions.Default.Validate();
        Assert.Throws<ArgumentException>((RouterControllerOptions.Default with { PeerRetention = TimeSpan.FromSeconds(5) }).Validate);
        Assert.Throws<ArgumentException>((RouterControllerOptions.Default with { MinLease = TimeSpan.FromSeconds(90) }).Validate);
        Assert.Throws<ArgumentException>((RouterControllerOptions.Default with { ServiceId = default }).Validate);
        Assert.Throws<ArgumentException>((ResolverControllerOptions.Default with { MaxPending = 0 }).Validate);
    }

    private static ControlMessage Sample() => new()
    {
        Type = ControlMessageType.Register,
        Flags = ControlMessageFlags.Draining | ControlMessageFlags.Refresh,
        Sender = 0x0102030405060708,
        Sequence = 0x0A0B0C0D,
        Epoch = 0x1111111122222222,
        Timestamp = 123_456,
        Weight = 7,
        LeaseMilliseconds = 3000,
        Prefix = new ServicePrefix(ServiceId.FromName("web"), 24),
        Transports = ServiceTransports.Stream | ServiceTransports.Datagram,
    };
}
