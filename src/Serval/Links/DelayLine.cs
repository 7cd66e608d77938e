using System.Diagnostics;
using Serval.Wire;

namespace Serval.Links;

/// <summary>Holds packets until their due time, then hands them to a receiver from its own thread.</summary>
internal sealed class DelayLine : IDisposable
{
    private readonly ILinkReceiver _receiver;
    private readonly PriorityQueue<Item, long> _queue = new();
    private readonly object _lock = new();
    private readonly Thread _thread;
    private long _sequence;
    private bool _stopping;

    public DelayLine(ILinkReceiver receiver, string name)
    {
        _receiver = receiver;
        _thread = new Thread(Run) { IsBackground = true, Name = $"serval delay {name}" };
        _thread.Start();
    }

    public void Add(LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit, TimeSpan delay)
    {
        var due = Stopwatch.GetTimestamp() + (long)(delay.TotalSeconds * Stopwatch.Frequency);
        lock (_lock)
        {
            if (_stopping || _queue.Count >= 65_536)
            {
                return;
            }

            _queue.Enqueue(new Item(source, destination, packet.ToArray(), hopLimit, _sequence++), due);
            Monitor.PulseAll(_lock);
        }
    }

    private void Run()
    {
        var ready = new List<Item>();
        while (true)
        {
            lock (_lock)
            {
                while (!_stopping)
                {
                    var now = Stopwatch.GetTimestamp();
                    if (_queue.TryPeek(out _, out var due) && due <= now)
                    {
                        break;
                    }

                    var wait = _queue.TryPeek(out _, out due)
                        ? (int)Math.Clamp((due - now) * 1000 / Stopwatch.Frequency + 1, 1, 1000)
                        : 1000;
                    Monitor.Wait(_lock, wait);
                }

                if (_stopping)
                {
                    return;
                }

                var t = Stopwatch.GetTimestamp();
                while (_queue.TryPeek(out _, out var d) && d <= t)
                {
                    ready.Add(_queue.Dequeue());
                }
            }

            foreach (var item in ready)
            {
                _receiver.Receive(item.Source, item.Destination, item.Data, item.HopLimit);
            }

            ready.Clear();
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _stopping = true;
            _queue.Clear();
            Monitor.PulseAll(_lock);
        }

        _thread.Join(TimeSpan.FromSeconds(2));
    }

    private readonly record struct Item(LinkAddress Source, LinkAddress Destination, byte[] Data, int HopLimit, long Sequence);
}
