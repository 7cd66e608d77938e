using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Benchmarks;

/// <summary>
/// The baseline: the reference implementation's service trie (<c>bst.c</c>) transcribed —
/// an uncompressed binary trie with one node per bit (left child for 0, right for 1, most significant bit
/// first), where a node is "active" when it carries an entry, and longest-prefix match walks down the key's bits
/// remembering the last active node until a child is missing. Nodes keep their parent and depth as the
/// reference's do; the reference's per-node copy of the prefix bytes is left out (it only makes nodes bigger).
/// </summary>
internal sealed class ServiceTableReferenceTrie
{
    private readonly Node _root = new(null, 0);

    /// <summary>Number of nodes allocated.</summary>
    public long NodeCount { get; private set; } = 1;

    /// <summary>Inserts (or replaces) the entry of <paramref name="prefix"/>, creating the missing chain of nodes.</summary>
    public void Insert(ServicePrefix prefix, ServiceEntry entry)
    {
        var node = _root;
        for (var bit = 0; bit < prefix.Length; bit++)
        {
            if (prefix.Id.GetBit(bit))
            {
                node = node.Right ??= NewNode(node, bit + 1);
            }
            else
            {
                node = node.Left ??= NewNode(node, bit + 1);
            }
        }

        node.Private = entry;
    }

    /// <summary>Longest-prefix match: the deepest active node on the key's path.</summary>
    public ServiceEntry? Lookup(ServiceId id)
    {
        ulong w0 = id.GetWord(0), w1 = id.GetWord(1), w2 = id.GetWord(2), w3 = id.GetWord(3);
        var node = _root;
        var best = node.Private;
        for (var bit = 0; bit < ServiceId.Bits; bit++)
        {
            var word = (bit >> 6) switch
            {
                0 => w0,
                1 => w1,
                2 => w2,
                _ => w3,
            };
            node = ((word >> (63 - (bit & 63))) & 1) != 0 ? node.Right : node.Left;
            if (node is null)
            {
                break;
            }

            if (node.Private is not null)
            {
                best = node.Private;
            }
        }

        return best;
    }

    private Node NewNode(Node parent, int bits)
    {
        NodeCount++;
        return new Node(parent, bits);
    }

    private sealed class Node(Node? parent, int bits)
    {
        public Node? Left;
        public Node? Right;
        public ServiceEntry? Private;
        public readonly Node? Parent = parent;
        public readonly int PrefixBits = bits;
    }
}
