using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Serval.Wire;

namespace Serval.Stack.Services;

/// <summary>
/// A serviceID as four big-endian 64-bit words that can be indexed without a switch: the form the trie walk
/// uses to pull out the byte a node branches on.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly struct KeyWords
{
    private readonly ulong _w0;
    private readonly ulong _w1;
    private readonly ulong _w2;
    private readonly ulong _w3;

    // Always zero: lets Bits32At read one word past the end without a branch.
    private readonly ulong _pad;

    // _depthMasks[d / 8] keeps bits [0, d) of a key: what a node at depth d compares.
    private static readonly KeyWords[] _depthMasks = BuildDepthMasks();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public KeyWords(ServiceId id)
    {
        _w0 = id.GetWord(0);
        _w1 = id.GetWord(1);
        _w2 = id.GetWord(2);
        _w3 = id.GetWord(3);
        _pad = 0;
    }

    private KeyWords(ulong w0, ulong w1, ulong w2, ulong w3)
    {
        _w0 = w0;
        _w1 = w1;
        _w2 = w2;
        _w3 = w3;
        _pad = 0;
    }

    /// <summary>The byte at bit offset <paramref name="depth"/> (a multiple of 8 below 256).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int ByteAt(int depth) => (int)(Unsafe.Add(ref Unsafe.AsRef(in _w0), depth >> 6) >> (56 - (depth & 63))) & 0xFF;

    /// <summary>
    /// The 32 bits starting at bit <paramref name="offset"/> (a multiple of 8, at most 256), most significant
    /// first; bits past the end of the key read as zero (and at offset 256 the value is unspecified).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint Bits32At(int offset)
    {
        ref var w = ref Unsafe.Add(ref Unsafe.AsRef(in _w0), (offset >> 6) & 3);
        var shift = offset & 63;
        // (x >> 1) >> (63 - shift) is x >> (64 - shift) without the shift-by-64 case (which would be a no-op).
        var bits = (w << shift) | ((Unsafe.Add(ref w, 1) >> 1) >> (63 - shift));
        return (uint)(bits >> 32);
    }

    /// <summary>Whether bits [0, <paramref name="depth"/>) equal those of <paramref name="canonical"/>, whose later bits are zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool MatchesThrough(in KeyWords canonical, int depth)
    {
        ref readonly var m = ref _depthMasks[depth >> 3];
        return (((_w0 & m._w0) ^ canonical._w0) | ((_w1 & m._w1) ^ canonical._w1) |
                ((_w2 & m._w2) ^ canonical._w2) | ((_w3 & m._w3) ^ canonical._w3)) == 0;
    }

    /// <summary>Number of leading bits shared with <paramref name="other"/> (0–256).</summary>
    public int CommonPrefixLength(in KeyWords other)
    {
        var x = _w0 ^ other._w0;
        if (x != 0)
        {
            return BitOperations.LeadingZeroCount(x);
        }

        x = _w1 ^ other._w1;
        if (x != 0)
        {
            return 64 + BitOperations.LeadingZeroCount(x);
        }

        x = _w2 ^ other._w2;
        if (x != 0)
        {
            return 128 + BitOperations.LeadingZeroCount(x);
        }

        x = _w3 ^ other._w3;
        return x != 0 ? 192 + BitOperations.LeadingZeroCount(x) : 256;
    }

    /// <summary>These words with every bit at or after <paramref name="depth"/> (a multiple of 8) cleared.</summary>
    public KeyWords Truncate(int depth)
    {
        ref readonly var m = ref _depthMasks[depth >> 3];
        return new KeyWords(_w0 & m._w0, _w1 & m._w1, _w2 & m._w2, _w3 & m._w3);
    }

    private static KeyWords[] BuildDepthMasks()
    {
        var masks = new KeyWords[(ServiceId.Bits / 8) + 1];
        for (var i = 0; i < masks.Length; i++)
        {
            var bits = i * 8;
            masks[i] = new KeyWords(Keep(bits), Keep(bits - 64), Keep(bits - 128), Keep(bits - 192));
        }

        return masks;

        static ulong Keep(int bits) => bits <= 0 ? 0 : bits >= 64 ? ulong.MaxValue : ~(ulong.MaxValue >> bits);
    }
}
