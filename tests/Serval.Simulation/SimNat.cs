using Serval.Wire;

namespace Serval.Simulation;

/// <summary>
/// A port-rewriting NAT in front of one inside address: packets from <see cref="Inside"/> leave with the source
/// <see cref="External"/>; packets to the external address reach the inside host only on the current port, so a
/// rebinding (<see cref="Rebind"/>) strands replies sent to the old port.
/// </summary>
public sealed class SimNat(LinkAddress inside, LinkAddress external)
{
    /// <summary>The inside host's own address.</summary>
    public LinkAddress Inside { get; } = inside;

    /// <summary>The current external address and port.</summary>
    public LinkAddress External { get; private set; } = external;

    /// <summary>Packets dropped because they were sent to a stale external port.</summary>
    public long StaleDrops { get; private set; }

    /// <summary>Number of rebindings so far.</summary>
    public int Rebindings { get; private set; }

    /// <summary>Moves the external mapping to another port.</summary>
    public void Rebind(int port)
    {
        External = External.WithPort(port);
        Rebindings++;
    }

    /// <summary>Translates one packet; false when the NAT drops it.</summary>
    internal bool Translate(ref LinkAddress source, ref LinkAddress destination)
    {
        if (source == Inside)
        {
            source = External;
        }

        if (destination.SameAddress(External))
        {
            if (destination.Port != External.Port)
            {
                StaleDrops++;
                return false;
            }

            destination = Inside;
        }

        return true;
    }
}
