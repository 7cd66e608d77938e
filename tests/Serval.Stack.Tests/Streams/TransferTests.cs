using Serval.Stack.Streams;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>
/// 10 MiB bulk transfers in each direction over hostile simulated paths: every byte arrives exactly once, in
/// order (SHA-256 of what was written equals SHA-256 of what was read), and both sides close gracefully.
/// </summary>
public sealed class TransferTests
{
    internal const long TenMiB = 10L * 1024 * 1024;

    private readonly ITestOutputHelper _output;

    public TransferTests(ITestOutputHelper output) => _output = output;

    public static TheoryData<string, bool> Paths()
    {
        var data = new TheoryData<string, bool>();
        foreach (var name in PathProfiles.Names)
        {
            data.Add(name, false);
            data.Add(name, true);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void Ten_MiB_arrive_intact(string path, bool serverSends)
    {
        var (forward, reverse) = PathProfiles.Get(path);
        var r = Transfers.OneWay(forward, reverse, TenMiB, seed: (ulong)path.Length * 1000 + (serverSends ? 17UL : 3UL), serverSends: serverSends);
        AssertDelivered(r, TenMiB);
    }

    private void AssertDelivered(TransferResult r, long bytes)
    {
        _output.WriteLine(r.ToString());
        Assert.True(r.Completed, r.ToString());
        Assert.Equal(bytes, r.BytesSent);
        Assert.Equal(bytes, r.BytesReceived);
        Assert.True(r.HashesMatch, "SHA-256 of received data differs from sent data");
    }
}
