using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Serval.Stack.Services;

/// <summary>
/// An immutable 256-bit set (one bit per slot of a trie node) with precomputed per-word prefix counts, so that
/// the rank of a slot (how many set bits come before it) is one shift, one mask and one popcount.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly struct Bitmap256
{
    private readonly ulong _w0;
    private readonly ulong _w1;
    private readonly ulong _w2;
    private readonly ulong _w3;

    // Byte i = number of set bits in words 0..i-1 (at most 192, so it fits).
    private readonly uint _before;

    /// <summary>A set from its four 64-bit words (slot i is bit i % 64 of word i / 64).</summary>
    public Bitmap256(ReadOnlySpan<ulong> words)
        : this(words[0], words[1], words[2], words[3])
    {
    }

    private Bitmap256(ulong w0, ulong w1, ulong w2, ulong w3)
    {
        _w0 = w0;
        _w1 = w1;
        _w2 = w2;
        _w3 = w3;
        var c1 = (uint)BitOperations.PopCount(w0);
        var c2 = c1 + (uint)BitOperations.PopCount(w1);
        var c3 = c2 + (uint)BitOperations.PopCount(w2);
        _before = (c1 << 8) | (c2 << 16) | (c3 << 24);
    }

    /// <summary>Number of set bits.</summary>
    public int Count => (int)(_before >> 24) + BitOperations.PopCount(_w3);

    /// <summary>Whether any bit is set.</summary>
    public bool IsEmpty => (_w0 | _w1 | _w2 | _w3) == 0;

    /// <summary>Whether slot <paramref name="slot"/> (0–255) is set.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Test(int slot) => ((Word(slot >> 6) >> slot) & 1) != 0; // ulong shifts use the low 6 bits of the count

    /// <summary>Number of set bits strictly before <paramref name="slot"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int RankBefore(int slot)
    {
        var word = slot >> 6;
        return (int)((_before >> (word << 3)) & 0xFF) + BitOperations.PopCount(Word(word) & ((1UL << slot) - 1));
    }

    /// <summary>Number of set bits before <paramref name="slot"/> within its group of 32 slots.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int RankInHalf(int slot) =>
        BitOperations.PopCount((uint)(Word(slot >> 6) >> (slot & 32)) & ((1u << slot) - 1)); // uint shifts use the low 5 bits

    /// <summary>Number of set bits at or before <paramref name="slot"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int RankThrough(int slot)
    {
        var word = slot >> 6;
        // (2 << 63) is 0, and 0 - 1 is every bit: the whole word, as wanted for bit 63.
        return (int)((_before >> (word << 3)) & 0xFF) + BitOperations.PopCount(Word(word) & ((2UL << slot) - 1));
    }

    /// <summary>This set with <paramref name="slot"/> added.</summary>
    public Bitmap256 With(int slot) => Change(slot, true);

    /// <summary>This set with <paramref name="slot"/> removed.</summary>
    public Bitmap256 Without(int slot) => Change(slot, false);

    /// <summary>
    /// A 64-bit summary: bit g is set when any of slots 4g to 4g + 3 is set in this set or in
    /// <paramref name="other"/>.
    /// </summary>
    public ulong FoldByFour(in Bitmap256 other)
    {
        ulong summary = 0;
        for (var word = 0; word < 4; word++)
        {
            // OR each group of four bits into its lowest bit, then gather every fourth bit.
            var x = Word(word) | other.Word(word);
            x |= x >> 1;
            x |= x >> 2;
            ulong groups;
            if (System.Runtime.Intrinsics.X86.Bmi2.X64.IsSupported)
            {
                groups = System.Runtime.Intrinsics.X86.Bmi2.X64.ParallelBitExtract(x, 0x1111_1111_1111_1111);
            }
            else
            {
                groups = 0;
                for (var g = 0; g < 16; g++)
                {
                    groups |= ((x >> (4 * g)) & 1) << g;
                }
            }

            summary |= groups << (16 * word);
        }

        return summary;
    }

    /// <summary>The lowest set slot at or after <paramref name="slot"/>, or -1.</summary>
    public int NextSetAtOrAfter(int slot)
    {
        for (var word = slot >> 6; word < 4; word++)
        {
            var bits = Word(word);
            if (word == slot >> 6)
            {
                bits &= ulong.MaxValue << slot;
            }

            if (bits != 0)
            {
                return (word << 6) + BitOperations.TrailingZeroCount(bits);
            }
        }

        return -1;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong Word(int index) => Unsafe.Add(ref Unsafe.AsRef(in _w0), index);

    private Bitmap256 Change(int slot, bool set)
    {
        var bit = 1UL << slot;
        ulong w0 = _w0, w1 = _w1, w2 = _w2, w3 = _w3;
        switch (slot >> 6)
        {
            case 0:
                w0 = set ? w0 | bit : w0 & ~bit;
                break;
            case 1:
                w1 = set ? w1 | bit : w1 & ~bit;
                break;
            case 2:
                w2 = set ? w2 | bit : w2 & ~bit;
                break;
            default:
                w3 = set ? w3 | bit : w3 & ~bit;
                break;
        }

        return new Bitmap256(w0, w1, w2, w3);
    }
}
