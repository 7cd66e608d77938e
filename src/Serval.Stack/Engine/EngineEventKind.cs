namespace Serval.Stack;

/// <summary>What an <see cref="EngineEvent"/> reports.</summary>
public enum EngineEventKind
{
    /// <summary>A socket bound a service prefix (the controller may register it with routers).</summary>
    ServiceRegistered,

    /// <summary>A socket released a service prefix.</summary>
    ServiceUnregistered,

    /// <summary>A packet was queued by a DELAY rule and waits for <see cref="Engine.ReleaseDelayed"/> or <see cref="Engine.DropDelayed"/>.</summary>
    PacketDelayed,

    /// <summary>An interface came up.</summary>
    InterfaceUp,

    /// <summary>An interface went down.</summary>
    InterfaceDown,

    /// <summary>An interface's address changed.</summary>
    AddressChanged,

    /// <summary>A listener has a connection ready to accept.</summary>
    ConnectionPending,

    /// <summary>A connecting socket is now established.</summary>
    Connected,

    /// <summary>A socket has data (or end of stream) to read.</summary>
    Readable,

    /// <summary>A socket has room to send again.</summary>
    Writable,

    /// <summary>A socket reached its end: closed gracefully or with <see cref="EngineEvent.Error"/>.</summary>
    Closed,

    /// <summary>A flow finished moving to a new address.</summary>
    Migrated,
}
