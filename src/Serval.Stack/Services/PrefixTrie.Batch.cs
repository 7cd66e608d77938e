using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using Serval.Wire;

namespace Serval.Stack.Services;

/// <summary>
/// Batched longest-prefix match: the same walk as <see cref="Lookup"/>, for up to <see cref="Lanes"/> keys at a
/// time in lock step. Each step advances every unfinished key by one memory access and prefetches the next one,
/// so the cache misses of different keys overlap instead of being paid one after another (group prefetching).
/// </summary>
internal static partial class PrefixTrie
{
    /// <summary>Keys walked together.</summary>
    public const int Lanes = 16;

    /// <summary>Longest-prefix match of every key of <paramref name="ids"/> into the same index of <paramref name="results"/>.</summary>
    public static void LookupBatch(TrieNode root, ReadOnlySpan<ServiceId> ids, Span<ServiceEntry?> results)
    {
        for (var start = 0; start < ids.Length; start += Lanes)
        {
            var count = Math.Min(Lanes, ids.Length - start);
            LookupGroup(root, ids.Slice(start, count), results.Slice(start, count));
        }
    }

    private static void LookupGroup(TrieNode root, ReadOnlySpan<ServiceId> ids, Span<ServiceEntry?> results)
    {
        var count = ids.Length;
        LaneNodes nodes = default;
        LaneNodes bests = default;
        LaneInts bestSlots = default;
        LaneInts positions = default;
        LaneStates states = default;
        LaneBytes verify = default;
        for (var lane = 0; lane < count; lane++)
        {
            nodes[lane] = root;
        }

        var active = count;
        while (active > 0)
        {
            for (var lane = 0; lane < count; lane++)
            {
                switch (states[lane])
                {
                    case LaneState.AtNode:
                        {
                            var node = nodes[lane]!;
                            var key = new KeyWords(ids[lane]);
                            if (verify[lane] != 0 && !key.MatchesThrough(node.Key, node.Depth))
                            {
                                Finish(ref states[lane], ref results[lane], bests[lane], bestSlots[lane], ref active);
                                break;
                            }

                            var slot = key.ByteAt(node.Depth);
                            if (node.Covered.Test(slot))
                            {
                                bests[lane] = node;
                                bestSlots[lane] = slot;
                            }

                            if (!node.ChildSlots.Test(slot))
                            {
                                Finish(ref states[lane], ref results[lane], bests[lane], bestSlots[lane], ref active);
                                break;
                            }

                            positions[lane] = slot;
                            Prefetch(ref Unsafe.AsRef(in node.SlotAt(slot)));
                            states[lane] = LaneState.AtSlot;
                            break;
                        }

                    case LaneState.AtSlot:
                        {
                            var node = nodes[lane]!;
                            ref readonly var childSlot = ref node.SlotAt(positions[lane]);
                            var key = new KeyWords(ids[lane]);
                            if ((((key.Bits32At(node.Depth + 8) & TrieNode.ChildSlot.MaskOf(childSlot.CheckedBits)) ^ childSlot.Check) & ~TrieNode.ChildSlot.MoreBits) != 0)
                            {
                                Finish(ref states[lane], ref results[lane], bests[lane], bestSlots[lane], ref active);
                                break;
                            }

                            var more = (byte)(childSlot.Check & TrieNode.ChildSlot.MoreBits);
                            var child = childSlot.Item;
                            if (child.GetType() == typeof(TrieNode))
                            {
                                // Stop here if the child has nothing in the key's group of slots.
                                if (((childSlot.Summary >> (key.ByteAt(childSlot.ChildDepth) >> 2)) & 1) == 0)
                                {
                                    Finish(ref states[lane], ref results[lane], bests[lane], bestSlots[lane], ref active);
                                    break;
                                }

                                var next = Unsafe.As<TrieNode>(child);
                                nodes[lane] = next;
                                verify[lane] = more;
                                PrefetchObject(next, lines: 2);
                                states[lane] = LaneState.AtNode;
                                break;
                            }

                            var tail = Unsafe.As<ServiceEntry>(child);
                            if (more == 0)
                            {
                                results[lane] = tail;
                                states[lane] = LaneState.Done;
                                active--;
                                break;
                            }

                            results[lane] = tail;
                            PrefetchObject(tail, lines: 2);
                            states[lane] = LaneState.AtTail;
                            break;
                        }

                    case LaneState.AtTail:
                        {
                            var tail = results[lane]!;
                            if (ids[lane].CommonPrefixLength(tail.Prefix.Id) >= tail.Prefix.Length)
                            {
                                states[lane] = LaneState.Done;
                                active--;
                            }
                            else
                            {
                                Finish(ref states[lane], ref results[lane], bests[lane], bestSlots[lane], ref active);
                            }

                            break;
                        }
                }
            }
        }
    }

    private static void Finish(ref LaneState state, ref ServiceEntry? result, TrieNode? best, int bestSlot, ref int active)
    {
        result = best?.LocalBest(bestSlot);
        state = LaneState.Done;
        active--;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Prefetch<T>(ref T target)
    {
        if (Sse.IsSupported)
        {
            Sse.Prefetch0(Unsafe.AsPointer(ref target));
        }
    }

    /// <summary>Prefetches the first <paramref name="lines"/> cache lines of an object (a hint only: a stale address after a GC is harmless).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void PrefetchObject(object target, int lines)
    {
        if (Sse.IsSupported)
        {
            var address = (byte*)Unsafe.As<object, nint>(ref target);
            Sse.Prefetch0(address);
            if (lines > 1)
            {
                Sse.Prefetch0(address + 64);
            }
        }
    }

    [InlineArray(Lanes)]
    private struct LaneNodes
    {
        private TrieNode? _element;
    }

    [InlineArray(Lanes)]
    private struct LaneInts
    {
        private int _element;
    }

    [InlineArray(Lanes)]
    private struct LaneBytes
    {
        private byte _element;
    }

    [InlineArray(Lanes)]
    private struct LaneStates
    {
        private LaneState _element;
    }

    private enum LaneState : byte
    {
        /// <summary>The lane's node header was prefetched: branch on the key's byte.</summary>
        AtNode,

        /// <summary>The child slot was prefetched: check it and move down.</summary>
        AtSlot,

        /// <summary>The tail entry was prefetched: compare the whole prefix.</summary>
        AtTail,

        /// <summary>The lane has its answer.</summary>
        Done,
    }
}
