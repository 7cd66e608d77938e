using System.Net;
using Serval.Links;
using Serval.Stack.Streams;
using Serval.Wire;

namespace Serval.Perf;

/// <summary>What server and client share: links, service, output format.</summary>
internal sealed record CommonSettings
{
    public required List<IPEndPoint> UdpLinks { get; init; }

    public required List<IPAddress> RawLinks { get; init; }

    public required ServiceId Service { get; init; }

    public required string ServiceText { get; init; }

    public bool Offload { get; init; } = true;

    public int? Window { get; init; }

    public bool Pacing { get; init; } = true;

    public bool Json { get; init; }

    /// <summary>Server: a service router to register the listened service with (none when <see cref="LinkAddress.None"/>).</summary>
    public LinkAddress Register { get; init; }

    /// <summary>Server: the weight of that registration (the router's anycast share).</summary>
    public uint Weight { get; init; } = 1;

    /// <summary>Starts a host with the links: UDP links first, then raw IP links (interface indexes in that order).</summary>
    /// <exception cref="PerfException">A link cannot be created.</exception>
    public async Task<ServalHost> StartHostAsync(string name, CancellationToken ct)
    {
        var links = new List<ServalLink>();
        try
        {
            foreach (var endPoint in UdpLinks)
            {
                try
                {
                    links.Add(new UdpLink(endPoint, new UdpLinkOptions { UseSegmentationOffload = Offload }));
                }
                catch (System.Net.Sockets.SocketException e)
                {
                    throw new PerfException($"cannot bind UDP {endPoint}: {e.Message}");
                }
            }

            foreach (var address in RawLinks)
            {
                if (!RawIpLink.IsSupported)
                {
                    throw new PerfException("raw IP links need Linux with root or CAP_NET_RAW.");
                }

                try
                {
                    links.Add(new RawIpLink(address));
                }
                catch (System.Net.Sockets.SocketException e)
                {
                    throw new PerfException($"cannot open a raw IP link on {address}: {e.Message}");
                }
            }

            var stream = StreamOptions.Default with { Pacing = Pacing };
            if (Window is { } w)
            {
                stream = stream with { SendBufferSize = w, ReceiveBufferSize = w };
            }

            return await ServalHost.StartAsync(
                new ServalHostOptions
                {
                    Name = name,
                    Links = links,
                    Stream = stream,
                    RegisterWithRouter = Register,
                    Registration = Stack.ControlPlane.HostControllerOptions.Default with { DefaultWeight = Weight },
                },
                ct).ConfigureAwait(false);
        }
        catch
        {
            foreach (var link in links)
            {
                link.Dispose();
            }

            throw;
        }
    }
}

/// <summary>A client's test.</summary>
internal sealed record ClientSettings
{
    public required CommonSettings Common { get; init; }

    public required LinkAddress Peer { get; init; }

    /// <summary>1-based index of the link the peer is reached through.</summary>
    public required int PeerLink { get; init; }

    public bool Advisory { get; init; }

    public bool Datagram { get; init; }

    public TimeSpan Duration { get; init; }

    public long? Bytes { get; init; }

    public int Parallel { get; init; } = 1;

    public int DatagramSize { get; init; } = 1400;

    /// <summary>When set, stream flow statistics are printed to standard error at this interval.</summary>
    public TimeSpan? Interval { get; init; }
}

/// <summary>A failure reported as <c>serval-perf: message</c> with exit code 1.</summary>
internal sealed class PerfException(string message) : Exception(message);
