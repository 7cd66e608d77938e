using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>Senders, registrations and the service-table rules they own.</summary>
public sealed partial class RouterController
{
    /// <summary>Creates the state of a new sender and its reply route; null (counted) past the limits or without an interface toward it.</summary>
    private Peer? NewPeer(ulong sender, ServiceId from, LinkAddress source, TimeSpan now)
    {
        if (_peers.Count >= _options.MaxPeers)
        {
            Counters.CountRejected();
            return null;
        }

        var iface = InterfaceFor(source);
        if (iface < 0)
        {
            Counters.CountNoInterface();
            return null;
        }

        var peer = new Peer(sender)
        {
            ReplyService = from,
            Address = source,
            Interface = iface,
            LastAccepted = now,
            Replay = new ReplayWindow(),
        };
        _peers.Add(sender, peer);
        _peerExpiry.Enqueue(peer, now + _options.PeerRetention);
        AcquireRule(ServicePrefix.Exact(from), peer.Target, _options.ReplyRoutePriority, 1, now);
        return peer;
    }

    /// <summary>
    /// An accepted request came from <paramref name="source"/>: if the sender moved (new address, or a new control
    /// socket), its reply route and every rule of its registrations move with it. False when no interface reaches it.
    /// </summary>
    private bool Relocate(Peer peer, ServiceId from, LinkAddress source, TimeSpan now)
    {
        if (peer.ReplyService == from && peer.Address == source)
        {
            EnsureRule(ServicePrefix.Exact(peer.ReplyService), peer.Target, now);
            return true;
        }

        var iface = InterfaceFor(source);
        if (iface < 0)
        {
            Counters.CountNoInterface();
            return false;
        }

        Counters.CountMoved();
        ReleaseRule(ServicePrefix.Exact(peer.ReplyService), peer.Target);
        var oldAddress = peer.Address;
        foreach (var reg in peer.Registrations.Values)
        {
            if (reg.Installed is { } old)
            {
                ReleaseRule(reg.Prefix, old);
                reg.Installed = null;
            }

            if (oldAddress != source)
            {
                Unpublish(reg, oldAddress);
            }
        }

        peer.ReplyService = from;
        peer.Address = source;
        peer.Interface = iface;
        AcquireRule(ServicePrefix.Exact(from), peer.Target, _options.ReplyRoutePriority, 1, now);
        foreach (var reg in peer.Registrations.Values)
        {
            ApplyRule(reg, now);
            if (oldAddress != source)
            {
                reg.PublishedAt = now;
                Publish(reg, now);
            }
        }

        return true;
    }

    /// <summary>Makes the table match the registration: a FORWARD rule toward its sender unless draining.</summary>
    private void ApplyRule(Registration reg, TimeSpan now)
    {
        ServiceTarget? desired = IsDraining(reg) ? null : reg.Peer.Target;
        if (reg.Installed is { } current && current != desired)
        {
            ReleaseRule(reg.Prefix, current);
            reg.Installed = null;
        }

        if (desired is not { } target)
        {
            return;
        }

        if (reg.Installed is null)
        {
            AcquireRule(reg.Prefix, target, _options.RulePriority, reg.Weight, now, registration: true);
            reg.Installed = target;
            return;
        }

        var use = _rules[(reg.Prefix, target)];
        if (use.Weight != reg.Weight)
        {
            use.Weight = reg.Weight;
            RegistrationRuleChanged?.Invoke(new RegistrationRuleChange(reg.Prefix, target.Address, use.Weight, Installed: true));
        }

        EnsureRule(reg.Prefix, target, now);
    }

    private void RemoveRegistration(Registration reg, TimeSpan now)
    {
        if (reg.Signed)
        {
            reg.Signed = false;
            reg.Peer.SignedRegistrations--;
            if (_signedServices.TryGetValue(reg.Prefix.Id, out var n) && n > 1)
            {
                _signedServices[reg.Prefix.Id] = n - 1;
            }
            else
            {
                _signedServices.Remove(reg.Prefix.Id);
            }
        }

        reg.Removed = true;
        reg.Peer.Registrations.Remove(reg.Prefix);
        _registrationCount--;
        Unpublish(reg, reg.Peer.Address);
        if (reg.Installed is { } target)
        {
            ReleaseRule(reg.Prefix, target);
            reg.Installed = null;
        }

        UpdateExport(reg, now);
    }

    /// <summary>Takes a reference on a rule, adding it to the table (or updating priority and weight) as needed.</summary>
    private void AcquireRule(ServicePrefix prefix, ServiceTarget target, uint priority, uint weight, TimeSpan now, bool registration = false)
    {
        var isNew = !_rules.TryGetValue((prefix, target), out var use);
        if (isNew)
        {
            use = new RuleUse { Priority = priority, Registration = registration };
            _rules.Add((prefix, target), use);
        }

        use!.Count++;
        var changed = use.Weight != weight;
        use.Weight = weight;
        EnsureRule(prefix, target, now);
        if (use.Registration && (isNew || changed))
        {
            RegistrationRuleChanged?.Invoke(new RegistrationRuleChange(prefix, target.Address, weight, Installed: true));
        }
    }

