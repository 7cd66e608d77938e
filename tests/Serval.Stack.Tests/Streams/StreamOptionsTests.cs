using Serval.Stack.Streams;
using Xunit;

namespace Serval.Stack.Tests.Streams;

public sealed class StreamOptionsTests
{
    [Fact]
    public void Defaults_are_valid_and_as_documented()
    {
        var o = StreamOptions.Default;
        o.Validate();
        Assert.Equal(4 * 1024 * 1024, o.SendBufferSize);
        Assert.Equal(4 * 1024 * 1024, o.ReceiveBufferSize);
        Assert.Equal(1400, o.Mss);
        Assert.True(o.UseSack);
        Assert.True(o.UseTimestamps);
        Assert.True(o.UseWindowScale);
        Assert.Equal(CongestionControlAlgorithm.Cubic, o.CongestionControl);
        Assert.True(o.NoDelay);
        Assert.True(o.Pacing);
        Assert.Equal(TimeSpan.FromMilliseconds(40), o.DelayedAck);
        Assert.Null(o.KeepAlive);
        Assert.Equal(TimeSpan.FromMilliseconds(200), o.MinRto);
        Assert.Equal(TimeSpan.FromSeconds(60), o.MaxRto);
        Assert.Equal(TimeSpan.FromSeconds(1), o.InitialRto);
        Assert.Equal(15, o.MaxRetransmissions);
    }

    public static TheoryData<StreamOptions, string> Invalid() => new()
    {
        { StreamOptions.Default with { SendBufferSize = 0 }, nameof(StreamOptions.SendBufferSize) },
        { StreamOptions.Default with { ReceiveBufferSize = -1 }, nameof(StreamOptions.ReceiveBufferSize) },
        { StreamOptions.Default with { Mss = 20 }, nameof(StreamOptions.Mss) },
        { StreamOptions.Default with { Mss = 70_000 }, nameof(StreamOptions.Mss) },
        { StreamOptions.Default with { CongestionControl = (CongestionControlAlgorithm)7 }, nameof(StreamOptions.CongestionControl) },
        { StreamOptions.Default with { DelayedAck = TimeSpan.FromSeconds(1) }, nameof(StreamOptions.DelayedAck) },
        { StreamOptions.Default with { KeepAlive = TimeSpan.Zero }, nameof(StreamOptions.KeepAlive) },
        { StreamOptions.Default with { KeepAliveInterval = TimeSpan.Zero }, nameof(StreamOptions.KeepAliveInterval) },
        { StreamOptions.Default with { KeepAliveProbes = 0 }, nameof(StreamOptions.KeepAliveProbes) },
        { StreamOptions.Default with { MinRto = TimeSpan.Zero }, nameof(StreamOptions.MinRto) },
        { StreamOptions.Default with { MaxRto = TimeSpan.FromMilliseconds(100) }, nameof(StreamOptions.MaxRto) },
        { StreamOptions.Default with { InitialRto = TimeSpan.FromMilliseconds(100) }, nameof(StreamOptions.InitialRto) },
        { StreamOptions.Default with { MaxRetransmissions = 0 }, nameof(StreamOptions.MaxRetransmissions) },
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public void Invalid_options_are_rejected_with_the_setting_named(StreamOptions options, string name)
    {
        var e = Assert.Throws<ArgumentException>(options.Validate);
        Assert.Equal(name, e.ParamName);
        Assert.Contains(name, e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new StreamConnection(options, new SeededRandomSource(1), TimeSpan.Zero));
    }

    [Fact]
    public void Small_receive_buffer_needs_no_window_scaling()
    {
        var syn = new StreamConnection(StreamOptions.Default with { ReceiveBufferSize = 60_000 }, new SeededRandomSource(1), TimeSpan.Zero).CreateSyn(TimeSpan.Zero);
        Assert.Equal((byte)0, syn.WindowScale);
        Assert.Equal((ushort)60_000, syn.Window);
        var big = new StreamConnection(StreamOptions.Default with { ReceiveBufferSize = 1 << 30 }, new SeededRandomSource(1), TimeSpan.Zero).CreateSyn(TimeSpan.Zero);
        Assert.Equal((byte)14, big.WindowScale);
    }
}
