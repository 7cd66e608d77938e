using System.Runtime.CompilerServices;
using Serval.Wire;

namespace Serval.Stack.Services;

/// <summary>
/// Operations on the persistent service trie (<see cref="TrieNode"/>). Reads never modify anything; updates copy
/// the nodes on the path they change (at most 32, usually 2–4) and share everything else, returning a new root.
/// The root is always a node at depth 0 (possibly empty).
/// </summary>
internal static partial class PrefixTrie
{
    /// <summary>An empty trie.</summary>
    public static TrieNode EmptyRoot { get; } = TrieNode.Empty(default, 0);

    /// <summary>Longest-prefix match of <paramref name="id"/>. Allocates nothing.</summary>
    public static ServiceEntry? Lookup(TrieNode root, in ServiceId id)
    {
        var key = new KeyWords(id);
        return WalkFrom(root, key, id, null);
    }

    /// <summary>
    /// The longest-prefix walk from <paramref name="node"/> (which <paramref name="key"/> is known to reach), with
    /// <paramref name="fallback"/> as the answer when nothing at or below the node matches.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ServiceEntry? WalkFrom(TrieNode node, in KeyWords key, in ServiceId id, ServiceEntry? fallback)
    {
        TrieNode? best = null;
        var bestSlot = 0;
        while (true)
        {
            var depth = node.Depth;
            var slot = key.ByteAt(depth);
            if (node.Covered.Test(slot))
            {
                best = node;
                bestSlot = slot;
            }

            if (!node.ChildSlots.Test(slot))
            {
                break;
            }

            switch (Through(node.SlotAt(slot), depth + 8, key, id, out var next, out var tail))
            {
                case Step.Down:
                    node = next!;
                    continue;
                case Step.Tail:
                    return tail;
            }

            break;
        }

        return best is null ? fallback : best.LocalBest(bestSlot);
    }

    /// <summary>
    /// Follows <paramref name="slot"/> for a key whose bits [0, <paramref name="start"/>) are known to match:
    /// <see cref="Step.Down"/> to a node the key reaches, <see cref="Step.Tail"/> when the slot is a tail that
    /// contains the key, <see cref="Step.Stop"/> when nothing below the slot can match.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Step Through(in TrieNode.ChildSlot slot, int start, in KeyWords key, in ServiceId id, out TrieNode? next, out ServiceEntry? tail)
    {
        next = null;
        tail = null;
        if ((((key.Bits32At(start) & TrieNode.ChildSlot.MaskOf(slot.CheckedBits)) ^ slot.Check) & ~TrieNode.ChildSlot.MoreBits) != 0)
        {
            return Step.Stop;
        }

        var child = slot.Item;
        if (child.GetType() == typeof(TrieNode))
        {
            // Stop if the child has nothing in the key's group of slots (no need to load it).
            if (((slot.Summary >> (key.ByteAt(slot.ChildDepth) >> 2)) & 1) == 0)
            {
                return Step.Stop;
            }

            var node = Unsafe.As<TrieNode>(child);
            if ((slot.Check & TrieNode.ChildSlot.MoreBits) != 0 && !key.MatchesThrough(node.Key, node.Depth))
            {
                return Step.Stop;
            }

            next = node;
            return Step.Down;
        }

        // A tail: the slot checked everything after `start` unless it says there is more.
        var entry = Unsafe.As<ServiceEntry>(child);
        if ((slot.Check & TrieNode.ChildSlot.MoreBits) == 0 || id.CommonPrefixLength(entry.Prefix.Id) >= entry.Prefix.Length)
        {
            tail = entry;
            return Step.Tail;
        }

        return Step.Stop;
    }

    /// <summary>The entry whose prefix is exactly <paramref name="prefix"/>, or null.</summary>
    public static ServiceEntry? Find(TrieNode root, ServicePrefix prefix)
    {
        var key = new KeyWords(prefix.Id);
        var length = prefix.Length;
        var node = root;
        while (true)
        {
            var depth = node.Depth;
            if (length == depth)
            {
                return node.Self;
            }

            if (length < depth + 8)
            {
                var i = IndexOf(node.Interior, prefix);
                return i < 0 ? null : node.Interior[i];
            }

            switch (node.ChildAt(key.ByteAt(depth)))
            {
                case null:
                    return null;
                case ServiceEntry tail:
                    return tail.Prefix == prefix ? tail : null;
                case TrieNode next:
                    if (length < next.Depth || !key.MatchesThrough(next.Key, next.Depth))
                    {
                        return null;
                    }

                    node = next;
                    break;
            }
        }
    }

    /// <summary>The trie with <paramref name="entry"/> added, or replacing the entry with the same prefix.</summary>
    public static TrieNode Set(TrieNode root, ServiceEntry entry) => SetIn(root, entry, new KeyWords(entry.Prefix.Id));

    /// <summary>The trie without the entry whose prefix is <paramref name="prefix"/> (the same root if there is none).</summary>
    public static TrieNode Remove(TrieNode root, ServicePrefix prefix)
    {
        var result = RemoveIn(root, prefix, new KeyWords(prefix.Id), isRoot: true, out var found);
        return found ? (TrieNode)result! : root;
    }

    /// <summary>Every entry, depth first in slot order (each node's own entries before its children).</summary>
    public static IEnumerable<ServiceEntry> Enumerate(TrieNode root)
    {
        var stack = new Stack<object>();
        stack.Push(root);
        while (stack.TryPop(out var item))
        {
            if (item is ServiceEntry tail)
            {
                yield return tail;
                continue;
            }

            var node = (TrieNode)item;
            if (node.Self is not null)
            {
                yield return node.Self;
            }

            foreach (var entry in node.Interior)
            {
                yield return entry;
            }

            // Pushed in reverse so that children come out in slot order.
            for (var slot = 255; slot >= 0; slot--)
            {
                if (node.ChildAt(slot) is { } child)
                {
                    stack.Push(child);
                }
            }
        }
    }

