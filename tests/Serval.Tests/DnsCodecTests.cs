using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Serval.Resolution.Dns;
using Xunit;

namespace Serval.Tests;

/// <summary>
/// The DNS message codec and stub client of the DNS resolver (docs/resolution.md): the bytes written, answers parsed
/// with compression, and hostile answers — truncated, compression loops, oversized, wrong ID — refused without an
/// exception and within fixed bounds.
/// </summary>
public sealed class DnsCodecTests
{
    /// <summary>Builds DNS messages byte by byte (names may be pointers to earlier offsets).</summary>
    private sealed class Bytes
    {
        private readonly List<byte> _b = [];

        public int Length => _b.Count;

        public Bytes U8(int v)
        {
            _b.Add((byte)v);
            return this;
        }

        public Bytes U16(int v) => U8(v >> 8).U8(v);

        public Bytes U32(uint v) => U16((int)(v >> 16)).U16((int)(v & 0xFFFF));

        public Bytes Name(string name, int? pointer = null)
        {
            foreach (var label in name.Split('.', StringSplitOptions.RemoveEmptyEntries))
            {
                U8(label.Length);
                foreach (var c in label)
                {
                    U8(c);
                }
            }

            return pointer is { } p ? U16(0xC000 | p) : U8(0);
        }

        public Bytes Raw(params byte[] bytes)
        {
            _b.AddRange(bytes);
            return this;
        }

        public Bytes Header(ushort id, int flags, int qd, int an, int ns, int ar) => U16(id).U16(flags).U16(qd).U16(an).U16(ns).U16(ar);

        /// <summary>A record header (name written by the caller) followed by data written by <paramref name="data"/>; the length is patched in.</summary>
        public Bytes Record(DnsType type, uint ttl, Action<Bytes> data)
        {
            U16((int)type).U16(1).U32(ttl);
            var at = _b.Count;
            U16(0);
            data(this);
            var length = _b.Count - at - 2;
            _b[at] = (byte)(length >> 8);
            _b[at + 1] = (byte)length;
            return this;
        }

        public byte[] ToArray() => [.. _b];
    }

    /// <summary>
    /// A response to an SRV query for <c>_serval._udp.svc.example</c>: two SRV records (priorities 10 and 20) with
    /// compressed names, the SOA in authority, the target's A record in additional.
    /// </summary>
    private static byte[] SrvResponse(ushort id = 0x4242)
    {
        var b = new Bytes().Header(id, 0x8580, 1, 2, 1, 1);
        var qname = b.Length;
        b.Name("_serval._udp.svc.example").U16((int)DnsType.Srv).U16(1);
        var svc = qname + 1 + 7 + 1 + 4; // "svc.example" inside the question name
        b.U16(0xC000 | qname).Record(DnsType.Srv, 300, d => d.U16(10).U16(5).U16(54325).Name("host-a", svc));
        var hostA = b.Length - 2 - 1 - 6; // where "host-a" starts in that record's data
        b.U16(0xC000 | qname).Record(DnsType.Srv, 60, d => d.U16(20).U16(1).U16(1000).Name("host-b", svc));
        var example = svc + 4;
        b.U16(0xC000 | example).Record(DnsType.Soa, 3600, d => d.Name("ns", example).Name("admin", example).U32(1).U32(2).U32(3).U32(4).U32(30));
        b.U16(0xC000 | hostA).Record(DnsType.A, 120, d => d.Raw(10, 0, 0, 7));
        return b.ToArray();
    }

    [Fact]
    public void A_query_is_written_as_documented_with_an_edns_opt_record()
    {
        var q = DnsWriter.Query(0x1234, "a.example", DnsType.Srv);
        byte[] expected =
        [
            0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1,
            1, (byte)'a', 7, (byte)'e', (byte)'x', (byte)'a', (byte)'m', (byte)'p', (byte)'l', (byte)'e', 0, 0, 33, 0, 1,
            0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0,
        ];
        Assert.Equal(expected, q);
        Assert.True(DnsMessage.TryParse(q, out var m, out _));
        Assert.Equal(new DnsQuestion("a.example", DnsType.Srv), Assert.Single(m!.Questions));
        Assert.False(m.IsResponse);
        Assert.True(m.RecursionDesired);
        Assert.Equal(DnsType.Opt, Assert.Single(m.Additional).Type);
    }

