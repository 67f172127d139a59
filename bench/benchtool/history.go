package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/uneventful/uneventful/memory"
)

// historySection renders the measurements of bench/history.sh, or "" when
// they were not taken.
func (r *results) historySection() string {
	h := filepath.Join(r.dir, "history")
	if _, err := os.Stat(h); err != nil {
		return ""
	}
	text := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(h, name))
		return strings.TrimSpace(string(b))
	}
	num := func(name string) float64 {
		f, err := strconv.ParseFloat(text(name), 64)
		if err != nil {
			return math.NaN()
		}
		return f
	}
	run := func(name string) *loadRun {
		b, err := os.ReadFile(filepath.Join(h, name+".json"))
		if err != nil {
			return nil
		}
		var ru loadRun
		if json.Unmarshal(b, &ru) != nil {
			return nil
		}
		var ok int64
		for code, n := range ru.Status {
			if strings.HasPrefix(code, "2") {
				ok += n
			}
		}
		ru.failed = ru.Requests - ok
		if ru.Duration > 0 {
			ru.ok = float64(ok) / ru.Duration
		}
		return &ru
	}
	fill := func(name string) string {
		var f struct {
			Events  int     `json:"events"`
			Seconds float64 `json:"seconds"`
		}
		if json.Unmarshal([]byte(text(name)), &f) != nil || f.Seconds == 0 {
			return "?"
		}
		return fmt.Sprintf("%s events in %.0f s, %s/s", fmtRate(float64(f.Events)), f.Seconds, fmtRate(float64(f.Events)/f.Seconds))
	}
	events, wallets := text("events"), text("wallets")

	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("### Long histories (`bench/run --history`)\n\n")
	p("One wallet with %s accepted credits, appended straight to a fresh SQLite\n", withCommas(events))
	p("event store by `bench/benchtool fill` (%s, sync off: it is setup),\n", fill("fill-long.json"))
	p("then served by `serve`:\n\n")
	p("| measurement | value |\n| --- | --- |\n")
	p("| restart to ready (`/readyz` 200), store of %s events | %s ms |\n", withCommas(events), text("restart-long.ms"))
	p("| restart to ready, empty store | %s ms |\n", text("restart-empty.ms"))
	p("| then the first balance of the long wallet | %s ms |\n", text("first-balance.ms"))
	for _, where := range []string{"first", "middle", "end"} {
		for _, c := range conns {
			if ru := run(fmt.Sprintf("page-%s-%d", where, c)); ru != nil {
				p("| page of 50 transactions at the %s, %d conn%s | p50 %s, p99 %s, %s pages/s, %d not 2xx |\n", where, c, plural(c),
					fmtUS(ru.Latency.P50), fmtUS(ru.Latency.P99), fmtRate(ru.ok), ru.failed)
			}
		}
	}
	for _, c := range conns {
		var ratios, fresh, long, fp50, lp50 []float64
		for round := 1; round <= 20; round++ {
			f, l := run(fmt.Sprintf("credit-fresh-%d.r%d", c, round)), run(fmt.Sprintf("credit-long-%d.r%d", c, round))
			if f == nil || l == nil || f.ok == 0 {
				continue
			}
			ratios, fresh, long = append(ratios, l.ok/f.ok), append(fresh, f.ok), append(long, l.ok)
			fp50, lp50 = append(fp50, f.Latency.P50), append(lp50, l.Latency.P50)
		}
		if len(ratios) == 0 {
			continue
		}
		p("| credit one wallet, %d conn%s: the long wallet | %s/s, p50 %s |\n", c, plural(c), fmtRate(median(long)), fmtUS(median(lp50)))
		p("| credit one wallet, %d conn%s: a fresh wallet | %s/s, p50 %s |\n", c, plural(c), fmtRate(median(fresh)), fmtUS(median(fp50)))
		q := ratio{median(ratios), slices.Min(ratios), slices.Max(ratios)}
		p("| credit throughput, long wallet vs fresh, %d conn%s (median of %d rounds' ratios) | **%s** |\n", c, plural(c), len(ratios), q)
	}
	p("\n%s wallets with one credit each (%s), served by `serve`:\n\n", withCommas(wallets), fill("fill-many.json"))
	p("| measurement | value |\n| --- | --- |\n")
	p("| restart to ready | %s ms |\n", text("restart-many.ms"))
	rssReady, rssLoaded := num("rss-ready.bytes"), num("rss-loaded.bytes")
	p("| RSS when ready | %s |\n", mib(rssReady))
	var touch struct {
		OK      int64   `json:"ok"`
		Failed  int64   `json:"failed"`
		Seconds float64 `json:"seconds"`
	}
	if json.Unmarshal([]byte(text("touch.json")), &touch) == nil {
		p("| read every wallet's balance once (64 connections) | %s answered 200, %d failed, in %.0f s |\n", withCommas(strconv.FormatInt(touch.OK, 10)), touch.Failed, touch.Seconds)
	}
	p("| RSS after reading every wallet (the read model holds at most %s) | %s |\n", withCommas(strconv.Itoa(memory.DefaultMaxEntities)), mib(rssLoaded))
	touch.OK, touch.Failed, touch.Seconds = 0, 0, 0
	if json.Unmarshal([]byte(text("credit.json")), &touch) == nil {
		p("| then credit every wallet once through the writer (64 connections) | %s answered 200, %d failed, in %.0f s |\n", withCommas(strconv.FormatInt(touch.OK, 10)), touch.Failed, touch.Seconds)
	}
	p("| **RSS after the writer touched every wallet** (target < 512 MiB) | **%s** |\n", mib(num("rss-credited.bytes")))
	heap := func(name string) float64 {
		var m map[string]float64
		if json.Unmarshal([]byte(text(name)), &m) != nil {
			return math.NaN()
		}
		if v, ok := m["HeapAlloc"]; ok {
			return v
		}
		return math.NaN()
	}
	heapReady, heapLoaded := heap("heap-ready.json"), heap("heap-loaded.json")
	p("| live Go heap after a GC: when ready, after reading every wallet, after crediting every wallet | %s, %s, %s |\n", mib(heapReady), mib(heapLoaded), mib(heap("heap-credited.json")))
	p("\n")
	var rows []string
	for _, name := range []string{"long", "many"} {
		var r struct {
			Records float64 `json:"records"`
			Seconds float64 `json:"seconds"`
			Rate    float64 `json:"records_per_second"`
		}
		if json.Unmarshal([]byte(text("rebuild-"+name+".json")), &r) != nil {
			continue
		}
		what := map[string]string{"long": "one wallet with " + withCommas(events) + " credits", "many": withCommas(wallets) + " wallets with one credit each"}[name]
		rows = append(rows, fmt.Sprintf("| %s | %s records in %.1f s: **%s records/s** |\n", what, withCommas(strconv.FormatFloat(r.Records, 'f', 0, 64)), r.Seconds, fmtRate(r.Rate)))
	}
	if len(rows) > 0 {
		p("A full rebuild of the Redis read model from each store (`benchtool rebuild`: the catch-up projector from position 0 into an empty private redis-server; target 300,000 records/s):\n\n")
		p("| store | rebuild |\n| --- | --- |\n")
		for _, r := range rows {
			p("%s", r)
		}
		p("\n")
	}
	return b.String()
}

func mib(b float64) string {
	if math.IsNaN(b) {
		return "?"
	}
	return fmt.Sprintf("%.0f MiB", b/(1<<20))
}

func withCommas(s string) string {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	return fmtRate(f)
}
