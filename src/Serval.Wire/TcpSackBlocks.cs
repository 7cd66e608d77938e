namespace Serval.Wire;

/// <summary>One SACK block: the left edge and the right edge (one past the last byte) of received data (RFC 2018).</summary>
/// <param name="Left">First sequence number of the block.</param>
/// <param name="Right">Sequence number following the last byte of the block.</param>
public readonly record struct TcpSackBlock(uint Left, uint Right);

/// <summary>Up to four SACK blocks held inline, so a parsed segment allocates nothing.</summary>
public readonly record struct TcpSackBlocks
{
    /// <summary>The most blocks a TCP header can carry.</summary>
    public const int MaxBlocks = 4;

    private readonly TcpSackBlock _b0, _b1, _b2, _b3;

    /// <summary>Number of blocks (0–4).</summary>
    public int Count { get; }

    /// <summary>No blocks.</summary>
    public static TcpSackBlocks Empty => default;

    private TcpSackBlocks(int count, TcpSackBlock b0, TcpSackBlock b1, TcpSackBlock b2, TcpSackBlock b3)
    {
        Count = count;
        _b0 = b0;
        _b1 = b1;
        _b2 = b2;
        _b3 = b3;
    }

    /// <summary>Creates a set from up to four blocks (extra blocks are ignored).</summary>
    public static TcpSackBlocks From(ReadOnlySpan<TcpSackBlock> blocks)
    {
        var n = Math.Min(blocks.Length, MaxBlocks);
        return new TcpSackBlocks(
            n,
            n > 0 ? blocks[0] : default,
            n > 1 ? blocks[1] : default,
            n > 2 ? blocks[2] : default,
            n > 3 ? blocks[3] : default);
    }

    /// <summary>Block <paramref name="index"/>.</summary>
    public TcpSackBlock this[int index]
    {
        get
        {
            if ((uint)index >= (uint)Count)
            {
                throw new ArgumentOutOfRangeException(nameof(index));
            }

            return index switch
            {
                0 => _b0,
                1 => _b1,
                2 => _b2,
                _ => _b3,
            };
        }
    }

    /// <summary>A copy with only the first <paramref name="count"/> blocks.</summary>
    public TcpSackBlocks Take(int count) => count >= Count
        ? this
        : new TcpSackBlocks(
            Math.Max(count, 0),
            count > 0 ? _b0 : default,
            count > 1 ? _b1 : default,
            count > 2 ? _b2 : default,
            default);

    /// <summary>A copy with <paramref name="block"/> appended (ignored when full).</summary>
    public TcpSackBlocks Add(TcpSackBlock block) => Count switch
    {
        0 => new TcpSackBlocks(1, block, default, default, default),
        1 => new TcpSackBlocks(2, _b0, block, default, default),
        2 => new TcpSackBlocks(3, _b0, _b1, block, default),
        3 => new TcpSackBlocks(4, _b0, _b1, _b2, block),
        _ => this,
    };
}
