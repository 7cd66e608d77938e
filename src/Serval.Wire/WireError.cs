namespace Serval.Wire;

/// <summary>Why a packet or header was rejected by a parser. Malformed input is never an exception.</summary>
public enum WireError
{
    /// <summary>No error.</summary>
    None = 0,

    /// <summary>The buffer is shorter than the header or the length it declares.</summary>
    Truncated,

    /// <summary>The SAL header length is below 3 words or beyond the buffer.</summary>
    BadHeaderLength,

    /// <summary>The SAL header checksum does not verify.</summary>
    BadSalChecksum,

    /// <summary>The transport (TCP/UDP) checksum does not verify.</summary>
    BadTransportChecksum,

    /// <summary>The SAL protocol byte is neither 6 (TCP) nor 17 (UDP).</summary>
    UnknownTransport,

    /// <summary>An extension type is not defined (type 7 or higher).</summary>
    UnknownExtension,

    /// <summary>An extension's length is below its type's minimum, not of the form the type allows, or runs past the header.</summary>
    BadExtensionLength,

    /// <summary>More than 10 extensions.</summary>
    TooManyExtensions,

    /// <summary>A second CONTROL extension.</summary>
    DuplicateControl,

    /// <summary>A third SERVICE extension.</summary>
    TooManyServices,

    /// <summary>A second SOURCE or SOURCE6 extension.</summary>
    DuplicateSource,

    /// <summary>A second PATH extension.</summary>
    DuplicatePathProbe,

    /// <summary>A SOURCE/SOURCE6 extension with fewer than 2 or more than the allowed number of addresses.</summary>
    BadSourceAddressCount,

    /// <summary>The TCP data offset is below 5 words or beyond the segment.</summary>
    BadDataOffset,

    /// <summary>A TCP option runs past the header or has an invalid length.</summary>
    BadTcpOption,

    /// <summary>The UDP length field disagrees with the datagram.</summary>
    BadUdpLength,

    /// <summary>The IP version or header length is invalid.</summary>
    BadIPHeader,

    /// <summary>The IPv4 header checksum does not verify.</summary>
    BadIPChecksum,

    /// <summary>The destination buffer is too small for the packet.</summary>
    BufferTooSmall,

    /// <summary>A second KEYX extension.</summary>
    DuplicateKeyExchange,

    /// <summary>A second AUTH extension.</summary>
    DuplicateAuth,
}
