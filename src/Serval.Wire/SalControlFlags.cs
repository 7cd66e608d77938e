namespace Serval.Wire;

/// <summary>Flags of the SAL CONTROL extension (docs/protocol.md §3).</summary>
[Flags]
public enum SalControlFlags : byte
{
    /// <summary>No flags.</summary>
    None = 0,

    /// <summary>Reserved bits 0x03.</summary>
    Reserved = 0x03,

    /// <summary>Close the flow's control channel.</summary>
    Fin = 0x04,

    /// <summary>Reset the flow.</summary>
    Rst = 0x08,

    /// <summary>Negative acknowledgement (defined, never sent).</summary>
    Nack = 0x10,

    /// <summary>Acknowledges the peer's control packet.</summary>
    Ack = 0x20,

    /// <summary>Migration request.</summary>
    Rsyn = 0x40,

    /// <summary>Connection request.</summary>
    Syn = 0x80,
}
