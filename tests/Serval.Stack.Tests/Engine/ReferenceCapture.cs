using Serval.Wire;
using Serval.Wire.Pcap;
using Xunit;

namespace Serval.Stack.Tests.Engine;

/// <summary>The SAL packets of a reference capture (TestData, described in docs/protocol.md), in order, with their direction.</summary>
internal static class ReferenceCapture
{
    /// <summary>The client of the reference captures (10.202.1.1; the server is 10.202.1.2).</summary>
    public static readonly LinkAddress Client = LinkAddress.Parse("10.202.1.1");

    /// <summary>One captured SAL packet: who sent it, the packet, its transport payload.</summary>
    public sealed record Packet(bool FromClient, SalPacketRepr P, byte[] Payload);

    /// <summary>tcp_basic.pcap: the reference client connects, the reference server streams 30000 bytes, both close.</summary>
    public static List<Packet> TcpBasic() => Load("tcp_basic.pcap");

    public static List<Packet> Load(string name)
    {
        var list = new List<Packet>();
        foreach (var r in PcapReader.ReadAll(File.OpenRead(Path.Combine(AppContext.BaseDirectory, "TestData", name))))
        {
            if (SalFrame.TryLocate(r.LinkType, r.Data, out var f))
            {
                var sal = r.Data.AsSpan(f.SalOffset, f.SalLength);
                Assert.True(SalPacketRepr.TryParse(sal, out var p, out var off, out var len, out _));
                list.Add(new Packet(f.Source.SameAddress(Client), p, sal.Slice(off, len).ToArray()));
            }
        }

        return list;
    }
}
