using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using Serval.Wire;

namespace Serval.Stack.Services;

/// <summary>
/// Batched longest-prefix match: the same walk as <see cref="TopIndex.Lookup"/>, for up to <see cref="Lanes"/> keys
/// at a time in lock step. Each step advances every unfinished key by one memory access and prefetches the next
/// one, so the cache misses of different keys overlap instead of being paid one after another (group prefetching).
/// </summary>
internal static partial class PrefixTrie
{
    /// <summary>Keys walked together.</summary>
    public const int Lanes = 16;

    /// <summary>Longest-prefix match of every key of <paramref name="ids"/> into the same index of <paramref name="results"/>.</summary>
    public static void LookupBatch(TrieNode root, TopIndex top, ReadOnlySpan<ServiceId> ids, Span<ServiceEntry?> results)
    {
        for (var start = 0; start < ids.Length; start += Lanes)
        {
            var count = Math.Min(Lanes, ids.Length - start);
            LookupGroup(root, top, ids.Slice(start, count), results.Slice(start, count));
        }
    }

    private static void LookupGroup(TrieNode root, TopIndex top, ReadOnlySpan<ServiceId> ids, Span<ServiceEntry?> results)
    {
        var count = ids.Length;
        LaneNodes nodes = default;
        LaneNodes bests = default;
        LaneInts bestSlots = default;
        LaneInts positions = default;
        LaneEntries fallbacks = default;
        LaneStates states = default;
        LaneBytes verify = default;
        var active = count;

        // Step 0: find each key's top-index entry and prefetch it.
        for (var lane = 0; lane < count; lane++)
        {
            var value = (int)(ids[lane].GetWord(0) >> 48);
            fallbacks[lane] = root.Covered.Test(value >> 8) ? root.LocalBest(value >> 8) : null;
            if (top.PageOf(value) is { } page)
            {
                positions[lane] = value;
                Prefetch(ref page[value & 31]);
                states[lane] = LaneState.AtTop;
            }
            else
            {
                results[lane] = fallbacks[lane];
                states[lane] = LaneState.Done;
                active--;
            }
        }

        while (active > 0)
        {
            for (var lane = 0; lane < count; lane++)
            {
                switch (states[lane])
                {
                    case LaneState.AtTop:
                        {
                            var value = positions[lane];
                            ref readonly var entry = ref top.PageOf(value)![value & 31];
                            fallbacks[lane] = entry.Best ?? fallbacks[lane];
                            if (entry.Slot.Item is null)
                            {
                                Finish(ref states[lane], ref results[lane], null, 0, fallbacks[lane], ref active);
                                break;
                            }

                            var topSlot = entry.Slot;
                            Follow(in topSlot, 16, ids[lane], lane, ref nodes, ref states, ref verify, ref results, ref fallbacks, ref active);
                            break;
                        }

                    case LaneState.AtNode:
                        {
                            var node = nodes[lane]!;
                            var key = new KeyWords(ids[lane]);
                            if (verify[lane] != 0 && !key.MatchesThrough(node.Key, node.Depth))
                            {
                                Finish(ref states[lane], ref results[lane], bests[lane], bestSlots[lane], fallbacks[lane], ref active);
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
                                Finish(ref states[lane], ref results[lane], bests[lane], bestSlots[lane], fallbacks[lane], ref active);
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
                            Follow(in node.SlotAt(positions[lane]), node.Depth + 8, ids[lane], lane, ref nodes, ref states, ref verify, ref results, ref fallbacks, ref active);
                            if (states[lane] == LaneState.Done && results[lane] is null)
                            {
                                // Stopped below this node: the best so far comes from the nodes already walked.
                                results[lane] = bests[lane] is { } best ? best.LocalBest(bestSlots[lane]) : fallbacks[lane];
                            }

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
                                results[lane] = null;
                                Finish(ref states[lane], ref results[lane], bests[lane], bestSlots[lane], fallbacks[lane], ref active);
                            }

                            break;
                        }
                }
            }
        }
    }

    /// <summary>
    /// Follows a child slot for one lane: on to a node (prefetched, state <see cref="LaneState.AtNode"/>), to a
    /// tail that needs a full comparison (prefetched, <see cref="LaneState.AtTail"/>), or done (with the tail as
    /// result, or null: the caller fills in the best so far).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Follow(
        in TrieNode.ChildSlot slot,
        int start,
        in ServiceId id,
        int lane,
        ref LaneNodes nodes,
        ref LaneStates states,
        ref LaneBytes verify,
        ref Span<ServiceEntry?> results,
        ref LaneEntries fallbacks,
        ref int active)
    {
        var key = new KeyWords(id);
        if ((((key.Bits32At(start) & TrieNode.ChildSlot.MaskOf(slot.CheckedBits)) ^ slot.Check) & ~TrieNode.ChildSlot.MoreBits) != 0)
        {
            StopHere(ref states[lane], ref results[lane], fallbacks[lane], start, ref active);
            return;
        }

        var more = (byte)(slot.Check & TrieNode.ChildSlot.MoreBits);
        var child = slot.Item;
        if (child.GetType() == typeof(TrieNode))
        {
            if (((slot.Summary >> (key.ByteAt(slot.ChildDepth) >> 2)) & 1) == 0)
            {
                StopHere(ref states[lane], ref results[lane], fallbacks[lane], start, ref active);
                return;
            }

            var next = Unsafe.As<TrieNode>(child);
            nodes[lane] = next;
            verify[lane] = more;
            PrefetchObject(next, lines: 2);
            states[lane] = LaneState.AtNode;
            return;
        }

        results[lane] = Unsafe.As<ServiceEntry>(child);
        if (more == 0)
        {
            states[lane] = LaneState.Done;
            active--;
            return;
        }

        PrefetchObject(child, lines: 2);
        states[lane] = LaneState.AtTail;
    }

    /// <summary>Ends a lane that stopped at a slot: from the top index the fallback is the answer; below a node the caller fills it in.</summary>
    private static void StopHere(ref LaneState state, ref ServiceEntry? result, ServiceEntry? fallback, int start, ref int active)
    {
        result = start == 16 ? fallback : null;
        state = LaneState.Done;
        active--;
    }

    private static void Finish(ref LaneState state, ref ServiceEntry? result, TrieNode? best, int bestSlot, ServiceEntry? fallback, ref int active)
    {
        result = best is null ? fallback : best.LocalBest(bestSlot);
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
    private struct LaneEntries
    {
        private ServiceEntry? _element;
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
        /// <summary>The lane's top-index entry was prefetched.</summary>
        AtTop,

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
