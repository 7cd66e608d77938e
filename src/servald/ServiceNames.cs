using System.Collections.Concurrent;
using Serval.Stack.ControlPlane;
using Serval.Wire;

namespace Serval.Daemon;

/// <summary>
/// The service names servald knows: those it was told (<c>rules.add</c> with <c>name</c>, as servalctl sends when
/// given a name) and the control plane's own services, labelled as such. <c>rules.list</c>, <c>flows.list</c> and
/// <c>router.registrations</c> carry the name next to the serviceID; servalctl shows <c>name (short id)</c>.
/// A serviceID is a hash, so a name is only ever learnt, never derived; at most <see cref="Capacity"/> are kept.
/// </summary>
internal sealed class ServiceNames
{
    /// <summary>Most names remembered (the first ones stay).</summary>
    public const int Capacity = 4096;

    private readonly ConcurrentDictionary<ServiceId, string> _names = new();

    public ServiceNames()
    {
        _names[ControlProtocol.RouterServiceId] = "serval.router (control plane)";
        _names[ControlProtocol.AdvertiseServiceId] = "serval.router.advertise (control plane)";
        _names[ControlProtocol.SolicitServiceId] = "serval.router.solicit (control plane)";
    }

    /// <summary>Remembers <paramref name="name"/> for its serviceID; false when it does not name <paramref name="id"/>.</summary>
    public bool Learn(ServiceId id, string name)
    {
        if (ServiceId.FromName(name) != id)
        {
            return false;
        }

        if (_names.Count < Capacity || _names.ContainsKey(id))
        {
            _names.TryAdd(id, name);
        }

        return true;
    }

    /// <summary>The name of a whole serviceID (a /256 prefix), or null.</summary>
    public string? Find(ServicePrefix prefix) => prefix.Length == ServiceId.Bits ? Find(prefix.Id) : null;

    /// <summary>The name of <paramref name="id"/>, or null.</summary>
    public string? Find(ServiceId id) => _names.TryGetValue(id, out var name) ? name : null;
}
