using Serval.Simulation;
using Serval.Stack.ControlPlane;

namespace Serval.Stack.Tests.ControlPlane;

/// <summary>
/// Drives controllers next to a simulated host the way the runtime will: every engine event goes to every
/// controller, controllers are polled at their <see cref="IEngineController.NextTimeout"/>, and the engine is pumped
/// after each. <see cref="Kill"/> simulates <c>kill -9</c>: the controllers stop and the interface goes dark.
/// </summary>
internal sealed class ControlNode
{
    private readonly SimulatedNetwork _net;
    private readonly List<IEngineController> _controllers = [];
    private TimeSpan? _wakeAt;

    public ControlNode(SimulatedNetwork net, SimHost host)
    {
        _net = net;
        Host = host;
        host.OnEvent = e =>
        {
            if (Dead)
            {
                return;
            }

            foreach (var c in _controllers)
            {
                c.OnEvent(e, host.Now);
            }

            Arm();
        };
    }

    public SimHost Host { get; }

    public bool Dead { get; private set; }

    public TimeSpan Now => Host.Now;

    public T Add<T>(T controller)
        where T : IEngineController
    {
        _controllers.Add(controller);
        return controller;
    }

    /// <summary>Runs an action on the controllers or engine, then lets everything transmit and re-arms the wake-up.</summary>
    public T Do<T>(Func<T> action)
    {
        var r = action();
        Host.Pump();
        Arm();
        return r;
    }

    public void Do(Action action)
    {
        action();
        Host.Pump();
        Arm();
    }

    /// <summary>The process dies: controllers stop, the engine neither answers nor sends.</summary>
    public void Kill(int iface)
    {
        Dead = true;
        Host.Engine.SetInterfaceUp(iface, false, Now);
    }

    private void Arm()
    {
        if (Dead)
        {
            return;
        }

        TimeSpan? next = null;
        foreach (var c in _controllers)
        {
            if (c.NextTimeout(Now) is { } t && (next is null || t < next))
            {
                next = t;
            }
        }

        if (next is { } at && (_wakeAt is null || at < _wakeAt || _wakeAt < Now))
        {
            _wakeAt = at;
            _net.Schedule(at, Wake);
        }
    }

    private void Wake()
    {
        if (Dead || (_wakeAt is { } w && w > Now))
        {
            return;
        }

        _wakeAt = null;
        foreach (var c in _controllers)
        {
            c.Poll(Now);
        }

        Host.Pump();
        Arm();
    }
}
