using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Stack.ControlPlane;

/// <summary>
/// A router of a fleet (docs/router-fleet.md): registrations accepted here are written to the shared
/// <see cref="IRouterRegistry"/>; the fleet's registrations, read back from it (a snapshot, then watch events), get a
/// FORWARD rule here too, so any router forwards a SYN for any registered service. The table keeps forwarding from
/// the last state while the registry is unreachable and catches up when it returns.
/// </summary>
public sealed partial class RouterController
{
    private RegistryMirror _mirror = new();
    private readonly Dictionary<string, FleetEntry> _fleet = new(StringComparer.Ordinal);
    private readonly List<RegistryChange> _changes = [];
    private IRouterRegistry? _registry;

    /// <summary>
    /// The registry shared with the other routers of a fleet, or null (default): registrations live in this router's
    /// memory only. Set before <see cref="Start"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The controller is started.</exception>
    public IRouterRegistry? Registry
    {
        get => _registry;
        set
        {
            if (!_socket.IsNone)
            {
                throw new InvalidOperationException("Set the registry before starting the router controller.");
            }

            _registry = value;
        }
    }

    /// <summary>The name this router writes as the accepting router of its registrations (<see cref="RouterControllerOptions.FleetName"/>, else its epoch in hex).</summary>
    public string FleetName => _options.FleetName ?? Epoch.ToString("x16", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Number of the fleet's registrations known from the registry.</summary>
    public int FleetRegistrationCount => _fleet.Count;

    /// <summary>The registry revision the fleet view reflects (0 before the first snapshot).</summary>
    public long FleetRevision => _mirror.Revision;

    /// <summary>The fleet's registrations as the registry holds them (each with the router that accepted it); empty without a registry.</summary>
    public IReadOnlyList<RegistryRecord> GetFleetRegistrations() => [.. _fleet.Values.Select(f => f.Record)];

    /// <summary>Applies every pending registry update (engine thread).</summary>
    private void PollRegistry(TimeSpan now)
    {
        if (_registry is null)
        {
            return;
        }

        while (_registry.TryTake(out var update))
        {
            _changes.Clear();
            if (update.Snapshot is { } snapshot)
            {
                _mirror.ApplySnapshot(update.Revision, snapshot, _changes);
            }
            else
            {
                _mirror.ApplyEvents(update.Events, _changes);
                _mirror.Advance(update.Revision);
            }

            foreach (var change in _changes)
            {
                OnRegistryChange(change, now);
            }

            if (update.Snapshot is not null)
            {
                // After a (re)snapshot: anything accepted here that the registry lost (written while it was
                // unreachable, or its lease ran out meanwhile) is written again.
                RepublishMissing(now);
            }
        }
    }

    private void OnRegistryChange(in RegistryChange change, TimeSpan now)
    {
        if (change.Key.StartsWith(RegistryCodec.DrainPrefix, StringComparison.Ordinal))
        {
            if (RegistryCodec.TryParseDrainKey(change.Key, out var host, out var prefix, out _))
            {
                ApplyDrain(host, prefix, change.NewValue is not null, now);
            }
            else
            {
                Counters.CountRegistryMalformed();
            }

            return;
        }

        if (!change.Key.StartsWith(RegistryCodec.RegistrationPrefix, StringComparison.Ordinal))
        {
            return;
        }

        RegistryRecord? record = null;
        if (change.NewValue is not null && !RegistryCodec.TryDecode(change.Key, change.NewValue, out record, out _))
        {
            Counters.CountRegistryMalformed();
        }

        if (_fleet.Remove(change.Key, out var old))
        {
            if (old.Installed is { } target)
            {
                ReleaseRule(old.Record.Prefix, target);
            }
        }

        if (record is not null)
        {
            var entry = new FleetEntry(record);
            _fleet.Add(change.Key, entry);
            ApplyFleetRule(entry, now);
            Counters.CountFleetApplied();
        }
        else if (change.NewValue is null && old is not null)
        {
            // Gone from the registry. If it was accepted here and the host still refreshes it here (for example its
            // lease ran out while the registry was unreachable), it is written again.
            if (old.Record.Router == FleetName && old.Record.RouterEpoch == Epoch
                && FindLocal(old.Record.Prefix, old.Record.Host) is { Removed: false } reg)
            {
                Publish(reg, now);
            }
        }
    }

    /// <summary>Makes the table match a fleet registration: a FORWARD rule toward its host unless it is draining.</summary>
    private void ApplyFleetRule(FleetEntry entry, TimeSpan now)
    {
        var r = entry.Record;
        ServiceTarget? desired = null;
        if (!r.Draining && !IsDrainedHere(r.Host, r.Prefix))
        {
            var iface = InterfaceFor(r.Host);
            if (iface >= 0)
            {
                desired = ServiceTarget.Forward(r.Host, iface);
            }
            else
            {
                Counters.CountNoInterface();
            }
        }

        if (entry.Installed is { } current && current != desired)
        {
            ReleaseRule(r.Prefix, current);
            entry.Installed = null;
        }

        if (desired is { } target && entry.Installed is null)
        {
            AcquireRule(r.Prefix, target, _options.RulePriority, r.Weight, now, registration: true);
            entry.Installed = target;
        }
    }

    private Registration? FindLocal(ServicePrefix prefix, LinkAddress host)
    {
        foreach (var peer in _peers.Values)
        {
            if (peer.Address == host && peer.Registrations.TryGetValue(prefix, out var reg))
            {
                return reg;
            }
        }

        return null;
    }

    /// <summary>Writes a local registration to the registry (new, changed, moved, or taken over from another router).</summary>
    private void Publish(Registration reg, TimeSpan now)
    {
        if (_registry is null)
        {
            return;
        }

        var record = new RegistryRecord
        {
            Prefix = reg.Prefix,
            Host = reg.Peer.Address,
            Weight = reg.Weight,
            Draining = reg.Draining,
            Transports = reg.Transports,
            Sender = reg.Peer.Sender,
            Router = FleetName,
            RouterEpoch = Epoch,
            LeaseMilliseconds = (uint)reg.Lease.TotalMilliseconds,
            WrittenAtUnixMilliseconds = _registry.UnixTimeMilliseconds,
        };
        _registry.Put(RegistryCodec.RegistrationKey(reg.Prefix, reg.Peer.Address), RegistryCodec.EncodeValue(record), reg.Peer.Sender, reg.Lease);
        Counters.CountRegistryWrites();
    }

    /// <summary>A local registration was refreshed unchanged: keep its lease alive, or write it again if the registry shows it held by another router (the host came back here).</summary>
    private void Refreshed(Registration reg, TimeSpan now)
    {
        if (_registry is null)
        {
            return;
        }

        // Written again only when the registry shows it held by another router or host incarnation (the host came
        // back here). A key merely missing from the view is usually our own write not yet echoed by the watch (a lost
        // one comes back through the deletion event or the next snapshot): rewriting it would feed a lagging registry.
        if (_fleet.TryGetValue(RegistryCodec.RegistrationKey(reg.Prefix, reg.Peer.Address), out var entry)
            && (entry.Record.Router != FleetName || entry.Record.RouterEpoch != Epoch || entry.Record.Sender != reg.Peer.Sender)
            && now - reg.PublishedAt > reg.Lease / 3)
        {
            reg.PublishedAt = now;
            Publish(reg, now);
            return;
        }

        _registry.KeepAlive(reg.Peer.Sender);
    }

    /// <summary>A local registration went (unregistered, expired, or its host moved): delete it if still ours; release the host's lease when it has none left.</summary>
    private void Unpublish(Registration reg, LinkAddress address)
    {
        if (_registry is null)
        {
            return;
        }

        _registry.Delete(RegistryCodec.RegistrationKey(reg.Prefix, address), reg.Peer.Sender);
        Counters.CountRegistryWrites();
        if (reg.Peer.Registrations.Count == 0)
        {
            _registry.Release(reg.Peer.Sender);
        }
    }

    private void RepublishMissing(TimeSpan now)
    {
        foreach (var peer in _peers.Values)
        {
            foreach (var reg in peer.Registrations.Values)
            {
                var key = RegistryCodec.RegistrationKey(reg.Prefix, peer.Address);
                if (!_fleet.TryGetValue(key, out var entry) || entry.Record.Sender != peer.Sender || entry.Record.Weight != reg.Weight
                    || entry.Record.Draining != reg.Draining)
                {
                    reg.PublishedAt = now;
                    Publish(reg, now);
                }
            }
        }
    }

    /// <summary>A drain appeared in (or left) the registry: apply it as if set here.</summary>
    private void ApplyDrain(LinkAddress host, ServicePrefix? prefix, bool draining, TimeSpan now)
    {
        if (draining ? _drains.Add((host, prefix)) : _drains.Remove((host, prefix)))
        {
            ReapplyDrains(host, prefix, now);
        }
    }

    private void ReapplyFleetDrains(LinkAddress host, ServicePrefix? prefix, TimeSpan now)
    {
        foreach (var entry in _fleet.Values)
        {
            if (Covers(host, entry.Record.Host) && (prefix is null || prefix.Value == entry.Record.Prefix))
            {
                ApplyFleetRule(entry, now);
            }
        }
    }

    private void StopFleet()
    {
        foreach (var entry in _fleet.Values)
        {
            entry.Installed = null; // Stop removes every rule of _rules
        }

        _fleet.Clear();
        _mirror = new RegistryMirror();
    }

    /// <summary>One registration of the fleet as the registry holds it, and the rule this router installed for it.</summary>
    private sealed class FleetEntry(RegistryRecord record)
    {
        public RegistryRecord Record { get; } = record;

        public ServiceTarget? Installed { get; set; }
    }
}
