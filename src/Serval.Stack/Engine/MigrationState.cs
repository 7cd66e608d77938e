namespace Serval.Stack;

/// <summary>Migration sub-state of a flow (docs/protocol.md §10), orthogonal to <see cref="SalState"/>.</summary>
public enum MigrationState
{
    /// <summary>No migration in progress.</summary>
    None,

    /// <summary>We sent an RSYN.</summary>
    RsynSent,

    /// <summary>We received an RSYN and answered RSYN|ACK.</summary>
    RsynReceived,

    /// <summary>Both: simultaneous migration.</summary>
    RsynSentReceived,
}