    /// <summary>Checks that the table holds the rule with our priority and weight (it may have been removed with its interface) and fixes it.</summary>
    private void EnsureRule(ServicePrefix prefix, ServiceTarget target, TimeSpan now)
    {
        if (!_rules.TryGetValue((prefix, target), out var use))
        {
            return;
        }

        var services = _engine.Services;
        if (!services.TryGetExact(prefix, out var entry) || !entry.TryGetRule(target, out var rule))
        {
            services.Add(prefix, target, use.Priority, use.Weight, now: now);
        }
        else if (rule.Weight != use.Weight || rule.Priority != use.Priority)
        {
            services.Modify(prefix, target, priority: use.Priority, weight: use.Weight);
        }
    }

    /// <summary>Drops a reference on a rule; the last one removes it from the table.</summary>
    private void ReleaseRule(ServicePrefix prefix, ServiceTarget target)
    {
        if (!_rules.TryGetValue((prefix, target), out var use))
        {
            return;
        }

        if (--use.Count > 0)
        {
            return;
        }

        _rules.Remove((prefix, target));
        _engine.Services.Remove(prefix, target);
        if (use.Registration)
        {
            RegistrationRuleChanged?.Invoke(new RegistrationRuleChange(prefix, target.Address, use.Weight, Installed: false));
        }
    }

    /// <summary>Puts back every rule (an interface came back up: the engine removed its FORWARD rules when it went down).</summary>
    private void Reinstall(TimeSpan now)
    {
        foreach (var (prefix, target) in _rules.Keys)
        {
            EnsureRule(prefix, target, now);
        }
    }

    /// <summary>
    /// The interface that reaches <paramref name="source"/>: the configured one, else the up, non-loopback interface
    /// of the same family whose address shares the most leading bits with it; -1 when there is none.
    /// </summary>
    private int InterfaceFor(LinkAddress source)
    {
        if (_options.Interface is { } fixedInterface)
        {
            return fixedInterface;
        }

        Span<byte> a = stackalloc byte[16];
        Span<byte> b = stackalloc byte[16];
        var n = source.WriteAddress(a);
        var best = -1;
        var bestBits = -1;
        foreach (var info in _engine.Interfaces)
        {
            if (info.Index == 0 || !info.IsUp || info.Address.IsIPv4 != source.IsIPv4 || info.Address.IsIPv6 != source.IsIPv6)
            {
                continue;
            }

            var m = info.Address.WriteAddress(b);
            var bits = CommonBits(a[..n], b[..m]);
            if (bits > bestBits)
            {
                best = info.Index;
                bestBits = bits;
            }
        }

        return best;
    }

    private static int CommonBits(ReadOnlySpan<byte> x, ReadOnlySpan<byte> y)
    {
        var bits = 0;
        for (var i = 0; i < x.Length && i < y.Length; i++)
        {
            var d = x[i] ^ y[i];
            if (d != 0)
            {
                return bits + System.Numerics.BitOperations.LeadingZeroCount((uint)d) - 24;
            }

            bits += 8;
        }

        return bits;
    }

    // ----------------------------------------------------------------------------------------------------------

    /// <summary>One sender (a host controller incarnation) and its registrations.</summary>
    private sealed class Peer(ulong sender)
    {
        public ulong Sender { get; } = sender;

        /// <summary>The serviceID of its control socket (acks go there through the reply route).</summary>
        public ServiceId ReplyService { get; set; }

        public LinkAddress Address { get; set; }

        public int Interface { get; set; }

        public ServiceTarget Target => ServiceTarget.Forward(Address, Interface);

        public TimeSpan LastAccepted { get; set; }

        /// <summary>Its sequence numbers accepted (with a key: all; without: those of signed messages).</summary>
        public ReplayWindow Replay { get; init; } = null!;

        /// <summary>How many of its registrations were signed with the key of their serviceID.</summary>
        public int SignedRegistrations { get; set; }

        public Dictionary<ServicePrefix, Registration> Registrations { get; } = [];

        public bool Removed { get; set; }
    }

    private sealed class Registration(Peer peer, ServicePrefix prefix)
    {
        public Peer Peer { get; } = peer;

        public ServicePrefix Prefix { get; } = prefix;

        public uint Weight { get; set; }

        /// <summary>Registered with a signature by the key of its serviceID: every later request for it must be signed too.</summary>
        public bool Signed { get; set; }

        public bool Draining { get; set; }

        public ServiceTransports Transports { get; set; }

        public TimeSpan ExpiresAt { get; set; }

        /// <summary>The lease last granted.</summary>
        public TimeSpan Lease { get; set; }

        /// <summary>When it was last written to the registry.</summary>
        public TimeSpan PublishedAt { get; set; }

        /// <summary>The FORWARD rule it holds a reference on, if any.</summary>
        public ServiceTarget? Installed { get; set; }

        /// <summary>Whether an expiry item for it is queued.</summary>
        public bool Queued { get; set; }

        public bool Removed { get; set; }

        /// <summary>The upstream prefix its weight counts toward, if any.</summary>
        public ServicePrefix? Export { get; set; }

        public uint ExportWeight { get; set; }
    }

    /// <summary>References on one (prefix, target) rule and the priority and weight it should have.</summary>
    private sealed class RuleUse
    {
        /// <summary>A registration's FORWARD rule (not a reply route): reported through RegistrationRuleChanged.</summary>
        public bool Registration { get; init; }

        public int Count { get; set; }

        public uint Priority { get; init; }

        public uint Weight { get; set; }
    }
}