    /// <summary>Number of nodes (for memory accounting and tests).</summary>
    public static int CountNodes(TrieNode root)
    {
        var n = 1;
        for (var slot = 0; slot < 256; slot++)
        {
            if (root.ChildAt(slot) is TrieNode node)
            {
                n += CountNodes(node);
            }
        }

        return n;
    }

    private static TrieNode SetIn(TrieNode node, ServiceEntry entry, in KeyWords key)
    {
        var length = entry.Prefix.Length;
        var depth = node.Depth;
        if (length == depth)
        {
            return node.WithLocal(entry, node.Interior);
        }

        if (length < depth + 8)
        {
            return node.WithLocal(node.Self, WithInterior(node.Interior, entry));
        }

        var slot = key.ByteAt(depth);
        switch (node.ChildAt(slot))
        {
            case null:
                return node.WithChild(slot, entry);
            case ServiceEntry tail:
                return node.WithChild(slot, tail.Prefix == entry.Prefix ? entry : Pair(tail, entry));
            default:
                var next = (TrieNode)node.ChildAt(slot)!;
                var common = Math.Min(key.CommonPrefixLength(next.Key), length);
                if (common >= next.Depth)
                {
                    return node.WithChild(slot, SetIn(next, entry, key));
                }

                // The new prefix leaves (or ends inside) the path skipped before `next`: fork there.
                var split = common & ~7;
                var fork = TrieNode.Empty(key, split).WithChild(next.Key.ByteAt(split), next);
                return node.WithChild(slot, SetIn(fork, entry, key));
        }
    }

    /// <summary>The smallest subtree holding two distinct prefixes that share at least their parent's path.</summary>
    private static TrieNode Pair(ServiceEntry a, ServiceEntry b)
    {
        var ka = new KeyWords(a.Prefix.Id);
        var kb = new KeyWords(b.Prefix.Id);
        var common = Math.Min(ka.CommonPrefixLength(kb), Math.Min(a.Prefix.Length, b.Prefix.Length));
        var node = TrieNode.Empty(ka, common & ~7);
        node = SetIn(node, a, ka);
        return SetIn(node, b, kb);
    }

    private static object? RemoveIn(TrieNode node, ServicePrefix prefix, in KeyWords key, bool isRoot, out bool found)
    {
        found = false;
        var length = prefix.Length;
        var depth = node.Depth;
        TrieNode updated;
        if (length == depth)
        {
            if (node.Self is null)
            {
                return node;
            }

            updated = node.WithLocal(null, node.Interior);
        }
        else if (length < depth + 8)
        {
            var i = IndexOf(node.Interior, prefix);
            if (i < 0)
            {
                return node;
            }

            updated = node.WithLocal(node.Self, [.. node.Interior.AsSpan(0, i), .. node.Interior.AsSpan(i + 1)]);
        }
        else
        {
            var slot = key.ByteAt(depth);
            object? replacement;
            switch (node.ChildAt(slot))
            {
                case null:
                    return node;
                case ServiceEntry tail:
                    if (tail.Prefix != prefix)
                    {
                        return node;
                    }

                    replacement = null;
                    break;
                default:
                    var next = (TrieNode)node.ChildAt(slot)!;
                    if (length < next.Depth || !key.MatchesThrough(next.Key, next.Depth))
                    {
                        return node;
                    }

                    replacement = RemoveIn(next, prefix, key, isRoot: false, out var below);
                    if (!below)
                    {
                        return node;
                    }

                    break;
            }

            updated = node.WithChild(slot, replacement);
        }

        found = true;
        return isRoot ? updated : Collapse(updated);
    }

    /// <summary>Restores the canonical shape after a removal: a subtree of one prefix is that entry (a tail); a node with nothing of its own and one child is that child.</summary>
    private static object? Collapse(TrieNode node)
    {
        if (node.Count == 0)
        {
            return null;
        }

        if (node.Count == 1)
        {
            return node.Self ?? (node.Interior.Length == 1 ? node.Interior[0] : node.FirstChild());
        }

        return node.Self is null && node.Interior.Length == 0 && node.ChildCount == 1 ? node.FirstChild() : node;
    }

    private static int IndexOf(ServiceEntry[] interior, ServicePrefix prefix)
    {
        for (var i = 0; i < interior.Length; i++)
        {
            if (interior[i].Prefix == prefix)
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>A copy of <paramref name="interior"/> with <paramref name="entry"/> replacing its namesake or inserted in (length, id) order.</summary>
    private static ServiceEntry[] WithInterior(ServiceEntry[] interior, ServiceEntry entry)
    {
        var i = IndexOf(interior, entry.Prefix);
        if (i >= 0)
        {
            var copy = (ServiceEntry[])interior.Clone();
            copy[i] = entry;
            return copy;
        }

        // Canonical order: by length, then by id (shorter first is what the run encoding needs).
        var at = 0;
        while (at < interior.Length && (interior[at].Prefix.Length < entry.Prefix.Length
            || (interior[at].Prefix.Length == entry.Prefix.Length && interior[at].Prefix.Id < entry.Prefix.Id)))
        {
            at++;
        }

        return [.. interior.AsSpan(0, at), entry, .. interior.AsSpan(at)];
    }

    /// <summary>The outcome of following a child slot.</summary>
    internal enum Step
    {
        /// <summary>Nothing below the slot matches the key.</summary>
        Stop,

        /// <summary>The key reaches the child node.</summary>
        Down,

        /// <summary>The slot's tail entry contains the key.</summary>
        Tail,
    }
}
