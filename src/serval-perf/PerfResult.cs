using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serval.Perf;

/// <summary>One flow's figures.</summary>
internal sealed record FlowResult
{
    public int Index { get; init; }

    /// <summary>Payload bytes the receiver got.</summary>
    public long Bytes { get; init; }

    public double Seconds { get; init; }

    public long Retransmissions { get; init; }

    /// <summary>Stream mode: the sender's smoothed RTT and congestion window at the end (0 when unknown).</summary>
    public double SmoothedRttMicroseconds { get; init; }

    public long CongestionWindow { get; init; }

    /// <summary>Stream mode: the sender's retransmission timeouts, fast retransmits and tail-loss probes.</summary>
    public long Timeouts { get; init; }

    public long FastRetransmits { get; init; }

    public long TailLossProbes { get; init; }

    /// <summary>Datagram mode: datagrams sent (client) and received (server).</summary>
    public long DatagramsSent { get; init; }

    public long DatagramsReceived { get; init; }

    public double GoodputBitsPerSecond => Seconds > 0 ? Bytes * 8 / Seconds : 0;
}

/// <summary>The figures of one test, printed as JSON or as text.</summary>
internal sealed record PerfResult
{
    public required string Role { get; init; }

    public required string Mode { get; init; }

    public required string Service { get; init; }

    public required string Peer { get; init; }

    public double Seconds { get; init; }

    public double CpuSeconds { get; init; }

    public required IReadOnlyList<FlowResult> Flows { get; init; }

    public IReadOnlyList<Links.ServalLink> Links { get; init; } = [];

    public long Bytes => Flows.Sum(f => f.Bytes);

    public long Retransmissions => Flows.Sum(f => f.Retransmissions);

    public double GoodputBitsPerSecond => Seconds > 0 ? Bytes * 8 / Seconds : 0;

    private static readonly JsonSerializerOptions s_indented = new() { WriteIndented = true };

    public JsonObject ToJson()
    {
        var flows = new JsonArray();
        foreach (var f in Flows)
        {
            var o = new JsonObject
            {
                ["flow"] = f.Index,
                ["bytes"] = f.Bytes,
                ["seconds"] = Math.Round(f.Seconds, 6),
                ["goodput_bps"] = Math.Round(f.GoodputBitsPerSecond),
                ["retransmissions"] = f.Retransmissions,
            };
            if (Mode == "stream" && Role == "client")
            {
                o["srtt_us"] = Math.Round(f.SmoothedRttMicroseconds, 1);
                o["cwnd_bytes"] = f.CongestionWindow;
                o["timeouts"] = f.Timeouts;
                o["fast_retransmits"] = f.FastRetransmits;
                o["tail_loss_probes"] = f.TailLossProbes;
            }

            if (Mode == "datagram")
            {
                o["datagrams_sent"] = f.DatagramsSent;
                o["datagrams_received"] = f.DatagramsReceived;
            }

            flows.Add(o);
        }

        var links = new JsonArray();
        foreach (var l in Links)
        {
            var c = l.Counters;
            links.Add(new JsonObject
            {
                ["name"] = l.Name,
                ["packets_sent"] = c.PacketsSent,
                ["packets_received"] = c.PacketsReceived,
                ["system_calls"] = c.SystemCalls,
                ["offload_sends"] = c.OffloadSends,
                ["coalesced_receives"] = c.CoalescedReceives,
                ["offload_fallbacks"] = c.OffloadFallbacks,
                ["send_errors"] = c.SendErrors,
                ["receive_dropped"] = c.ReceiveDropped,
            });
        }

        var result = new JsonObject
        {
            ["role"] = Role,
            ["mode"] = Mode,
            ["service"] = Service,
            ["peer"] = Peer,
            ["parallel"] = Flows.Count,
            ["seconds"] = Math.Round(Seconds, 6),
            ["bytes"] = Bytes,
            ["goodput_bps"] = Math.Round(GoodputBitsPerSecond),
            ["retransmissions"] = Retransmissions,
            ["cpu_seconds"] = Math.Round(CpuSeconds, 3),
            ["flows"] = flows,
            ["links"] = links,
        };
        if (Mode == "datagram")
        {
            var sent = Flows.Sum(f => f.DatagramsSent);
            var received = Flows.Sum(f => f.DatagramsReceived);
            result["datagrams_sent"] = sent;
            result["datagrams_received"] = received;
            result["loss"] = sent > 0 ? Math.Round(Math.Max(0, 1 - ((double)received / sent)), 6) : 0;
        }

        return result;
    }

    public void Write(TextWriter output, bool json, bool indented)
    {
        if (json)
        {
            output.WriteLine(indented ? ToJson().ToJsonString(s_indented) : ToJson().ToJsonString());
            return;
        }

        var inv = CultureInfo.InvariantCulture;
        output.WriteLine(string.Create(inv, $"serval-perf {Role}: {Mode} test, service {Service}, peer {Peer}, {Flows.Count} flow(s)"));
        foreach (var f in Flows)
        {
            var extra = Mode == "datagram" ? string.Create(inv, $"  datagrams {f.DatagramsReceived}/{f.DatagramsSent}") : string.Create(inv, $"  retrans {f.Retransmissions}");
            output.WriteLine(string.Create(inv, $"[{f.Index,3}]  {f.Seconds,7:0.00} s  {FormatBytes(f.Bytes),12}  {Rate(f.GoodputBitsPerSecond),14}{extra}"));
        }

        output.WriteLine(string.Create(inv, $"[sum]  {Seconds,7:0.00} s  {FormatBytes(Bytes),12}  {Rate(GoodputBitsPerSecond),14}  retrans {Retransmissions}  cpu {CpuSeconds:0.00} s"));
    }

    private static string FormatBytes(long n) => n switch
    {
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{n / (double)(1L << 30):0.00} GiB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{n / (double)(1L << 20):0.00} MiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{n / 1024.0:0.00} KiB"),
    };

    private static string Rate(double bps) => bps switch
    {
        >= 1e9 => string.Create(CultureInfo.InvariantCulture, $"{bps / 1e9:0.000} Gbit/s"),
        >= 1e6 => string.Create(CultureInfo.InvariantCulture, $"{bps / 1e6:0.000} Mbit/s"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bps / 1e3:0.000} kbit/s"),
    };
}
