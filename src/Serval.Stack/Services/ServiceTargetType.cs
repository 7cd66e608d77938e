namespace Serval.Stack.Services;

/// <summary>What a service-table rule does with a packet it resolves (docs/protocol.md §7; reference values).</summary>
public enum ServiceTargetType : byte
{
    /// <summary>Send the packet to a link address on an interface.</summary>
    Forward = 1,

    /// <summary>Deliver the packet to a local listening or bound socket.</summary>
    Demux = 2,

    /// <summary>Queue the packet and ask the service controller what to do with it.</summary>
    Delay = 3,

    /// <summary>Discard the packet.</summary>
    Drop = 4,
}
