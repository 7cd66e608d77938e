using Serval.Wire;

namespace Serval.Links;

/// <summary>
/// A decorator that impairs the packets its inner link receives — loss, duplication, delay and jitter (which
/// reorders) — with seeded random choices (<see cref="FaultInjectionOptions"/>). Impairing the receive side of every
/// host is the same, for the network, as impairing the path.
/// </summary>
public sealed class FaultInjectionLink : ServalLink
{
    private readonly ServalLink _inner;
    private readonly FaultInjectionOptions _options;
    private readonly Random _random;
    private readonly Lock _lock = new();
    private DelayLine? _delay;
    private long _dropped;
    private long _duplicated;

    /// <summary>Impairs what <paramref name="inner"/> receives according to <paramref name="options"/>.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public FaultInjectionLink(ServalLink inner, FaultInjectionOptions options)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _inner = inner;
        _options = options;
        _random = new Random(options.Seed);
    }

    /// <summary>Packets dropped on purpose.</summary>
    public long PacketsDropped => Volatile.Read(ref _dropped);

    /// <summary>Packets delivered twice on purpose.</summary>
    public long PacketsDuplicated => Volatile.Read(ref _duplicated);

    /// <inheritdoc/>
    public override string Name => _inner.Name + " +faults";

    /// <inheritdoc/>
    public override LinkAddress LocalAddress => _inner.LocalAddress;

    /// <inheritdoc/>
    public override LinkAddress BroadcastAddress => _inner.BroadcastAddress;

    /// <inheritdoc/>
    public override int Mtu => _inner.Mtu;

    /// <inheritdoc/>
    public override void Start(ILinkReceiver receiver)
    {
        ArgumentNullException.ThrowIfNull(receiver);
        if (_options.Delay > TimeSpan.Zero || _options.Jitter > TimeSpan.Zero)
        {
            _delay = new DelayLine(receiver, _inner.Name);
        }

        _inner.Start(new Impairer(this, receiver));
    }

    /// <inheritdoc/>
    public override bool RewritesSource => _inner.RewritesSource;

    /// <inheritdoc/>
    public override void Send(LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit) => _inner.Send(source, destination, packet, hopLimit);

    /// <inheritdoc/>
    public override void Flush() => _inner.Flush();

    internal override void AttachLogger(Microsoft.Extensions.Logging.ILogger logger) => _inner.AttachLogger(logger);

    internal override void AttachReceiveThreadStart(Action start) => _inner.AttachReceiveThreadStart(start);

    /// <inheritdoc/>
    internal override System.Net.IPAddress? OsAddress => _inner.OsAddress;

    /// <inheritdoc/>
    internal override void AttachNetworkErrorHandler(Action handler) => _inner.AttachNetworkErrorHandler(handler);

    private void OnReceive(ILinkReceiver next, LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit)
    {
        int copies;
        TimeSpan d1, d2;
        lock (_lock)
        {
            if (_options.LossRate > 0 && _random.NextDouble() < _options.LossRate)
            {
                _dropped++;
                return;
            }

            copies = _options.DuplicationRate > 0 && _random.NextDouble() < _options.DuplicationRate ? 2 : 1;
            if (copies == 2)
            {
                _duplicated++;
            }

            d1 = _options.Delay + (_options.Jitter * _random.NextDouble());
            d2 = _options.Delay + (_options.Jitter * _random.NextDouble());
        }

        for (var i = 0; i < copies; i++)
        {
            if (_delay is { } line)
            {
                line.Add(source, destination, packet, hopLimit, i == 0 ? d1 : d2);
            }
            else
            {
                next.Receive(source, destination, packet, hopLimit);
            }
        }
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inner.Dispose();
            _delay?.Dispose();
        }

        base.Dispose(disposing);
    }

    private sealed class Impairer(FaultInjectionLink link, ILinkReceiver next) : ILinkReceiver
    {
        public void Receive(LinkAddress source, LinkAddress destination, ReadOnlySpan<byte> packet, int hopLimit) =>
            link.OnReceive(next, source, destination, packet, hopLimit);
    }
}
