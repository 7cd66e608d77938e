using Serval.Wire;

namespace Serval.Stack;

/// <summary>
/// Negative answers to SYNs (docs/engine.md, "Negative answers"): a SYN that no service-table rule resolves (at a router
/// or a host) or that reaches a host with no listener for it gets a control-only RST|ACK that echoes the SYN's nonce and
/// acknowledges its verno, so the client can verify it came from a node that saw its SYN: with NACK set for "no such
/// service" (<see cref="ServalError.ServiceNotFound"/>), without for "refused" (<see cref="ServalError.ConnectionRefused"/>).
/// Never for a link broadcast; rate-limited like ICMP errors (a token bucket).
/// </summary>
public sealed partial class Engine
{
    private TokenBucket _negativeAnswers;

    private void SendNegativeAnswer(EngineInterface iface, LinkAddress source, in SalPacketRepr p, bool serviceNotFound, bool broadcast, TimeSpan now)
    {
        if (broadcast || p.Control is not { } c || !c.Has(SalControlFlags.Syn) || c.Has(SalControlFlags.Ack) || p.SourceFlow.IsNone)
        {
            return;
        }

        if (!TakeNegativeToken(now))
        {
            Counters.NegativeAnswerSuppressed();
            return;
        }

        var flags = SalControlFlags.Rst | SalControlFlags.Ack | (serviceNotFound ? SalControlFlags.Nack : 0);
        var repr = new SalPacketRepr
        {
            SourceFlow = default,
            DestinationFlow = p.SourceFlow,
            Protocol = p.Protocol,
            Control = new SalControl(flags, 0, c.Verno + 1, c.Nonce),
            ControlOnly = true,
        };
        var to = p.SourceRoute is { } r ? AdoptPort(r.First, source, iface) : source;
        Send(iface.Index, iface.Address, to, repr, []);
        Counters.NegativeAnswerSent();
    }

    private bool TakeNegativeToken(TimeSpan now) =>
        _options.NegativeAnswersPerSecond > 0 && _negativeAnswers.TryTake(_options.NegativeAnswersPerSecond, now);
}
