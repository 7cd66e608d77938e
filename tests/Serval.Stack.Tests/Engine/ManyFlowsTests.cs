using System.Diagnostics;
using Serval.Simulation;
using Serval.Stack;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>Many connections between two engines: opened quickly, idle ones hold no stream buffers (docs/engine.md, "Memory per flow").</summary>
public sealed class ManyFlowsTests
{
    private static readonly ServiceId Service = ServiceId.FromName("many-flows");
    private static readonly LinkAddress ClientAddress = LinkAddress.Parse("10.8.0.1");
    private static readonly LinkAddress ServerAddress = LinkAddress.Parse("10.8.0.2");

    private readonly ITestOutputHelper _output;

    public ManyFlowsTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void Thousands_of_flows_open_carry_data_and_go_idle_without_buffers()
    {
        const int Flows = 3000;
        var started = Stopwatch.GetTimestamp();
        var net = new SimulatedNetwork(5);
        var link = net.AddLink("lan", LinkConditions.Perfect with { Delay = TimeSpan.FromMilliseconds(1) });
        var a = net.AddHost("client");
        var b = net.AddHost("server");
        var ai = a.Attach(link, ClientAddress);
        b.Attach(link, ServerAddress);
        a.AddForward(ServicePrefix.Default, ServerAddress, ai);
        var listener = b.Listen(Service, backlog: Flows);

        var clients = new SocketHandle[Flows];
        for (var i = 0; i < Flows; i++)
        {
            clients[i] = a.Connect(Service);
        }

        var servers = new List<SocketHandle>(Flows);
        Assert.True(
            net.RunUntil(
                () =>
                {
                    while (b.Engine.Accept(listener, out var s) == ServalError.None && !s.IsNone)
                    {
                        servers.Add(s);
                    }

                    return servers.Count == Flows;
                },
                TimeSpan.FromSeconds(30)),
            $"{servers.Count} of {Flows} accepted");
        Assert.All(clients, c => Assert.True(a.IsConnected(c), SimApp.Describe(a, c)));

        // Every client sends 1 KiB; every server reads it.
        var message = SimApp.RandomBytes(1024, 9);
        foreach (var c in clients)
        {
            Assert.Equal(ServalError.None, a.Do(e => e.Write(c, message, a.Now, out _)));
        }

        var buffer = new byte[4096];
        var read = new int[Flows];
        Assert.True(
            net.RunUntil(
                () =>
                {
                    var done = true;
                    for (var i = 0; i < Flows; i++)
                    {
                        while (read[i] < message.Length && b.Do(e => e.Read(servers[i], buffer, b.Now, out var n, out _) == ServalError.None ? n : 0) is var got && got > 0)
                        {
                            read[i] += got;
                        }

                        done &= read[i] == message.Length;
                    }

                    return done;
                },
                TimeSpan.FromSeconds(30)),
            $"{read.Count(r => r == message.Length)} of {Flows} messages delivered");
        var holding = clients.Count(c => a.Engine.GetFlow(c)?.Stream?.BufferStorageBytes > 0);
        Assert.True(holding > 0, "flows that carried data hold buffers at first");

        // Idle for a little more than the release time: no flow holds buffer storage.
        net.RunFor(TimeSpan.FromSeconds(2));
        var clientStorage = clients.Sum(c => (long)(a.Engine.GetFlow(c)?.Stream?.BufferStorageBytes ?? -1_000_000));
        var serverStorage = servers.Sum(s => (long)(b.Engine.GetFlow(s)?.Stream?.BufferStorageBytes ?? -1_000_000));
        var elapsed = Stopwatch.GetElapsedTime(started);
        _output.WriteLine($"{Flows} flows: {holding} held buffers after data; idle storage client {clientStorage} server {serverStorage}; {elapsed.TotalSeconds:F1} s");
        Assert.Equal(0, clientStorage);
        Assert.Equal(0, serverStorage);
        Assert.Equal(0, a.Engine.Counters.FlowFaults + b.Engine.Counters.FlowFaults);
        Assert.True(elapsed < TimeSpan.FromSeconds(60), $"{Flows} flows took {elapsed.TotalSeconds:F1} s (bound 60 s)");
    }
}
