namespace Serval.Stack.ControlPlane;

/// <summary>
/// A sans-I/O controller attached to one <see cref="Engine"/>, driven on the engine's thread by whoever drives the
/// engine (the runtime, the daemon, the simulator). The driver hands it every engine event it drains, calls
/// <see cref="Poll"/> when <see cref="NextTimeout"/> is reached, and polls the engine after either call because
/// the controller may have queued packets or changed rules.
/// </summary>
public interface IEngineController
{
    /// <summary>Reacts to an engine event (the driver passes every event it takes from <see cref="Engine.TryGetEvent"/>).</summary>
    void OnEvent(in EngineEvent engineEvent, TimeSpan now);

    /// <summary>Reads the controller's sockets and runs its due timers.</summary>
    void Poll(TimeSpan now);

    /// <summary>When <see cref="Poll"/> is next needed without new events; null when nothing is scheduled.</summary>
    TimeSpan? NextTimeout(TimeSpan now);
}
