using Serval.Wire;

namespace Serval.Stack;

public sealed partial class Engine
{
    // NAT rebinding (docs/nat-rebinding.md): packets of a known flow from a new source address or port are accepted,
    // but replies keep going to the validated address until the new one answers a nonce-bearing challenge.

    private void ValidatePath(Flow flow, LinkAddress candidate, TimeSpan now)
    {
        if (flow.IsValidating(candidate, now))
        {
            return; // a challenge to this address is still outstanding
        }

        var challenge = _random.NextUInt64() | 1;
        flow.OnPathChallengeSent(candidate, challenge, now);
        SendPathProbe(flow, candidate, new SalPathProbe(false, challenge));
    }

    private void OnPathProbe(Flow flow, LinkAddress source, in SalPacketRepr p, SalPathProbe probe, TimeSpan now)
    {
        if (!flow.IsSynchronized)
        {
            return;
        }

        if (!probe.IsResponse)
        {
            // A challenge carries no nonce (it goes to an address not yet trusted, which must not learn ours). The
            // response carries our nonce and travels back to where the challenge came from.
            SendPathProbe(flow, source, new SalPathProbe(true, probe.Challenge));
            return;
        }

        if (p.Control is not { } c || c.Nonce != flow.PeerNonce)
        {
            Counters.PathValidationFailed();
            Counters.BadNoncePacket();
            return;
        }

        if (!flow.TryCompletePathValidation(probe.Challenge, source))
        {
            Counters.PathValidationFailed();
            return;
        }

        Counters.PathValidated();
        flow.Stream?.OnPathChanged(now);
        MarkTransmit(flow);
    }

    private void SendPathProbe(Flow flow, LinkAddress destination, SalPathProbe probe)
    {
        if (!TryGetUpInterface(flow.Interface, out _))
        {
            return;
        }

        var repr = new SalPacketRepr
        {
            SourceFlow = flow.LocalFlow,
            DestinationFlow = flow.PeerFlow,
            Protocol = (byte)flow.Protocol,
            Control = new SalControl(SalControlFlags.Ack, flow.Control.SndNxt, flow.Control.RcvNxt, probe.IsResponse ? flow.LocalNonce : default),
            PathProbe = probe,
            ControlOnly = true,
        };
        var n = SendFlowPacket(flow, flow.Interface, flow.LocalAddress, destination, repr, []);
        flow.PacketsSent++;
        flow.BytesSent += n;
    }
}