    [Fact]
    public void A_response_with_compressed_names_parses_into_srv_soa_and_address_records()
    {
        Assert.True(DnsMessage.TryParse(SrvResponse(), out var m, out var error), error);
        Assert.True(m!.IsResponse);
        Assert.True(m.Authoritative);
        Assert.Equal(DnsResponseCode.NoError, m.ResponseCode);
        Assert.Equal(2, m.Answers.Count);
        Assert.Equal("_serval._udp.svc.example", m.Answers[0].Name);
        Assert.Equal(new DnsSrv(10, 5, 54325, "host-a.svc.example"), m.Answers[0].Srv);
        Assert.Equal(new DnsSrv(20, 1, 1000, "host-b.svc.example"), m.Answers[1].Srv);
        Assert.Equal(30u, Assert.Single(m.Authority).SoaMinimum);
        var a = Assert.Single(m.Additional);
        Assert.Equal("host-a.svc.example", a.Name);
        Assert.Equal(IPAddress.Parse("10.0.0.7"), a.Address);
        Assert.Equal(120u, a.Ttl);
    }

    [Fact]
    public void Every_truncation_of_a_valid_response_is_refused()
    {
        var full = SrvResponse();
        for (var n = 0; n < full.Length; n++)
        {
            Assert.False(DnsMessage.TryParse(full.AsSpan(0, n), out var m, out var error), $"{n} bytes parsed");
            Assert.Null(m);
            Assert.False(string.IsNullOrEmpty(error));
        }
    }

    [Fact]
    public void Compression_loops_and_forward_pointers_are_refused()
    {
        // A pointer to itself.
        var self = new Bytes().Header(1, 0x8000, 1, 0, 0, 0).U16(0xC000 | 12).U16(1).U16(1).ToArray();
        Assert.False(DnsMessage.TryParse(self, out _, out var e1));
        Assert.Contains("pointer", e1, StringComparison.Ordinal);

        // Two pointers to each other: the question's name points at the answer's, which points back.
        var pair = new Bytes().Header(1, 0x8000, 1, 1, 0, 0).U16(0xC000 | 18).U16(1).U16(1).U16(0xC000 | 12).Record(DnsType.A, 1, d => d.Raw(1, 2, 3, 4)).ToArray();
        Assert.False(DnsMessage.TryParse(pair, out _, out _));

        // A label, then a pointer back to the start of the same name (a loop through a label).
        var label = new Bytes().Header(1, 0x8000, 1, 0, 0, 0).U8(1).U8('a').U16(0xC000 | 12).U16(1).U16(1).ToArray();
        Assert.False(DnsMessage.TryParse(label, out _, out _));

        // A chain of 40 pointers, each to the one before: longer than MaxPointers.
        var chain = new Bytes().Header(1, 0x8000, 1, 0, 0, 0).U8(0);
        for (var i = 0; i < 40; i++)
        {
            chain.U16(0xC000 | (12 + (i == 0 ? 0 : 1 + ((i - 1) * 2))));
        }

        var bytes = chain.ToArray();
        var offset = 13 + (39 * 2); // read a name at the last pointer: every hop goes backwards, but there are 40
        Assert.False(DnsMessage.TryReadName(bytes, ref offset, out _, out var e4));
        Assert.Contains("pointer", e4, StringComparison.Ordinal);

        // The reserved label types 0x40 and 0x80 (extended labels) are not supported.
        var extended = new Bytes().Header(1, 0x8000, 1, 0, 0, 0).U8(0x41).U8('a').U8(0).U16(1).U16(1).ToArray();
        Assert.False(DnsMessage.TryParse(extended, out _, out _));
    }

