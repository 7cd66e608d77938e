using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Benchmarks;

/// <summary>
/// Authenticated flows (docs/security.md), two engines in memory on one thread, all in one run: goodput of a bulk
/// stream transfer ordinary, authenticated and encrypted (per CPU-second, 1500-byte MTU); connects per CPU-second
/// ordinary and with an ownership proof (key exchange, signature, verification); and an on-path attacker that sees
/// every packet and forges RST, FIN, RSYN, ACK and data packets and replays genuine ones against an authenticated flow
/// while it carries a transfer whose SHA-256 is checked.
/// </summary>
internal static class SecureBenchmark
{
    private static readonly ServicePrefix Prefix = new(ServiceId.Parse("0x5e1f"), 16);

    public static int Run(string[] args)
    {
        var bytes = args.Length > 0 ? long.Parse(args[0], CultureInfo.InvariantCulture) : 256L << 20;
        var connects = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 2000;
        var spoofs = args.Length > 2 ? long.Parse(args[2], CultureInfo.InvariantCulture) : 1_000_000;

        using var key = ServiceKey.Create(Prefix, new SeededRandomSource(99));
        var plain = Goodput(FlowProtection.None, bytes, key);
        var auth = Goodput(FlowProtection.Authenticated, bytes, key);
        var aead = Goodput(FlowProtection.Encrypted, bytes, key);
        Primitives(key);
        var plainCps = ConnectRate(connects, proof: false, key);
        var proofCps = ConnectRate(connects, proof: true, key);
        var (sent, accepted, intact) = OnPath(spoofs, key);
        if (!intact)
        {
            Console.Error.WriteLine("secure: the stream under attack did not arrive intact");
            return 1;
        }

        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"secure: plain_gbps={plain:F2} auth_gbps={auth:F2} aead_gbps={aead:F2} auth_ratio={auth / plain:F2} aead_ratio={aead / plain:F2} plain_cps={plainCps:F0} proof_cps={proofCps:F0} onpath_spoofs_accepted={accepted}"));
        Console.Error.WriteLine($"(on-path spoofs sent: {sent})");
        return 0;
    }

    private sealed class Pair
    {
        public Pair(int mtu)
        {
            A = new Engine(EngineOptions.Default, new SeededRandomSource(1));
            B = new Engine(EngineOptions.Default, new SeededRandomSource(2));
            Ai = A.AddInterface(new InterfaceConfig { Name = "mem", Address = AddrA, Mtu = mtu });
            Bi = B.AddInterface(new InterfaceConfig { Name = "mem", Address = AddrB, Mtu = mtu });
            A.SetInterfaceUp(Ai, true, Now);
            B.SetInterfaceUp(Bi, true, Now);
            A.Services.Add(ServicePrefix.Default, ServiceTarget.Forward(AddrB, Ai));
            ToB = new MemoryWire(B, Bi);
            ToA = new MemoryWire(A, Ai);
        }

        public static LinkAddress AddrA { get; } = LinkAddress.Parse("10.0.0.1");

        public static LinkAddress AddrB { get; } = LinkAddress.Parse("10.0.0.2");

        public Engine A { get; }

        public Engine B { get; }

        public int Ai { get; }

        public int Bi { get; }

        public MemoryWire ToB { get; }

        public MemoryWire ToA { get; }

        public TimeSpan Now { get; set; } = TimeSpan.FromSeconds(1);

        /// <summary>Packets waiting to be injected into B (the attacker's), after the wire's own.</summary>
        public List<byte[]> Inject { get; } = [];

        public void Step()
        {
            Now += TimeSpan.FromTicks(100);
            A.Poll(Now, ToB);
            ToB.Deliver(Now);
            foreach (var p in Inject)
            {
                B.Receive(Bi, AddrA, AddrB, p, Now);
            }

            Inject.Clear();
            B.Poll(Now, ToA);
            ToA.Deliver(Now);
            while (A.TryGetEvent(out _))
            {
            }

            while (B.TryGetEvent(out _))
            {
            }
        }

        public (SocketHandle Client, SocketHandle Server) Connect(ServiceId service, SocketHandle listener, ConnectSecurity security)
        {
            A.Connect(service, TransportProtocol.Stream, Now, out var client, default, security);
            SocketHandle server = default;
            for (var i = 0; i < 100 && server.IsNone; i++)
            {
                Step();
                B.Accept(listener, out server);
            }

            if (server.IsNone || A.GetState(client) != SalState.Connected)
            {
                throw new InvalidOperationException($"connect failed: {A.GetError(client)}");
            }

            return (client, server);
        }
    }

    private static double Goodput(FlowProtection protection, long total, ServiceKey key)
    {
        var pair = new Pair(1500);
        pair.B.Listen(ServicePrefix.Exact(key.ServiceId), TransportProtocol.Stream, 8, pair.Now, out var listener, key);
        var (client, server) = pair.Connect(key.ServiceId, listener, new ConnectSecurity(protection, Required: protection != FlowProtection.None));
        if (pair.A.GetFlowSecurity(client).Protection != protection)
        {
            throw new InvalidOperationException($"{protection} was not negotiated");
        }

        var chunk = new byte[256 * 1024];
        new Random(3).NextBytes(chunk);
        var readBuf = new byte[256 * 1024];
        long sent = 0, received = 0;
        var edge = total / 8;
        long measuredFrom = -1, measuredTo = -1;
        TimeSpan cpuStart = TimeSpan.Zero, cpu = TimeSpan.Zero;
        var guard = 0L;
        while (received < total && guard++ < 100_000_000)
        {
            if (sent < total)
            {
                pair.A.Write(client, chunk.AsSpan(0, (int)Math.Min(chunk.Length, total - sent)), pair.Now, out var n);
                sent += n;
            }

            pair.Step();
            while (pair.B.Read(server, readBuf, pair.Now, out var r, out _) == ServalError.None && r > 0)
            {
                received += r;
            }

            if (measuredFrom < 0 && received >= edge)
            {
                measuredFrom = received;
                cpuStart = Process.GetCurrentProcess().TotalProcessorTime;
            }
            else if (measuredFrom >= 0 && measuredTo < 0 && received >= total - edge)
            {
                cpu = Process.GetCurrentProcess().TotalProcessorTime - cpuStart;
                measuredTo = received;
            }
        }

        if (measuredTo < 0)
        {
            throw new InvalidOperationException($"{protection}: transfer did not complete ({received} of {total})");
        }

        var gbps = (measuredTo - measuredFrom) * 8 / cpu.TotalSeconds / 1e9;
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{protection}: {measuredTo - measuredFrom} bytes in {cpu.TotalSeconds:F2} s CPU: {gbps:F2} Gbit/s"));
        return gbps;
    }

    /// <summary>
    /// CPU cost of each public-key primitive a connect with an ownership proof uses (stderr), to compare with the cost of
    /// a whole connect: an X25519 key from a seed (a base-point multiplication), an X25519 agreement, an Ed25519
    /// signature and its verification, and the HKDF of the flow keys.
    /// </summary>
    private static void Primitives(ServiceKey key)
    {
        const int n = 2000;
        var x25519 = NSec.Cryptography.KeyAgreementAlgorithm.X25519;
        var seed = new byte[32];
        var message = new byte[57];
        var signature = new byte[64];
        var peer = NSec.Cryptography.Key.Create(x25519);
        var peerPublic = peer.PublicKey.Export(NSec.Cryptography.KeyBlobFormat.RawPublicKey);
        key.Sign(message, signature);
        var us = new Dictionary<string, double>
        {
            ["x25519_keygen"] = Time(() =>
            {
                seed[0]++;
                using var k = NSec.Cryptography.Key.Import(x25519, seed, NSec.Cryptography.KeyBlobFormat.RawPrivateKey);
                _ = k.PublicKey.Export(NSec.Cryptography.KeyBlobFormat.RawPublicKey);
            }),
            ["x25519_agree"] = Time(() =>
            {
                NSec.Cryptography.PublicKey.TryImport(x25519, peerPublic, NSec.Cryptography.KeyBlobFormat.RawPublicKey, out var pk);
                using var secret = x25519.Agree(peer, pk!);
            }),
            ["ed25519_sign"] = Time(() => key.Sign(message, signature)),
            ["ed25519_verify"] = Time(() => ServiceKey.Verify(key.PublicKey, message, signature)),
            ["sha256"] = Time(() => SHA256.HashData(message)),
        };
        peer.Dispose();
        var connect = us["x25519_keygen"] * 2 + us["x25519_agree"] * 2 + us["ed25519_sign"] + us["ed25519_verify"];
        Console.Error.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"primitives (us of CPU each): {string.Join(" ", us.Select(p => $"{p.Key}={p.Value:F1}"))}; per connect with a proof (2 keygen, 2 agree, sign, verify): {connect:F0} us = at most {1e6 / connect:F0} connects per CPU-second"));

        static double Time(Action action)
        {
            for (var i = 0; i < 100; i++)
            {
                action();
            }

            var start = Process.GetCurrentProcess().TotalProcessorTime;
            for (var i = 0; i < n; i++)
            {
                action();
            }

            return (Process.GetCurrentProcess().TotalProcessorTime - start).TotalMicroseconds / n;
        }
    }

    private static double ConnectRate(int count, bool proof, ServiceKey key)
    {
        var pair = new Pair(1500);
        pair.B.Listen(ServicePrefix.Exact(key.ServiceId), TransportProtocol.Stream, 64, pair.Now, out var listener, key);
        var security = proof ? new ConnectSecurity(FlowProtection.Authenticated, RequireOwnershipProof: true) : ConnectSecurity.None;
        for (var i = 0; i < 50; i++)
        {
            OneConnect(); // warm-up
        }

        var cpuStart = Process.GetCurrentProcess().TotalProcessorTime;
        for (var i = 0; i < count; i++)
        {
            OneConnect();
        }

        var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpuStart;
        var cps = count / cpu.TotalSeconds;
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{(proof ? "proof" : "plain")} connects: {count} in {cpu.TotalSeconds:F2} s CPU: {cps:F0}/s"));
        return cps;

        void OneConnect()
        {
            var (client, server) = pair.Connect(key.ServiceId, listener, security);
            if (proof && !pair.A.GetFlowSecurity(client).OwnershipProved)
            {
                throw new InvalidOperationException("no ownership proof");
            }

            pair.A.Abort(client, pair.Now);
            pair.B.Abort(server, pair.Now);
            pair.Step();
        }
    }

    /// <summary>
    /// The attacker sees every packet A sends to B and answers each with forged packets to B built from it: RST, FIN and
    /// RSYN with A's nonce, ACK and data with plausible sequence numbers, each with a random tag or without AUTH, and
    /// replays of genuine packets. Returns how many were sent and accepted (not counted as rejected), and whether the
    /// transfer arrived intact.
    /// </summary>
    private static (long Sent, long Accepted, bool Intact) OnPath(long spoofs, ServiceKey key)
    {
        var pair = new Pair(1500);
        pair.B.Listen(ServicePrefix.Exact(key.ServiceId), TransportProtocol.Stream, 8, pair.Now, out var listener, key);
        var (client, server) = pair.Connect(key.ServiceId, listener, new ConnectSecurity(FlowProtection.Authenticated, RequireOwnershipProof: true));
        var clientInfo = pair.A.GetFlow(client)!;
        var serverInfo = pair.B.GetFlow(server)!;
        var rejectedBefore = pair.B.Counters.UnauthenticatedPackets + pair.B.Counters.ReplayedPackets;
        var random = new Random(5);
        var buffer = new byte[2048];
        var payload = new byte[1200];
        random.NextBytes(payload);
        long forged = 0;
        var data = new byte[8 << 20];
        random.NextBytes(data);
        var expected = SHA256.HashData(data);
        using var got = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var readBuf = new byte[256 * 1024];
        long sent = 0, received = 0;
        var guard = 0;
        while ((forged < spoofs || received < data.Length) && guard++ < 10_000_000)
        {
            if (sent < data.Length)
            {
                pair.A.Write(client, data.AsSpan((int)sent, (int)Math.Min(64 * 1024, data.Length - sent)), pair.Now, out var n);
                sent += n;
            }
            else if (received >= data.Length && forged < spoofs)
            {
                // Keep the flow busy: more data, so the attacker keeps seeing fresh packets.
                pair.A.Write(client, payload, pair.Now, out _);
            }

            for (var i = 0; i < 64 && forged < spoofs; i++, forged++)
            {
                var kind = (int)(forged % 6);
                var tag = (forged / 6 % 2) == 0 ? (SalPacketAuth?)new SalPacketAuth((ulong)random.NextInt64(1, 1 << 40), (ulong)random.NextInt64(), (ulong)random.NextInt64()) : null;
                var repr = new SalPacketRepr
                {
                    SourceFlow = clientInfo.LocalFlow,
                    DestinationFlow = serverInfo.LocalFlow,
                    Protocol = SalPacketRepr.ProtocolTcp,
                    Auth = tag,
                };
                var nonce = new Nonce((ulong)random.NextInt64());
                int len;
                var pseudo = TransportPseudoHeader.ForLink(Pair.AddrA, Pair.AddrB);
                switch (kind)
                {
                    case 0:
                        len = (repr with { Control = new SalControl(SalControlFlags.Rst | SalControlFlags.Ack, (uint)random.Next(), (uint)random.Next(), nonce), ControlOnly = true }).Emit(buffer, [], pseudo);
                        break;
                    case 1:
                        len = (repr with { Control = new SalControl(SalControlFlags.Fin, (uint)random.Next(), (uint)random.Next(), nonce), ControlOnly = true }).Emit(buffer, [], pseudo);
                        break;
                    case 2:
                        len = (repr with { Control = new SalControl(SalControlFlags.Rsyn, (uint)random.Next(), (uint)random.Next(), nonce), ControlOnly = true }).Emit(buffer, [], pseudo);
                        break;
                    case 3:
                        len = (repr with { Tcp = new TcpRepr { Flags = TcpFlags.Ack, SequenceNumber = (uint)random.Next(), AckNumber = (uint)random.Next(), Window = 65535 } }).Emit(buffer, [], pseudo);
                        break;
                    case 4:
                        len = (repr with { Tcp = new TcpRepr { Flags = TcpFlags.Ack | TcpFlags.Psh, SequenceNumber = (uint)random.Next(), AckNumber = (uint)random.Next(), Window = 65535 } }).Emit(buffer, payload.AsSpan(0, random.Next(1, payload.Length)), pseudo);
                        break;
                    default:
                        // A replay: a sealed packet the client sent earlier (its packet number is already received).
                        len = LastSealed(pair, buffer);
                        break;
                }

                if (len > 0)
                {
                    pair.Inject.Add(buffer[..len]);
                }
                else
                {
                    forged--;
                }
            }

            pair.Step();
            while (pair.B.Read(server, readBuf, pair.Now, out var r, out _) == ServalError.None && r > 0)
            {
                var take = (int)Math.Min(r, Math.Max(0, data.Length - received));
                got.AppendData(readBuf, 0, take);
                received += r;
            }
        }

        var rejected = pair.B.Counters.UnauthenticatedPackets + pair.B.Counters.ReplayedPackets - rejectedBefore;
        var intact = received >= data.Length && got.GetHashAndReset().AsSpan().SequenceEqual(expected) && pair.B.GetState(server) == SalState.Connected;
        Console.Error.WriteLine($"on-path: {forged} forged, {rejected} rejected, stream {(intact ? "intact" : "NOT intact")}, {received} bytes received");
        return (forged, forged - rejected, intact);
    }

    private static byte[]? s_lastSealed;

    /// <summary>A copy of a genuine sealed packet from A, taken once (replayed thereafter).</summary>
    private static int LastSealed(Pair pair, byte[] buffer)
    {
        if (s_lastSealed is null)
        {
            var tap = new CaptureSink();
            pair.A.Poll(pair.Now, tap);
            if (tap.Packets.Count == 0)
            {
                return 0;
            }

            foreach (var p in tap.Packets)
            {
                pair.B.Receive(pair.Bi, Pair.AddrA, Pair.AddrB, p, pair.Now); // delivered once, genuinely
            }

            s_lastSealed = tap.Packets[^1];
        }

        s_lastSealed.CopyTo(buffer, 0);
        return s_lastSealed.Length;
    }

    private sealed class CaptureSink : IPacketSink
    {
        public List<byte[]> Packets { get; } = [];

        public void Send(int interfaceIndex, LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit) => Packets.Add(packet.ToArray());
    }
}
