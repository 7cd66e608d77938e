using Serval.Simulation;
using Serval.Stack;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>Stream transfers through whole engines (SAL + TCP) over impaired simulated links.</summary>
public sealed class StreamOverSalTests
{
    private static readonly ServiceId Bulk = ServiceId.FromName("bulk");

    public static TheoryData<string, double, int, int, double, double> Paths => new()
    {
        { "clean", 0.0, 0, 0, 0.0, 0.0 },
        { "loss1", 0.01, 20, 0, 0.0, 0.0 },
        { "loss5", 0.05, 20, 5, 0.0, 0.0 },
        { "loss10", 0.10, 10, 0, 0.0, 0.0 },
        { "reorder+dup", 0.0, 30, 10, 0.05, 0.02 },
        { "long-jittery", 0.01, 200, 20, 0.0, 0.0 },
    };

    [Theory]
    [MemberData(nameof(Paths))]
    public void Ten_mebibytes_each_way_arrive_intact(string name, double loss, int delayMs, int jitterMs, double reorder, double duplicate)
    {
        var conditions = LinkConditions.Perfect with
        {
            Loss = loss,
            Delay = TimeSpan.FromMilliseconds(delayMs),
            Jitter = TimeSpan.FromMilliseconds(jitterMs),
            Reorder = reorder,
            Duplicate = duplicate,
            BandwidthBitsPerSecond = 100_000_000,
            QueueBytes = 512 * 1024,
        };
        var net = new SimulatedNetwork((ulong)name.GetHashCode(StringComparison.Ordinal) & 0xFFFF);
        var link = net.AddLink("wan", conditions);
        var a = net.AddHost("a");
        var b = net.AddHost("b");
        var ai = a.Attach(link, LinkAddress.Parse("10.9.0.1"));
        b.Attach(link, LinkAddress.Parse("10.9.0.2"));
        a.AddForward(ServicePrefix.Default, LinkAddress.Parse("10.9.0.2"), ai);
        var l = b.Listen(Bulk);
        var c = a.Connect(Bulk);
        Assert.True(net.RunUntil(() => a.IsConnected(c), TimeSpan.FromSeconds(120)), $"{name}: no connection");
        var s = net.AcceptOne(b, l);

        var up = SimApp.RandomBytes(10 * 1024 * 1024, 1);
        var got = SimApp.Transfer(net, a, c, b, s, up, TimeSpan.FromMinutes(30));
        Assert.Equal(SimApp.Sha(up), SimApp.Sha(got));

        var down = SimApp.RandomBytes(10 * 1024 * 1024, 2);
        var back = SimApp.Transfer(net, b, s, a, c, down, TimeSpan.FromMinutes(30));
        Assert.Equal(SimApp.Sha(down), SimApp.Sha(back));

        a.Do(e => e.Close(c, a.Now));
        b.Do(e => e.Close(s, b.Now));
        Assert.True(net.RunUntil(() => a.Engine.FlowCount == 0 && b.Engine.FlowCount == 0, TimeSpan.FromMinutes(10)), $"{name}: flows did not close");
    }
}
