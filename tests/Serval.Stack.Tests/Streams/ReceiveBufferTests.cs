using Serval.Stack.Streams;
using Serval.Wire;
using Xunit;

namespace Serval.Stack.Tests.Streams;

/// <summary>The receive buffer alone: reassembly, the FIN, SACK and D-SACK blocks, the advertised window.</summary>
public sealed class ReceiveBufferTests
{
    private static ReceiveBuffer Opened(int size = 10_000, bool sack = true)
    {
        var rb = new ReceiveBuffer(size) { SackEnabled = sack };
        rb.Open();
        return rb;
    }

    private static byte[] Bytes(int start, int length) => [.. Enumerable.Range(start, length).Select(i => (byte)i)];

    [Fact]
    public void In_order_data_advances_rcv_nxt_and_is_read_back()
    {
        var rb = Opened();
        Assert.Equal(ReceiveOutcome.InOrder, rb.Store(1, Bytes(0, 100), out var stored));
        Assert.Equal(100, stored);
        Assert.Equal(101, rb.Next);
        Assert.Equal(100, rb.BytesAvailable);
        var buffer = new byte[60];
        Assert.Equal(60, rb.Read(buffer));
        Assert.Equal(Bytes(0, 60), buffer);
        Assert.Equal(40, rb.BytesAvailable);
        Assert.Equal(1 + 60 + 10_000, rb.Limit);
    }

    [Fact]
    public void Out_of_order_data_waits_for_the_gap_and_is_reassembled()
    {
        var rb = Opened();
        Assert.Equal(ReceiveOutcome.OutOfOrder, rb.Store(201, Bytes(200, 100), out _));
        Assert.Equal(ReceiveOutcome.OutOfOrder, rb.Store(401, Bytes(400, 100), out _));
        Assert.Equal(2, rb.OutOfOrderCount);
        Assert.Equal(0, rb.BytesAvailable);
        Assert.Equal(ReceiveOutcome.InOrderWithGaps, rb.Store(1, Bytes(0, 200), out _));
        Assert.Equal(301, rb.Next);
        Assert.Equal(ReceiveOutcome.InOrderWithGaps, rb.Store(301, Bytes(300, 100), out _));
        Assert.Equal(501, rb.Next);
        Assert.Equal(0, rb.OutOfOrderCount);
        var buffer = new byte[500];
        Assert.Equal(500, rb.Read(buffer));
        Assert.Equal(Bytes(0, 500), buffer);
    }

    [Fact]
    public void Duplicates_are_reported_in_a_dsack_block_first()
    {
        var rb = Opened();
        rb.Store(1, Bytes(0, 100), out _);
        Assert.Equal(ReceiveOutcome.Duplicate, rb.Store(1, Bytes(0, 100), out _));
        rb.Store(301, Bytes(300, 100), out _);
        var blocks = rb.BuildSackBlocks(irs: 1000, maxBlocks: 3);
        Assert.Equal(2, blocks.Count);
        Assert.Equal(new TcpSackBlock(1001, 1101), blocks[0]);
        Assert.Equal(new TcpSackBlock(1301, 1401), blocks[1]);
        Assert.Equal(1, rb.BuildSackBlocks(1000, 3).Count); // The D-SACK is reported once.
    }

    [Fact]
    public void Sack_blocks_list_the_most_recent_range_first()
    {
        var rb = Opened();
        rb.Store(201, Bytes(200, 10), out _);
        rb.Store(401, Bytes(400, 10), out _);
        rb.Store(601, Bytes(600, 10), out _);
        Assert.Equal(3, rb.SackBlocksWanted);
        var blocks = rb.BuildSackBlocks(irs: 0, maxBlocks: 2);
        Assert.Equal(2, blocks.Count);
        Assert.Equal(new TcpSackBlock(601, 611), blocks[0]);
        Assert.Equal(new TcpSackBlock(401, 411), blocks[1]);
    }

    [Fact]
    public void Without_sack_nothing_is_reported()
    {
        var rb = Opened(sack: false);
        rb.Store(201, Bytes(200, 10), out _);
        rb.ReportDuplicate(1, 5);
        Assert.Equal(0, rb.BuildSackBlocks(0, 4).Count);
    }

    [Fact]
    public void The_fin_counts_only_exactly_in_order_and_bounds_later_data()
    {
        var rb = Opened();
        rb.Store(1, Bytes(0, 100), out _);
        Assert.False(rb.TryAcceptFin(201));
        Assert.True(rb.TryAcceptFin(101));
        Assert.True(rb.FinReceived);
        Assert.Equal(102, rb.Next);
        Assert.Equal(101, rb.InOrderDataEnd);
        Assert.False(rb.TryAcceptFin(102));
        Assert.Equal(ReceiveOutcome.Duplicate, rb.Store(101, Bytes(100, 10), out _)); // Nothing after the FIN.
    }

    [Fact]
    public void Data_beyond_the_buffer_is_cut_at_its_limit()
    {
        var rb = Opened(size: 100);
        Assert.Equal(ReceiveOutcome.InOrder, rb.Store(1, Bytes(0, 150), out var stored));
        Assert.Equal(100, stored);
        Assert.Equal(0, rb.Window);
        Assert.Equal(ReceiveOutcome.Duplicate, rb.Store(101, Bytes(100, 10), out _));
    }

    [Fact]
    public void The_advertised_right_edge_moves_only_by_enough_and_a_window_update_follows_reads()
    {
        var rb = Opened(size: 4000);
        rb.OnHandshakeWindow(4000);
        rb.Store(1, new byte[3000], out _);
        Assert.Equal(1000, rb.AdvertiseWindow(shift: 0, mss: 1000));
        Assert.False(rb.WindowUpdateDue(1000));
        rb.Read(new byte[500]);
        Assert.Equal(1000, rb.AdvertiseWindow(0, 1000)); // 500 more is less than min(2000, 1000): the edge stays.
        Assert.False(rb.WindowUpdateDue(1000));
        rb.Read(new byte[1000]);
        Assert.True(rb.WindowUpdateDue(1000));
        Assert.Equal(2500, rb.AdvertiseWindow(0, 1000));
    }

    [Fact]
    public void Clearing_after_an_error_discards_unread_data()
    {
        var rb = Opened();
        rb.Store(1, Bytes(0, 100), out _);
        rb.Store(301, Bytes(300, 100), out _);
        rb.Clear(discardUnread: true);
        Assert.Equal(0, rb.BytesAvailable);
        Assert.Equal(0, rb.OutOfOrderCount);
    }
}
