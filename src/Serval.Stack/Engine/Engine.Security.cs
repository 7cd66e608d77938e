using Serval.Wire;

namespace Serval.Stack;

public sealed partial class Engine
{
    // ----------------------------------------------------------------------------------------------------------
    // Key exchange and ownership proof in the handshake (docs/security.md)

    /// <summary>
    /// Server: a SYN offered a key exchange. Draws our ephemeral key, derives the flow's keys from the transcript, and
    /// prepares the acceptance for the SYN-ACK, with an ownership proof when the listener holds the key of the serviceID
    /// asked for. Null (an ordinary flow) when the offer's key share is unusable.
    /// </summary>
    private FlowSecurity? AcceptKeyExchange(ListenerSocket l, Flow flow, in SalPacketRepr p, SalControl c, SalKeyExchange offer)
    {
        var level = (FlowProtection)offer.Level;
        var security = FlowSecurity.Create(level, mustNegotiate: false, requireProof: false, _random);
        var key = l.Key is { } k && k.ServiceId == flow.Service ? k : null;
        var prefixBits = key?.Prefix.Length ?? 0;
        var transcript = FlowSecurity.Transcript(
            offer.Level, flow.Service, p.SourceFlow, flow.LocalFlow, c.Nonce, flow.LocalNonce,
            offer.Share, security.LocalShare, prefixBits, key is null ? [] : key.PublicKey);
        if (!security.DeriveKeys(offer.Share, transcript, isClient: false, level))
        {
            security.Dispose();
            return null;
        }

        SalKeyExchange acceptance;
        if (key is not null)
        {
            Span<byte> signature = stackalloc byte[SalKeyExchange.SignatureLength];
            key.Sign(FlowSecurity.ProofMessage(transcript), signature);
            acceptance = SalKeyExchange.AcceptWithProof(offer.Level, security.LocalShare, prefixBits, key.PublicKey, signature);
        }
        else
        {
            acceptance = SalKeyExchange.Accept(offer.Level, security.LocalShare);
        }

        security.SetAcceptance(acceptance, level);
        Counters.SecuredFlow();
        return security;
    }

    /// <summary>
    /// Client: a SYN-ACK for a flow that offered a key exchange. With an acceptance: checks the ownership proof (when
    /// present or required), derives the keys and verifies the SYN-ACK's own AUTH; without one: falls back to an ordinary
    /// flow, or fails the connect when security was required. False when the SYN-ACK must be ignored or the flow ended.
    /// </summary>
    private bool CompleteKeyExchange(Flow flow, FlowSecurity security, in SalPacketRepr p, SalControl c, ref ReadOnlySpan<byte> payload, TimeSpan now)
    {
        if (security.Established)
        {
            return true;
        }

        if (p.KeyExchange is not { IsAccept: true } acceptance)
        {
            if (security.MustNegotiate)
            {
                Fail(flow, security.RequireProof ? ServalError.OwnershipProofFailed : ServalError.SecurityNotNegotiated, now);
                if (security.RequireProof)
                {
                    Counters.OwnershipProofFailure();
                }

                return false;
            }

            flow.Security = null; // the peer does not know the extension (or answered with a cookie): an ordinary flow
            security.Dispose();
            return true;
        }

        var transcript = FlowSecurity.Transcript(
            acceptance.Level, flow.Service, flow.LocalFlow, p.SourceFlow, flow.LocalNonce, c.Nonce,
            security.LocalShare, acceptance.Share, acceptance.HasProof ? acceptance.PrefixBits : 0, acceptance.ServiceKey);
        if (acceptance.HasProof || security.RequireProof)
        {
            var proved = acceptance.HasProof
                && flow.Service.IsCertifiedBy(acceptance.ServiceKey, acceptance.PrefixBits)
                && ServiceKey.Verify(acceptance.ServiceKey, FlowSecurity.ProofMessage(transcript), acceptance.Signature);
            if (!proved)
            {
                // A missing, foreign or forged proof: the connect fails with its own error (a forged SYN-ACK cannot be
                // told apart from a server that does not hold the key).
                Counters.OwnershipProofFailure();
                Fail(flow, ServalError.OwnershipProofFailed, now);
                return false;
            }
        }

        if (!security.DeriveKeys(acceptance.Share, transcript, isClient: true, (FlowProtection)acceptance.Level))
        {
            Counters.UnauthenticatedPacket();
            return false;
        }

        var opened = security.Open(p, payload, _sealScratch, _plainScratch, out var decrypted);
        if (opened != FlowSecurity.OpenResult.Ok)
        {
            // Not sealed with the keys of this exchange: not the server's SYN-ACK; wait for the real one.
            security.ForgetKeys();
            Counters.UnauthenticatedPacket();
            return false;
        }

        if (decrypted)
        {
            payload = _plainScratch.AsSpan(0, payload.Length);
        }

        if (acceptance.HasProof)
        {
            security.MarkOwnershipProved();
        }

        Counters.SecuredFlow();
        return true;
    }

    /// <summary>The protection of a flow's packets and whether the server proved ownership of its serviceID.</summary>
    public (FlowProtection Protection, bool OwnershipProved) GetFlowSecurity(SocketHandle handle) =>
        _sockets.TryGetValue(handle.Value, out var s) && s is Flow { Security: { Established: true } security }
            ? (security.Level, security.OwnershipProved)
            : (FlowProtection.None, false);

    /// <summary>
    /// The service key of a listener bound exactly to <paramref name="prefix"/> (a /256 prefix of the key's serviceID),
    /// or null. The host controller signs that prefix's registrations with it (docs/control-protocol.md §5.1).
    /// </summary>
    internal ServiceKey? FindServiceKey(ServicePrefix prefix)
    {
        if (prefix.Length != ServiceId.Bits)
        {
            return null;
        }

        foreach (var socket in _sockets.Values)
        {
            if (socket is ListenerSocket { Released: false, Key: { } key } l && l.Prefix == prefix && key.ServiceId == prefix.Id)
            {
                return key;
            }
        }

        return null;
    }
}
