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
    private double _negativeTokens = -1;
    private TimeSpan _negativeRefilledAt;

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

    private bool TakeNegativeToken(TimeSpan now)
    {
        var rate = _options.NegativeAnswersPerSecond;
        if (rate <= 0)
        {
            return false;
        }

        var burst = Math.Max(1, rate);
        if (_negativeTokens < 0)
        {
            _negativeTokens = burst;
            _negativeRefilledAt = now;
        }
        else if (now > _negativeRefilledAt)
        {
            _negativeTokens = Math.Min(burst, _negativeTokens + ((now - _negativeRefilledAt).TotalSeconds * rate));
            _negativeRefilledAt = now;
        }

        if (_negativeTokens < 1)
        {
            return false;
        }

        _negativeTokens -= 1;
        return true;
    }
}
