using System.Diagnostics;
using System.Globalization;
using Serval.Stack;
using Serval.Stack.Services;
using Serval.Wire;

namespace Serval.Benchmarks;

/// <summary>
/// Two engines joined in memory on one thread, a bulk stream transfer through the whole stack (SAL + TCP, checksums,
/// packet emission and parsing): goodput, CPU per byte and allocation per segment in steady state.
/// </summary>
internal static class StreamSimBenchmark
{
    public static int Run(string[] args)
    {
        var totalBytes = args.Length > 0 ? long.Parse(args[0], CultureInfo.InvariantCulture) : 1L << 30;
        var service = ServiceId.FromName("bench.stream");
        var a = new Engine(EngineOptions.Default, new SeededRandomSource(1));
        var b = new Engine(EngineOptions.Default, new SeededRandomSource(2));
        var addrA = LinkAddress.Parse("10.0.0.1");
        var addrB = LinkAddress.Parse("10.0.0.2");
        var ai = a.AddInterface(new InterfaceConfig { Name = "mem", Address = addrA, Mtu = 9000 });
        var bi = b.AddInterface(new InterfaceConfig { Name = "mem", Address = addrB, Mtu = 9000 });
        var now = TimeSpan.FromSeconds(1);
        a.SetInterfaceUp(ai, true, now);
        b.SetInterfaceUp(bi, true, now);
        a.Services.Add(ServicePrefix.Default, ServiceTarget.Forward(addrB, ai));
        var toB = new MemoryWire(b, bi);
        var toA = new MemoryWire(a, ai);
        b.Listen(ServicePrefix.Exact(service), TransportProtocol.Stream, 8, now, out var listener);
        a.Connect(service, TransportProtocol.Stream, now, out var client);
        SocketHandle server = default;
        for (var i = 0; i < 100 && server.IsNone; i++)
        {
            Step();
            b.Accept(listener, out server);
        }

        var chunk = new byte[256 * 1024];
        new Random(3).NextBytes(chunk);
        var readBuf = new byte[256 * 1024];
        long sent = 0, received = 0;
        // Steady state: the first and the last eighth (at most 64 MiB each) are ramp-up and ramp-down — slow start,
        // and the end of the transfer where timers fire for the first time and packets of new sizes first come out of
        // the buffer pool. The figures cover the bytes in between.
        long edge = Math.Min(64L << 20, totalBytes / 8);
        long measuredFrom = -1, measuredTo = -1;
        long allocStart = 0, packetsStart = 0, alloc = 0, packets = 0;
        TimeSpan cpuStart = TimeSpan.Zero, cpu = TimeSpan.Zero;
        var wall = new Stopwatch();
        var guard = 0L;
        while (received < totalBytes && guard++ < 100_000_000)
        {
            if (sent < totalBytes)
            {
                a.Write(client, chunk.AsSpan(0, (int)Math.Min(chunk.Length, totalBytes - sent)), now, out var n);
                sent += n;
            }

            Step();
            while (b.Read(server, readBuf, now, out var r, out _) == ServalError.None && r > 0)
            {
                received += r;
            }

            if (measuredFrom < 0 && received >= edge)
            {
                measuredFrom = received;
                packetsStart = toB.Packets + toA.Packets;
                cpuStart = Process.GetCurrentProcess().TotalProcessorTime;
                allocStart = GC.GetAllocatedBytesForCurrentThread();
                wall.Start();
            }
            else if (measuredFrom >= 0 && measuredTo < 0 && received >= totalBytes - edge)
            {
                wall.Stop();
                // Allocation first: reading the process's CPU time allocates (the Process object and /proc parsing).
                alloc = GC.GetAllocatedBytesForCurrentThread() - allocStart;
                cpu = Process.GetCurrentProcess().TotalProcessorTime - cpuStart;
                packets = toB.Packets + toA.Packets - packetsStart;
                measuredTo = received;
            }
        }

        if (measuredTo < 0)
        {
            Console.Error.WriteLine($"stream-sim: transfer did not complete ({received} of {totalBytes} bytes)");
            return 1;
        }

        var bytes = measuredTo - measuredFrom;
        // Goodput per CPU-second of the one thread that runs both engines: on a shared machine the wall clock also
        // counts time the thread spent waiting for a core (both are printed on stderr).
        var gbps = bytes * 8 / cpu.TotalSeconds / 1e9;
        var nsPerByte = cpu.TotalNanoseconds / bytes;
        var allocPerSegment = packets == 0 ? 0 : (double)alloc / packets;
        Console.Error.WriteLine($"transferred {received} bytes; measured {bytes} bytes in {wall.Elapsed.TotalSeconds:F2} s wall ({bytes * 8 / wall.Elapsed.TotalSeconds / 1e9:F2} Gbit/s), {cpu.TotalSeconds:F2} s CPU, {packets} packets, {alloc} bytes allocated");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"stream-sim: goodput_gbps={gbps:F2} cpu_ns_per_byte={nsPerByte:F3} alloc_bytes_per_segment={allocPerSegment:F1}"));
        return received >= totalBytes ? 0 : 1;

        void Step()
        {
            // Virtual time advances 10 µs per step: a fast, loss-free link; timers still run.
            now += TimeSpan.FromTicks(100);
            a.Poll(now, toB);
            toB.Deliver(now);
            b.Poll(now, toA);
            toA.Deliver(now);
            while (a.TryGetEvent(out _))
            {
            }

            while (b.TryGetEvent(out _))
            {
            }
        }
    }
}
