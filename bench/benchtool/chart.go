package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// chart draws two panels of grouped bars, one group per row and one bar per
// number of connections: throughput, and p99 latency, both on log scales
// (the figures span three orders of magnitude). It needs no plotting
// library: the SVG is written by hand.
func (r *results) chart() string {
	const (
		width   = 960
		left    = 90
		right   = 20
		panelH  = 250
		top1    = 78
		gap     = 110
		barW    = 34
		labelsH = 40
	)
	colors := map[int]string{1: "#9ecae1", 64: "#2171b5"}
	var b strings.Builder
	height := top1 + 2*panelH + gap + labelsH + 20
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	title := "uneventful: wallet over HTTP, closed loop, " + r.metaOr("date", "")
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	sub := fmt.Sprintf("medians of %d round%s; the load generator shares the machine's %s cores", r.rounds, plural(r.rounds), r.metaOr("nproc", "2"))
	fmt.Fprintf(&b, `<text x="%d" y="42" fill="#555">%s</text>`+"\n", left, html.EscapeString(sub))
	// Legend.
	lx := width - right - 230
	for i, c := range conns {
		x := lx + i*115
		fmt.Fprintf(&b, `<rect x="%d" y="12" width="14" height="14" fill="%s"/><text x="%d" y="24">%d connection%s</text>`+"\n", x, colors[c], x+20, c, plural(c))
	}

	groupW := float64(width-left-right) / float64(len(rows))
	panel := func(top int, title, unit string, value func(*cell) float64, format func(float64) string) {
		var lo, hi = math.Inf(1), math.Inf(-1)
		for _, ce := range r.cells {
			if v := value(ce); v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
		if math.IsInf(lo, 0) {
			lo, hi = 1, 10
		}
		lo = math.Pow(10, math.Floor(math.Log10(lo)))
		hi = math.Pow(10, math.Ceil(math.Log10(hi*1.5)))
		y := func(v float64) float64 {
			return float64(top+panelH) - float64(panelH)*(math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", left, top-10, html.EscapeString(title))
		// Grid: each power of ten, and 2 and 5 times it, fainter.
		for d := lo; d <= hi*1.001; d *= 10 {
			for _, m := range []float64{1, 2, 5} {
				v := d * m
				if v > hi*1.001 {
					break
				}
				yy := y(v)
				stroke, dash := "#bbb", ""
				if m != 1 {
					stroke, dash = "#e5e5e5", ` stroke-dasharray="3,3"`
				}
				fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s"%s/>`+"\n", left, width-right, yy, yy, stroke, dash)
				if m == 1 || m == 5 {
					fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#444">%s</text>`+"\n", left-6, yy+4, format(v))
				}
			}
		}
		fmt.Fprintf(&b, `<text transform="translate(20,%d) rotate(-90)" text-anchor="middle" fill="#444">%s</text>`+"\n", top+panelH/2, html.EscapeString(unit))
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>`+"\n", left, width-right, top+panelH, top+panelH)
		for i, rw := range rows {
			gx := float64(left) + groupW*float64(i)
			for j, c := range conns {
				x := gx + groupW/2 - barW + float64(j*barW)
				ce := r.get(rw.id, c)
				if ce == nil || value(ce) <= 0 {
					fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#999">n/a</text>`+"\n", x+barW/2, top+panelH-6)
					continue
				}
				v := value(ce)
				yy := y(v)
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%d" height="%.1f" fill="%s"><title>%s, %d conn: %s</title></rect>`+"\n",
					x, yy, barW-2, float64(top+panelH)-yy, colors[c], html.EscapeString(rw.short), c, format(v))
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10.5">%s</text>`+"\n", x+barW/2-1, yy-4, format(v))
			}
		}
	}
	panel(top1, "Throughput (2xx answers per second; log scale; higher is better)", "requests/s",
		func(c *cell) float64 { return c.ok }, formatCount)
	panel(top1+panelH+gap, "p99 latency (log scale; lower is better)", "p99 latency",
		func(c *cell) float64 { return c.p99 }, formatLatency)
	// Row names under each panel.
	for _, base := range []int{top1 + panelH, top1 + 2*panelH + gap} {
		for i, rw := range rows {
			cx := float64(left) + groupW*(float64(i)+0.5)
			words := strings.SplitN(rw.short, ", ", 2)
			for k, w := range words {
				if k > 0 {
					w = strings.TrimSpace(w)
				}
				fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", cx, base+16+14*k, html.EscapeString(w))
			}
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func formatCount(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.0fk", v/1000)
	case v >= 1000:
		return trim(fmt.Sprintf("%.1f", v/1000)) + "k"
	case v >= 10:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

// formatLatency shows microseconds in a fitting unit.
func formatLatency(us float64) string {
	switch {
	case us >= 1e6:
		return trim(fmt.Sprintf("%.1f", us/1e6)) + " s"
	case us >= 1000:
		if us >= 10000 {
			return fmt.Sprintf("%.0f ms", us/1000)
		}
		return trim(fmt.Sprintf("%.1f", us/1000)) + " ms"
	default:
		return fmt.Sprintf("%.0f µs", us)
	}
}

func trim(s string) string { return strings.TrimSuffix(s, ".0") }
