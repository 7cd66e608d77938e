namespace Serval.Stack.ControlPlane;

/// <summary>Which transports serve a registered prefix (informational for operators; routers forward both).</summary>
[Flags]
public enum ServiceTransports : byte
{
    /// <summary>Unspecified.</summary>
    None = 0,

    /// <summary>A stream listener is bound.</summary>
    Stream = 0x01,

    /// <summary>A datagram socket is bound.</summary>
    Datagram = 0x02,
}
