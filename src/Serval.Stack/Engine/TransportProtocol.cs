namespace Serval;

/// <summary>The transport a socket uses; the value is the SAL protocol byte.</summary>
public enum TransportProtocol : byte
{
    /// <summary>Stream transport: TCP segments inside the SAL.</summary>
    Stream = 6,

    /// <summary>Datagram transport: UDP datagrams inside the SAL.</summary>
    Datagram = 17,
}
