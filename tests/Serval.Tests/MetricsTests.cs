using System.Diagnostics.Metrics;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary>The host publishes its counters on the "Serval.Host" meter, tagged with the host name.</summary>
public sealed class MetricsTests
{
    [Fact]
    public async Task Packet_counters_and_flow_gauge_are_observable()
    {
        var ct = TestNet.Timeout();
        var name = "metrics-" + Guid.NewGuid().ToString("N")[..8];
        var seen = new Dictionary<string, long>();
        var unitOf = new Dictionary<string, string?>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "Serval.Host" && instrument.Meter.Tags?.Any(t => t.Key == "serval.host" && (string?)t.Value == name) == true)
            {
                lock (seen)
                {
                    unitOf[instrument.Name] = instrument.Unit;
                }

                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, state) =>
        {
            // Instruments of both directions are told apart by their network.io.direction tag.
            var direction = string.Empty;
            foreach (var tag in tags)
            {
                if (tag.Key == "network.io.direction")
                {
                    direction = "/" + tag.Value;
                }
            }

            lock (seen)
            {
                seen[instrument.Name + direction] = value;
            }
        });
        listener.SetMeasurementEventCallback<int>((instrument, value, tags, state) =>
        {
            lock (seen)
            {
                seen[instrument.Name] = value;
            }
        });
        listener.Start();

        await using var server = await TestNet.UdpHostAsync("server");
        await using var client = await TestNet.UdpHostAsync(name);
        var echo = ServiceId.FromName("test.metrics");
        await using var l = await StreamTests.EchoServerAsync(server, echo, ct);
        var (sent, received) = await StreamTests.TransferAsync(client, echo, 100_000, ct, server.Address());
        Assert.Equal(sent, received);
        listener.RecordObservableInstruments();
        lock (seen)
        {
            Assert.True(seen["serval.packets/transmit"] > 10, $"serval.packets/transmit {seen["serval.packets/transmit"]}");
            Assert.True(seen["serval.io/receive"] > 1000, $"serval.io/receive {seen["serval.io/receive"]}");
            Assert.Equal("By", unitOf["serval.io"]);
            Assert.True(seen.ContainsKey("serval.flows.active"));
            Assert.True(seen["serval.connections.opened"] >= 1, $"serval.connections.opened {seen["serval.connections.opened"]}");
            // The stream transport's spoofing defences (RFC 5961): one counter per kind, zero on a clean transfer.
            foreach (var kind in new[] { "spoof_transport_rst", "spoof_syn", "spoof_fin", "ack_unacceptable", "data_out_of_window", "challenge_acks_sent", "challenge_acks_suppressed" })
            {
                Assert.Equal(0, seen["serval.transport." + kind]);
            }

            // Faults, SYN cookies, TIME-WAIT recycling, negative answers and user timeouts: zero on a clean transfer.
            foreach (var instrument in new[] { "serval.flows.faults", "serval.sal.syn_cookies_sent", "serval.sal.syn_cookies_accepted", "serval.sal.syn_cookies_rejected", "serval.sal.timewait_recycled", "serval.sal.negative_answers_sent", "serval.sal.negative_answers_suppressed", "serval.stream.user_timeouts", "serval.packets.forward_loops", "serval.packets.hop_limit_exceeded" })
            {
                Assert.Equal(0, seen[instrument]);
            }

        }
    }
}
