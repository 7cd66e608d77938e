using System.Buffers.Binary;
using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// One target of a ResolveAck (docs/control-protocol.md, "Resolution"): a next hop with its port and weight, written as
/// a 24-byte record — family (4 or 6), a reserved zero byte, port, weight, and 16 address bytes (IPv4: the first 4, the
/// rest zero).
/// </summary>
/// <param name="Address">The next hop's link address (with its UDP port on UDP-encapsulation links; 0 on raw IP).</param>
/// <param name="Weight">Weight among the answer's targets, 1 to 2³¹ − 1.</param>
public readonly record struct ControlTarget(LinkAddress Address, uint Weight)
{
    /// <summary>Reads and validates one record; false when it is malformed.</summary>
    public static bool TryRead(ReadOnlySpan<byte> record, out ControlTarget target)
    {
        target = default;
        if (record.Length != ControlProtocol.TargetLength || record[1] != 0)
        {
            return false;
        }

        var port = BinaryPrimitives.ReadUInt16BigEndian(record[2..]);
        var weight = BinaryPrimitives.ReadUInt32BigEndian(record[4..]);
        if (weight is 0 or > ControlProtocol.MaxWeight)
        {
            return false;
        }

        var address = record[8..];
        LinkAddress a;
        switch (record[0])
        {
            case 4:
                if (address[4..].IndexOfAnyExcept((byte)0) >= 0)
                {
                    return false;
                }

                a = LinkAddress.FromBytes(address[..4], port);
                break;
            case 6:
                a = LinkAddress.FromBytes(address, port);
                break;
            default:
                return false;
        }

        if (address.IndexOfAnyExcept((byte)0) < 0)
        {
            return false; // the unspecified address is no next hop
        }

        target = new ControlTarget(a, weight);
        return true;
    }

    /// <summary>Writes the 24-byte record.</summary>
    /// <exception cref="ArgumentException">The address is none, the weight out of range, or <paramref name="record"/> too short.</exception>
    public void Write(Span<byte> record)
    {
        if (Address.IsNone || Weight is 0 or > ControlProtocol.MaxWeight || record.Length < ControlProtocol.TargetLength)
        {
            throw new ArgumentException($"Cannot write target {this}.", nameof(record));
        }

        record[..ControlProtocol.TargetLength].Clear();
        record[0] = Address.IsIPv4 ? (byte)4 : (byte)6;
        BinaryPrimitives.WriteUInt16BigEndian(record[2..], (ushort)Address.Port);
        BinaryPrimitives.WriteUInt32BigEndian(record[4..], Weight);
        Address.WriteAddress(record[8..]);
    }
}
