using System.Globalization;
using System.Text;

namespace Serval.Experiments;

/// <summary>
/// A time-series figure: named series of (seconds, value) points and marked events, written as a CSV (one row per sample:
/// series,time_s,value; events as rows of series "event") and as a PNG line plot with title, axis labels (units),
/// a legend and a vertical line per event.
/// </summary>
internal sealed class Figure(string name, string title, string xLabel, string yLabel)
{
    private readonly List<(string Series, double Time, double Value)> _points = [];
    private readonly List<(double Time, string Label)> _events = [];
    private readonly object _gate = new();

    /// <summary>The file name stem (fig7 -> fig7.csv, fig7.png).</summary>
    public string Name { get; } = name;

    /// <summary>Adds one sample to a series.</summary>
    public void Add(string series, double time, double value)
    {
        lock (_gate)
        {
            _points.Add((series, time, value));
        }
    }

    /// <summary>Marks an event (drawn as a labelled vertical line).</summary>
    public void Mark(double time, string label)
    {
        lock (_gate)
        {
            _events.Add((time, label));
        }
    }

    /// <summary>The samples of one series in time order.</summary>
    public IReadOnlyList<(double Time, double Value)> Series(string series)
    {
        lock (_gate)
        {
            return [.. _points.Where(p => p.Series == series).OrderBy(p => p.Time).Select(p => (p.Time, p.Value))];
        }
    }

    /// <summary>Writes NAME.csv and NAME.png into <paramref name="directory"/>; returns both paths.</summary>
    public (string Csv, string Png) Save(string directory, int width = 1000, int height = 560)
    {
        lock (_gate)
        {
            Directory.CreateDirectory(directory);
            var csv = Path.Combine(directory, Name + ".csv");
            var text = new StringBuilder("series,time_s,value\n");
            foreach (var (series, time, value) in _points.OrderBy(p => p.Series, StringComparer.Ordinal).ThenBy(p => p.Time))
            {
                text.Append(CultureInfo.InvariantCulture, $"{series},{time:0.###},{value:0.####}\n");
            }

            foreach (var (time, label) in _events.OrderBy(e => e.Time))
            {
                text.Append(CultureInfo.InvariantCulture, $"event,{time:0.###},\"{label}\"\n");
            }

            File.WriteAllText(csv, text.ToString());

            var plot = new ScottPlot.Plot();
            foreach (var group in _points.GroupBy(p => p.Series).OrderBy(g => g.Key, StringComparer.Ordinal))
            {
                var ordered = group.OrderBy(p => p.Time).ToArray();
                var line = plot.Add.Scatter(ordered.Select(p => p.Time).ToArray(), ordered.Select(p => p.Value).ToArray());
                line.LegendText = group.Key;
                line.MarkerSize = 0;
                line.LineWidth = 2;
            }

            foreach (var (time, label) in _events)
            {
                var marker = plot.Add.VerticalLine(time);
                marker.LineStyle.Pattern = ScottPlot.LinePattern.Dashed;
                marker.Color = ScottPlot.Colors.Gray;
                marker.LabelText = label;
            }

            plot.Title(title);
            plot.XLabel(xLabel);
            plot.YLabel(yLabel);
            plot.ShowLegend(ScottPlot.Alignment.UpperRight);
            var png = Path.Combine(directory, Name + ".png");
            plot.SavePng(png, width, height);
            return (csv, png);
        }
    }
}
