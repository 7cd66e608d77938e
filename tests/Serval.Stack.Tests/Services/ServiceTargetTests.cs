using Serval.Stack.Services;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Services;

public sealed class ServiceTargetTests
{
    private static readonly LinkAddress _a = LinkAddress.Parse("10.0.0.1:54325");

    [Fact]
    public void Identity_is_address_and_interface_for_forward_socket_for_demux_type_otherwise()
    {
        Assert.True(ServiceTarget.Forward(_a, 1).IsSameTarget(ServiceTarget.Forward(_a, 1)));
        Assert.False(ServiceTarget.Forward(_a, 1).IsSameTarget(ServiceTarget.Forward(_a, 2)));
        Assert.False(ServiceTarget.Forward(_a, 1).IsSameTarget(ServiceTarget.Forward(_a.WithPort(0), 1)));
        Assert.True(ServiceTarget.Demux(4, 6).IsSameTarget(ServiceTarget.Demux(4, 17)));
        Assert.False(ServiceTarget.Demux(4, 6).IsSameTarget(ServiceTarget.Demux(5, 6)));
        Assert.True(ServiceTarget.Drop().IsSameTarget(ServiceTarget.Drop()));
        Assert.False(ServiceTarget.Drop().IsSameTarget(ServiceTarget.Delay()));
    }

    [Fact]
    public void Factories_make_valid_targets()
    {
        Assert.True(ServiceTarget.Forward(_a, 0).IsValid);
        Assert.True(ServiceTarget.Demux(-3, ServiceTarget.UdpProtocol).IsValid);
        Assert.True(ServiceTarget.Delay().IsValid);
        Assert.True(ServiceTarget.Drop().IsValid);
        Assert.False(default(ServiceTarget).IsValid);
    }

    [Fact]
    public void Text_forms()
    {
        Assert.Equal("FWD 10.0.0.1:54325 if 2", ServiceTarget.Forward(_a, 2).ToString());
        Assert.Equal("DMX sock 9 TCP", ServiceTarget.Demux(9, 6).ToString());
        Assert.Equal("DMX sock 9 UDP", ServiceTarget.Demux(9, 17).ToString());
        Assert.Equal("DLY", ServiceTarget.Delay().ToString());
        Assert.Equal("DRP", ServiceTarget.Drop().ToString());
    }
}
