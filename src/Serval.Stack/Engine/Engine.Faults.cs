using Serval.Stack.Streams;

namespace Serval.Stack;

/// <summary>
/// Fault isolation (docs/engine.md, "Faults"): an unexpected exception while the engine works on one flow resets that
/// flow, is counted and recorded for the driver's log, and every other flow goes on. No packet, timer or socket call
/// can stop the engine.
/// </summary>
public sealed partial class Engine
{
    private const int FaultQueueCapacity = 64;

    private readonly Queue<FlowFault> _faults = new();

    /// <summary>The flow the engine is working on (the one a fault is charged to), or null.</summary>
    private Flow? _faultFlow;

    /// <summary>Called with a flow's handle before each of its packets is processed (tests inject faults through it).</summary>
    internal Action<SocketHandle>? FlowPacketProbe { get; set; }

    /// <summary>Takes the next recorded fault (at most the last 64 are kept).</summary>
    public bool TryGetFault(out FlowFault? fault) => _faults.TryDequeue(out fault);

    /// <summary>
    /// Charges an exception to the flow behind <paramref name="handle"/> (or to none): counts it, records it and resets
    /// the flow. The driver calls this when a socket call threw.
    /// </summary>
    public void Fault(SocketHandle handle, string where, Exception exception, TimeSpan now)
    {
        ArgumentNullException.ThrowIfNull(exception);
        _sockets.TryGetValue(handle.Value, out var s);
        OnFault(s as Flow, where, exception, now);
    }

    private void OnFault(Flow? flow, string where, Exception exception, TimeSpan now)
    {
        Counters.FlowFault();
        if (_faults.Count >= FaultQueueCapacity)
        {
            _faults.Dequeue();
        }

        _faults.Enqueue(flow is null
            ? new FlowFault(default, default, default, default, default, where, exception)
            : new FlowFault(flow.Handle, flow.LocalFlow, flow.PeerFlow, flow.PeerAddress, flow.Service, where, exception));
        if (flow is null || flow.State == SalState.Closed)
        {
            return;
        }

        try
        {
            ResetFlow(flow, now, ServalError.ConnectionReset);
        }
        catch (Exception)
        {
            // The flow is too broken to reset cleanly: drop its state without another word to the peer.
            ForceRemove(flow);
        }
    }

    /// <summary>Removes a flow whose transport cannot be trusted any more (no abort, no RST), telling the application.</summary>
    private void ForceRemove(Flow flow)
    {
        flow.Error = ServalError.ConnectionReset;
        RemoveFlow(flow);
        if (!flow.Released && (flow.Listener is null || flow.Accepted))
        {
            Emit(new EngineEvent(EngineEventKind.Closed, flow.Handle, Error: ServalError.ConnectionReset));
        }
    }

    /// <summary>Whether a stream is still in the state where a SYN-ACK describes it.</summary>
    private static bool AwaitsHandshakeAck(Flow flow) => flow.Stream is not { } st || st.State == StreamState.SynReceived;
}
