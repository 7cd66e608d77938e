using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace Serval.Resolution.Dns;

/// <summary>A DNS exchange that failed: no answer in time from any server, only malformed answers, or a TCP error.</summary>
internal sealed class DnsException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>
/// A small stub DNS client: sends one message to the configured servers over UDP — a new socket (so a random source
/// port) and a random 16-bit ID per attempt — and retries over TCP when the answer is truncated. An answer counts only
/// if it comes from the server asked, carries the query's ID, is a response with the query's opcode and echoes its
/// question; anything else is ignored while waiting. Every wait is bounded by <see cref="Timeout"/> and the number of
/// attempts; answers are at most 65535 bytes.
/// </summary>
internal sealed class DnsClient(IReadOnlyList<IPEndPoint> servers, TimeSpan timeout, int attempts)
{
    public IReadOnlyList<IPEndPoint> Servers { get; } = servers;

    public TimeSpan Timeout { get; } = timeout;

    public int Attempts { get; } = attempts;

    /// <summary>Queries <paramref name="name"/>/<paramref name="type"/> (recursion desired, EDNS).</summary>
    /// <exception cref="DnsException">No server gave a usable answer.</exception>
    public Task<DnsMessage> QueryAsync(string name, DnsType type, CancellationToken cancellationToken) =>
        ExchangeAsync(id => DnsWriter.Query(id, name, type), new DnsQuestion(name, type), DnsOpcode.Query, cancellationToken);

    /// <summary>
    /// Sends the message <paramref name="build"/> makes for an ID and waits for its answer: over UDP, then over TCP if
    /// the answer is truncated; each server in turn, <see cref="Attempts"/> rounds.
    /// </summary>
    /// <exception cref="DnsException">No server gave a usable answer.</exception>
    public async Task<DnsMessage> ExchangeAsync(Func<ushort, byte[]> build, DnsQuestion question, DnsOpcode opcode, CancellationToken cancellationToken)
    {
        Exception? last = null;
        for (var round = 0; round < Attempts; round++)
        {
            foreach (var server in Servers)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var id = (ushort)RandomNumberGenerator.GetInt32(0, 0x10000);
                var message = build(id);
                try
                {
                    var answer = await UdpAsync(server, message, id, question, opcode, cancellationToken).ConfigureAwait(false);
                    if (answer is { Truncated: true })
                    {
                        answer = await TcpAsync(server, message, id, question, opcode, cancellationToken).ConfigureAwait(false);
                    }

                    if (answer is not null)
                    {
                        return answer;
                    }

                    last = new DnsException($"no answer from {server} within {Timeout.TotalMilliseconds:0} ms");
                }
                catch (Exception e) when (e is SocketException or IOException && !cancellationToken.IsCancellationRequested)
                {
                    last = e;
                }
            }
        }

        throw new DnsException($"DNS {opcode} for {question.Name} {question.Type} failed: {last?.Message}", last);
    }

    private async Task<DnsMessage?> UdpAsync(IPEndPoint server, byte[] message, ushort id, DnsQuestion question, DnsOpcode opcode, CancellationToken cancellationToken)
    {
        using var socket = new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(server.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0));
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        var buffer = new byte[ushort.MaxValue];
        try
        {
            await socket.SendToAsync(message, SocketFlags.None, server, timeout.Token).ConfigureAwait(false);
            while (true)
            {
                var r = await socket.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(server.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0), timeout.Token).ConfigureAwait(false);
                if (r.RemoteEndPoint is IPEndPoint from && from.Port == server.Port && Same(from.Address, server.Address)
                    && Accept(buffer.AsSpan(0, r.ReceivedBytes), id, question, opcode) is { } answer)
                {
                    return answer;
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return null; // this attempt's time is up
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            return null; // ICMP port unreachable: nothing listens there
        }
    }

    private async Task<DnsMessage?> TcpAsync(IPEndPoint server, byte[] message, ushort id, DnsQuestion question, DnsOpcode opcode, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        using var socket = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(server, timeout.Token).ConfigureAwait(false);
            var framed = new byte[message.Length + 2];
            BinaryPrimitives.WriteUInt16BigEndian(framed, (ushort)message.Length);
            message.CopyTo(framed, 2);
            await socket.SendAsync(framed, SocketFlags.None, timeout.Token).ConfigureAwait(false);
            var header = new byte[2];
            await ReceiveExactlyAsync(socket, header, timeout.Token).ConfigureAwait(false);
            var body = new byte[BinaryPrimitives.ReadUInt16BigEndian(header)];
            await ReceiveExactlyAsync(socket, body, timeout.Token).ConfigureAwait(false);
            return Accept(body, id, question, opcode) ?? throw new DnsException($"unusable answer over TCP from {server}");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return null;
        }
    }

    private static async Task ReceiveExactlyAsync(Socket socket, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (buffer.Length > 0)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                throw new DnsException("the server closed the TCP connection before the answer was complete");
            }

            buffer = buffer[n..];
        }
    }

    /// <summary>The parsed answer if it answers this query; null for anything else (malformed, another ID or question).</summary>
    internal static DnsMessage? Accept(ReadOnlySpan<byte> data, ushort id, DnsQuestion question, DnsOpcode opcode)
    {
        if (!DnsMessage.TryParse(data, out var m, out _) || m is null || !m.IsResponse || m.Id != id || m.Opcode != opcode)
        {
            return null;
        }

        // A response echoes the question; a truncated one or an error may omit it (RFC 1035 allows it for FORMERR).
        if (m.Questions.Count == 0)
        {
            return m.Truncated || m.ResponseCode != DnsResponseCode.NoError ? m : null;
        }

        return m.Questions.Count == 1 && m.Questions[0].Type == question.Type && m.Questions[0].Class == question.Class
            && DnsMessage.SameName(m.Questions[0].Name, question.Name)
            ? m
            : null;
    }

    private static bool Same(IPAddress a, IPAddress b) =>
        (a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a).Equals(b.IsIPv4MappedToIPv6 ? b.MapToIPv4() : b);
}
