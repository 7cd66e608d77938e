using Serval.Stack;
using Serval.Wire;
using Xunit;

namespace Serval.Tests;

/// <summary><see cref="ServiceEndPoint"/> text forms and the exception's error mapping.</summary>
public sealed class EndPointTests
{
    [Fact]
    public void Parse_and_format_round_trip()
    {
        var ep = new ServiceEndPoint(ServiceId.FromNumber(7), 32, LinkAddress.Parse("127.0.0.5:54325"));
        var text = ep.ToString();
        Assert.EndsWith("/32@127.0.0.5:54325", text, StringComparison.Ordinal);
        Assert.Equal(ep, ServiceEndPoint.Parse(text));
    }

    [Fact]
    public void A_name_is_hashed_into_a_service_id()
    {
        var ep = ServiceEndPoint.Parse("demo.echo");
        Assert.Equal(ServiceId.FromName("demo.echo"), ep.Service);
        Assert.Equal(ServiceId.Bits, ep.PrefixLength);
        Assert.True(ep.AdvisoryAddress.IsNone);
    }

    [Fact]
    public void An_end_point_made_from_a_name_keeps_it_and_one_made_from_an_id_has_none()
    {
        Assert.Equal("shop.api", ServiceEndPoint.Parse("shop.api").Name);
        Assert.Equal("shop.api", ServiceEndPoint.Parse("shop.api@127.0.0.5:54325").Name);
        Assert.Equal("shop.api", ServiceEndPoint.FromName("shop.api").Name);
        Assert.Equal(ServiceEndPoint.FromName("shop.api"), ServiceEndPoint.Parse("shop.api"));
        Assert.Null(ServiceEndPoint.Parse("shop.api/16").Name); // a prefix of a hash names no one service
        Assert.Null(ServiceEndPoint.Parse(ServiceId.FromName("shop.api").ToString()).Name);
        Assert.Null(new ServiceEndPoint(ServiceId.FromName("shop.api")).Name);

        // The name is informative: equal end points whether or not they carry it.
        Assert.Equal(new ServiceEndPoint(ServiceId.FromName("shop.api")), ServiceEndPoint.Parse("shop.api"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("x/300")]
    [InlineData("x@not-an-address")]
    [InlineData("/8")]
    public void Bad_text_is_rejected(string text)
    {
        Assert.False(ServiceEndPoint.TryParse(text, out _));
        Assert.Throws<FormatException>(() => ServiceEndPoint.Parse(text));
    }

    [Fact]
    public void Every_error_maps_to_a_socket_error()
    {
        foreach (var error in Enum.GetValues<ServalError>())
        {
            var e = new ServalException(error);
            Assert.Equal(ServalException.ToSocketError(error), e.SocketErrorCode);
            Assert.IsAssignableFrom<IOException>(e);
            Assert.False(string.IsNullOrEmpty(e.Message));
            if (error != ServalError.None)
            {
                Assert.NotEqual(System.Net.Sockets.SocketError.Success, e.SocketErrorCode);
                Assert.NotEqual(System.Net.Sockets.SocketError.SocketError, e.SocketErrorCode);
            }
        }
    }

    [Fact]
    public async Task Options_are_validated_at_the_entry_point()
    {
        await Assert.ThrowsAsync<ArgumentException>(async () => await ServalHost.StartAsync(new ServalHostOptions { Name = "" }, TestContext.Current.CancellationToken));
        await Assert.ThrowsAsync<ArgumentException>(async () => await ServalHost.StartAsync(
            new ServalHostOptions { DefaultRouter = LinkAddress.Parse("127.0.0.1:54325") }, TestContext.Current.CancellationToken));
        await using var host = await ServalHost.StartAsync(ServalHostOptions.Default, TestContext.Current.CancellationToken);
        await Assert.ThrowsAsync<ArgumentException>(async () => await ServalConnection.ConnectAsync(
            new ServalConnectionOptions { Host = host, Service = ServiceId.Zero }, TestContext.Current.CancellationToken));
        await Assert.ThrowsAsync<ArgumentException>(async () => await ServalListener.ListenAsync(
            new ServalListenerOptions { Host = host, ListenEndPoint = new ServiceEndPoint(ServiceId.FromNumber(1)), ListenBacklog = 0 }, TestContext.Current.CancellationToken));
    }
}
