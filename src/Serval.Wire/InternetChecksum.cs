using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Serval.Wire;

/// <summary>
/// The Internet checksum (RFC 1071) used by the SAL header, TCP, UDP and IPv4, with pseudo-header support and
/// incremental update (RFC 1624).
/// </summary>
public static class InternetChecksum
{
    /// <summary>
    /// Adds <paramref name="data"/> to a running ones'-complement sum as big-endian 16-bit words. Pieces added one
    /// after another must have even lengths, except the last.
    /// </summary>
    public static ulong Add(ulong sum, ReadOnlySpan<byte> data)
    {
        var i = 0;
        if (data.Length >= 8)
        {
            // The ones'-complement sum is byte-order independent (RFC 1071 §2(B)): sum native 32-bit words into
            // 64-bit accumulators (vector lanes first, then pairs of words), fold, and swap the folded 16 bits back to
            // network order. No accumulator can overflow: each adds at most 2^32 per step, far fewer than 2^32 steps.
            ulong native = 0;
            ref var start = ref MemoryMarshal.GetReference(data);
            if (Vector256.IsHardwareAccelerated && data.Length >= 64)
            {
                var blocks = data.Length & ~31;
                Vector256<ulong> a0 = Vector256<ulong>.Zero, a1 = Vector256<ulong>.Zero;
                for (; i < blocks; i += 32)
                {
                    var (lower, upper) = Vector256.Widen(Vector256.LoadUnsafe(ref start, (nuint)i).AsUInt32());
                    a0 += lower;
                    a1 += upper;
                }

                native = Vector256.Sum(a0 + a1);
            }

            var end = data.Length & ~7;
            ulong a = 0, b = 0;
            for (; i < end; i += 8)
            {
                a += Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref start, i));
                b += Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref start, i + 4));
            }

            var folded = Fold(Fold(native) + a + b);
            sum += BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(folded) : folded;
        }

        for (; i + 1 < data.Length; i += 2)
        {
            sum += (uint)((data[i] << 8) | data[i + 1]);
        }

        if (i < data.Length)
        {
            sum += (uint)(data[i] << 8);
        }

        return sum;
    }

    /// <summary>
    /// Copies <paramref name="source"/> to the start of <paramref name="destination"/> and adds it to a running sum
    /// as <see cref="Add(ulong, ReadOnlySpan{byte})"/> does, in one pass over the bytes (the copy and the checksum read
    /// each byte once). The same rule on pieces applies; the two spans must not overlap.
    /// </summary>
    public static ulong CopyAndAdd(ulong sum, ReadOnlySpan<byte> source, Span<byte> destination)
    {
        if (destination.Length < source.Length)
        {
            throw new ArgumentException("The destination is shorter than the source.", nameof(destination));
        }

        var i = 0;
        if (source.Length >= 8)
        {
            // As in Add: native-order 32-bit words into 64-bit accumulators, folded and swapped to network order.
            ulong native = 0;
            ref var from = ref MemoryMarshal.GetReference(source);
            ref var to = ref MemoryMarshal.GetReference(destination);
            if (Vector256.IsHardwareAccelerated && source.Length >= 64)
            {
                var blocks = source.Length & ~63;
                Vector256<ulong> a0 = Vector256<ulong>.Zero, a1 = Vector256<ulong>.Zero;
                for (; i < blocks; i += 64)
                {
                    var v0 = Vector256.LoadUnsafe(ref from, (nuint)i);
                    var v1 = Vector256.LoadUnsafe(ref from, (nuint)i + 32);
                    v0.StoreUnsafe(ref to, (nuint)i);
                    v1.StoreUnsafe(ref to, (nuint)i + 32);
                    var (l0, u0) = Vector256.Widen(v0.AsUInt32());
                    var (l1, u1) = Vector256.Widen(v1.AsUInt32());
                    a0 += l0 + l1;
                    a1 += u0 + u1;
                }

                native = Vector256.Sum(a0 + a1);
            }

            var end = source.Length & ~7;
            ulong a = 0, b = 0;
            for (; i < end; i += 8)
            {
                var w = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref from, i));
                Unsafe.WriteUnaligned(ref Unsafe.Add(ref to, i), w);
                a += (uint)w;
                b += (uint)(w >> 32);
            }

            var folded = Fold(Fold(native) + a + b);
            sum += BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(folded) : folded;
        }

        for (; i + 1 < source.Length; i += 2)
        {
            destination[i] = source[i];
            destination[i + 1] = source[i + 1];
            sum += (uint)((source[i] << 8) | source[i + 1]);
        }

        if (i < source.Length)
        {
            destination[i] = source[i];
            sum += (uint)(source[i] << 8);
        }

        return sum;
    }

    /// <summary>Adds a 16-bit value to a running sum.</summary>
    public static ulong Add(ulong sum, ushort value) => sum + value;

    /// <summary>Folds a running sum to 16 bits (without complementing).</summary>
    public static ushort Fold(ulong sum)
    {
        while ((sum >> 16) != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        return (ushort)sum;
    }

    /// <summary>The checksum field value for a running sum: the ones' complement of the folded sum.</summary>
    public static ushort Finish(ulong sum) => (ushort)~Fold(sum);

    /// <summary>The checksum of <paramref name="data"/> (with its checksum field zeroed by the caller).</summary>
    public static ushort Compute(ReadOnlySpan<byte> data) => Finish(Add(0, data));

    /// <summary>Whether <paramref name="data"/>, checksum field included, sums to all ones.</summary>
    public static bool Verify(ReadOnlySpan<byte> data) => Fold(Add(0, data)) == 0xFFFF;

    /// <summary>The running sum of an IPv4 or IPv6 pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1).</summary>
    public static ulong PseudoHeaderSum(LinkAddress source, LinkAddress destination, byte protocol, int length)
    {
        Span<byte> a = stackalloc byte[16];
        var n = source.WriteAddress(a);
        var sum = Add(0, a[..n]);
        n = destination.WriteAddress(a);
        sum = Add(sum, a[..n]);
        return sum + protocol + (uint)(length >> 16) + (uint)(length & 0xFFFF);
    }

    /// <summary>
    /// RFC 1624 incremental update: the new checksum field after the covered bytes <paramref name="oldData"/>
    /// change to <paramref name="newData"/> (equal even lengths, aligned on 16-bit words of the covered data).
    /// </summary>
    public static ushort Update(ushort checksum, ReadOnlySpan<byte> oldData, ReadOnlySpan<byte> newData)
    {
        if (oldData.Length != newData.Length || (oldData.Length & 1) != 0)
        {
            throw new ArgumentException("Old and new data must have the same even length.", nameof(newData));
        }

        // HC' = ~(~HC + ~m + m')
        ulong sum = (ushort)~checksum;
        for (var i = 0; i < oldData.Length; i += 2)
        {
            sum += (ushort)~((oldData[i] << 8) | oldData[i + 1]);
            sum += (uint)((newData[i] << 8) | newData[i + 1]);
        }

        return Finish(sum);
    }
}
