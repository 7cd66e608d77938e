using System.Buffers.Binary;
using System.Net.Sockets;
using Serval.Wire;

namespace Serval.Native;

/// <summary>Converts between <see cref="LinkAddress"/> and native <c>sockaddr_in</c>/<c>sockaddr_in6</c> bytes (Linux layout).</summary>
internal static class SockAddr
{
    /// <summary>Size of a buffer that holds either form.</summary>
    public const int MaxSize = 28;

    /// <summary>Writes the sockaddr for <paramref name="address"/>; returns its length, or 0 for <see cref="LinkAddress.None"/>.</summary>
    public static int Write(LinkAddress address, Span<byte> destination)
    {
        destination[..MaxSize].Clear();
        if (address.IsIPv4)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(destination, LinuxSockets.AfInet);
            BinaryPrimitives.WriteUInt16BigEndian(destination[2..], (ushort)address.Port);
            address.WriteAddress(destination[4..]);
            return 16;
        }

        if (address.IsIPv6)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(destination, LinuxSockets.AfInet6);
            BinaryPrimitives.WriteUInt16BigEndian(destination[2..], (ushort)address.Port);
            address.WriteAddress(destination[8..]);
            return 28;
        }

        return 0;
    }

    /// <summary>Reads a native sockaddr; <see cref="LinkAddress.None"/> when the family is unknown.</summary>
    public static LinkAddress Read(ReadOnlySpan<byte> source)
    {
        if (source.Length < 16)
        {
            return LinkAddress.None;
        }

        var family = BinaryPrimitives.ReadUInt16LittleEndian(source);
        var port = BinaryPrimitives.ReadUInt16BigEndian(source[2..]);
        return family switch
        {
            LinuxSockets.AfInet => LinkAddress.FromBytes(source.Slice(4, 4), port),
            LinuxSockets.AfInet6 when source.Length >= 24 => MapV6(LinkAddress.FromBytes(source.Slice(8, 16), port), source.Slice(8, 16)),
            _ => LinkAddress.None,
        };
    }

    /// <summary>Reads a managed <see cref="System.Net.SocketAddress"/> (same bytes as the native form on Linux).</summary>
    public static LinkAddress Read(System.Net.SocketAddress address)
    {
        var buffer = address.Buffer.Span[..address.Size];
        if (buffer.Length < 8)
        {
            return LinkAddress.None;
        }

        var port = BinaryPrimitives.ReadUInt16BigEndian(buffer[2..]);
        return address.Family switch
        {
            AddressFamily.InterNetwork => LinkAddress.FromBytes(buffer.Slice(4, 4), port),
            AddressFamily.InterNetworkV6 when buffer.Length >= 24 => MapV6(LinkAddress.FromBytes(buffer.Slice(8, 16), port), buffer.Slice(8, 16)),
            _ => LinkAddress.None,
        };
    }

    private static LinkAddress MapV6(LinkAddress v6, ReadOnlySpan<byte> bytes)
    {
        // ::ffff:a.b.c.d arrives on dual-mode sockets; the engine speaks of the IPv4 address.
        if (bytes[..10].IndexOfAnyExcept((byte)0) < 0 && bytes[10] == 0xFF && bytes[11] == 0xFF)
        {
            return LinkAddress.FromBytes(bytes[12..16], v6.Port);
        }

        return v6;
    }
}