    [Fact]
    public void Oversized_names_counts_and_data_are_refused()
    {
        // 130 labels of one character: 261 bytes, more than 255.
        var longName = new Bytes().Header(1, 0x8000, 1, 0, 0, 0).Name(string.Join('.', Enumerable.Repeat("a", 130))).U16(1).U16(1).ToArray();
        Assert.False(DnsMessage.TryParse(longName, out _, out var e1));
        Assert.Contains("255", e1, StringComparison.Ordinal);

        // 127 labels is 255 bytes exactly: accepted.
        var justFits = new Bytes().Header(1, 0x8000, 1, 0, 0, 0).Name(string.Join('.', Enumerable.Repeat("a", 127))).U16(1).U16(1).ToArray();
        Assert.True(DnsMessage.TryParse(justFits, out _, out var e2), e2);

        // Counts announcing more records than the bound.
        var counts = new Bytes().Header(1, 0x8000, 0, 0xFFFF, 0xFFFF, 0xFFFF).ToArray();
        Assert.False(DnsMessage.TryParse(counts, out _, out _));

        // Record data running past the end; an A record of 5 bytes; a CNAME with bytes after its name.
        var past = new Bytes().Header(1, 0x8000, 0, 1, 0, 0).Name("x").U16(1).U16(1).U32(1).U16(200).Raw(1, 2, 3, 4).ToArray();
        Assert.False(DnsMessage.TryParse(past, out _, out _));
        var fiveByteA = new Bytes().Header(1, 0x8000, 0, 1, 0, 0).Name("x").Record(DnsType.A, 1, d => d.Raw(1, 2, 3, 4, 5)).ToArray();
        Assert.False(DnsMessage.TryParse(fiveByteA, out _, out _));
        var cname = new Bytes().Header(1, 0x8000, 0, 1, 0, 0).Name("x").Record(DnsType.CName, 1, d => d.Name("y").Raw(9)).ToArray();
        Assert.False(DnsMessage.TryParse(cname, out _, out _));
        var shortSrv = new Bytes().Header(1, 0x8000, 0, 1, 0, 0).Name("x").Record(DnsType.Srv, 1, d => d.U16(1).U16(1)).ToArray();
        Assert.False(DnsMessage.TryParse(shortSrv, out _, out _));

        // Longer than any DNS message.
        Assert.False(DnsMessage.TryParse(new byte[70_000], out _, out _));
    }

    [Fact]
    public void Random_and_mutated_messages_never_throw_and_every_accepted_name_is_bounded()
    {
        var rng = new Random(1035);
        var valid = SrvResponse();
        var accepted = 0;
        for (var i = 0; i < 200_000; i++)
        {
            byte[] b;
            if (i % 2 == 0)
            {
                b = new byte[rng.Next(0, 600)];
                rng.NextBytes(b);
                if (b.Length >= 12)
                {
                    b[4] = 0; // plausible counts, so that the fuzz reaches the names and records
                    b[5] = (byte)rng.Next(3);
                    b[6] = 0;
                    b[7] = (byte)rng.Next(4);
                    b[8] = b[10] = 0;
                }
            }
            else
            {
                b = (byte[])valid.Clone();
                for (var k = rng.Next(1, 5); k > 0; k--)
                {
                    b[rng.Next(b.Length)] = (byte)rng.Next(256);
                }

                if (rng.Next(4) == 0)
                {
                    b = b[..rng.Next(b.Length + 1)];
                }
            }

            if (DnsMessage.TryParse(b, out var m, out _))
            {
                accepted++;
                foreach (var r in m!.Answers.Concat(m.Authority).Concat(m.Additional))
                {
                    Assert.True(r.Name.Length <= 4 * DnsMessage.MaxNameLength);
                }
            }
        }

        Assert.InRange(accepted, 1000, 199_000);
    }

    [Fact]
    public void An_answer_with_another_id_question_or_opcode_is_not_the_answer()
    {
        var question = new DnsQuestion("_serval._udp.svc.example", DnsType.Srv);
        var good = SrvResponse(7);
        Assert.NotNull(DnsClient.Accept(good, 7, question, DnsOpcode.Query));
        Assert.Null(DnsClient.Accept(good, 8, question, DnsOpcode.Query));
        Assert.Null(DnsClient.Accept(good, 7, question with { Type = DnsType.A }, DnsOpcode.Query));
        Assert.Null(DnsClient.Accept(good, 7, question with { Name = "other.example" }, DnsOpcode.Query));
        Assert.Null(DnsClient.Accept(good, 7, question, DnsOpcode.Update));
        Assert.NotNull(DnsClient.Accept(good, 7, question with { Name = "_SERVAL._UDP.SVC.EXAMPLE." }, DnsOpcode.Query)); // names compare case-insensitively
        var query = (byte[])good.Clone();
        query[2] &= 0x7F; // QR clear: a query, not a response
        Assert.Null(DnsClient.Accept(query, 7, question, DnsOpcode.Query));
        Assert.Null(DnsClient.Accept(good.AsSpan(0, good.Length - 3), 7, question, DnsOpcode.Query));
    }

