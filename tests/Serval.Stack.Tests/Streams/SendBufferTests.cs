using Serval.Stack.Streams;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>The send buffer alone: the send sequence space, written and unsent data, the FIN's progress.</summary>
public sealed class SendBufferTests
{
    [Fact]
    public void Written_data_is_unsent_until_transmitted_and_buffered_until_acknowledged()
    {
        var sb = new SendBuffer(1000);
        sb.SetSequence(1, 1);
        sb.Write([1, 2, 3, 4, 5]);
        Assert.Equal(5, sb.WriteEnd);
        Assert.True(sb.HasUnsentData);
        Assert.Equal(5, sb.Unsent);
        Assert.Equal(5, sb.Buffered);

        var copy = new byte[3];
        sb.CopyOut(2, copy);
        Assert.Equal([2, 3, 4], copy);
        sb.OnTransmitted(3, fin: false);
        Assert.Equal(4, sb.Nxt);
        Assert.Equal(2, sb.Unsent);

        sb.Acknowledge(3);
        Assert.Equal(2, sb.AckedDataOffset);
        Assert.Equal(3, sb.Buffered);
        Assert.False(sb.AllAcknowledged);
    }

    [Fact]
    public void The_fin_follows_the_data_and_is_acknowledged_last()
    {
        var sb = new SendBuffer(1000);
        sb.SetSequence(1, 1);
        sb.Write([1, 2]);
        Assert.False(sb.FinPending);
        sb.CompleteWrites();
        Assert.True(sb.WritesCompleted);
        Assert.True(sb.FinPending);
        sb.OnTransmitted(3, fin: true); // Two bytes and the FIN.
        Assert.True(sb.FinSent);
        Assert.False(sb.FinPending);
        Assert.False(sb.HasUnsentData);
        sb.Acknowledge(4);
        Assert.True(sb.AllAcknowledged);
        Assert.Equal(2, sb.AckedDataOffset); // The FIN is no data.
        sb.OnFinAcknowledged();
        Assert.True(sb.FinAcked);
    }

    [Fact]
    public void Before_the_syn_is_acknowledged_nothing_counts_as_acknowledged()
    {
        var sb = new SendBuffer(1000);
        sb.SetSequence(0, 1);
        sb.Write([1, 2, 3]);
        Assert.Equal(0, sb.AckedDataOffset);
        Assert.Equal(3, sb.Buffered);
        Assert.Equal(1000, sb.Size);
    }
}