    [Fact]
    public void An_update_message_is_written_as_rfc_2136_sections()
    {
        var update = DnsWriter.Update(
            0x0102,
            "serval.test",
            [
                new DnsChange(DnsChangeKind.Add, "_serval._udp.x.serval.test", DnsType.Srv, 30, DnsWriter.SrvData(0, 2, 54325, "h.serval.test")),
                new DnsChange(DnsChangeKind.Delete, "h.serval.test", DnsType.A, 0, [10, 0, 0, 1]),
                new DnsChange(DnsChangeKind.DeleteRRset, "x.serval.test", DnsType.Aaaa, 0, []),
            ]);
        Assert.Equal(0x2800, BinaryPrimitives.ReadUInt16BigEndian(update.AsSpan(2))); // opcode 5, no flags
        Assert.True(DnsMessage.TryParse(update, out var m, out var error), error);
        Assert.Equal(DnsOpcode.Update, m!.Opcode);
        Assert.Equal(new DnsQuestion("serval.test", DnsType.Soa), Assert.Single(m.Questions));
        Assert.Empty(m.Answers); // no prerequisites
        Assert.Equal(3, m.Authority.Count);
        Assert.Equal((DnsClass.In, 30u), (m.Authority[0].Class, m.Authority[0].Ttl));
        Assert.Equal(new DnsSrv(0, 2, 54325, "h.serval.test"), m.Authority[0].Srv);
        Assert.Equal((DnsClass.None, 0u), (m.Authority[1].Class, m.Authority[1].Ttl));
        Assert.Equal(IPAddress.Parse("10.0.0.1"), m.Authority[1].Address);
        Assert.Equal((DnsClass.Any, 0), (m.Authority[2].Class, m.Authority[2].Data.Length));
    }

    [Theory]
    [InlineData("serval.example", true)]
    [InlineData("serval.example.", true)]
    [InlineData("_serval._udp.a-b.example", true)]
    [InlineData("a..example", false)]
    [InlineData("has space.example", false)]
    [InlineData("back\\slash.example", false)]
    [InlineData("caf\u00e9.example", false)]
    public void Names_the_writer_accepts(string name, bool valid)
    {
        Assert.Equal(valid, DnsWriter.IsValidName(name));
        Assert.True(DnsWriter.IsValidName(new string('a', 63)));
        Assert.False(DnsWriter.IsValidName(new string('a', 64)));
        Assert.False(DnsWriter.IsValidName(string.Join('.', Enumerable.Repeat(new string('a', 63), 4))));
    }

    [Fact]
    public async Task The_client_ignores_wrong_answers_retries_over_tcp_when_truncated_and_fails_when_nobody_answers()
    {
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        udp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var server = (IPEndPoint)udp.LocalEndPoint!;
        using var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        tcp.Bind(server);
        tcp.Listen();
        var name = "_serval._udp.svc.example";
        var serve = Task.Run(async () =>
        {
            var buffer = new byte[1500];
            var r = await udp.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0));
            var id = BinaryPrimitives.ReadUInt16BigEndian(buffer);
            var response = SrvResponse(id);

            // First an answer with another ID and one from another port (both to be ignored), then a truncated one.
            var wrong = SrvResponse(unchecked((ushort)(id + 1)));
            await udp.SendToAsync(wrong, r.RemoteEndPoint);
            using (var other = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
            {
                await other.SendToAsync(response, r.RemoteEndPoint);
            }

            var truncated = (byte[])response.Clone();
            truncated[2] |= 0x02;
            await udp.SendToAsync(truncated, r.RemoteEndPoint);

            using var connection = await tcp.AcceptAsync();
            var length = new byte[2];
            await connection.ReceiveAsync(length);
            var query = new byte[BinaryPrimitives.ReadUInt16BigEndian(length)];
            var got = 0;
            while (got < query.Length)
            {
                got += await connection.ReceiveAsync(query.AsMemory(got));
            }

            var tcpResponse = SrvResponse(BinaryPrimitives.ReadUInt16BigEndian(query));
            var framed = new byte[tcpResponse.Length + 2];
            BinaryPrimitives.WriteUInt16BigEndian(framed, (ushort)tcpResponse.Length);
            tcpResponse.CopyTo(framed, 2);
            await connection.SendAsync(framed);
        }, TestContext.Current.CancellationToken);

        var client = new DnsClient([server], TimeSpan.FromSeconds(5), 1);
        var answer = await client.QueryAsync(name, DnsType.Srv, TestNet.Timeout());
        await serve;
        Assert.False(answer.Truncated); // the TCP answer
        Assert.Equal(2, answer.Answers.Count);

        // Nobody answers: bounded by attempts × timeout, then a DnsException.
        var silent = new DnsClient([server], TimeSpan.FromMilliseconds(100), 2);
        var started = DateTime.UtcNow;
        await Assert.ThrowsAsync<DnsException>(() => silent.QueryAsync(name, DnsType.Srv, TestNet.Timeout()));
        Assert.InRange(DateTime.UtcNow - started, TimeSpan.FromMilliseconds(150), TimeSpan.FromSeconds(3));
    }
}
