package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A row is one thing measured, at each number of connections.
type row struct {
	id    string // file name stem under cells/
	label string // in the table
	short string // on the chart
	get   bool   // a GET row: compared with the bare handler
}

var rows = []row{
	{"bare", "GET balance, bare `net/http` handler (baseline)", "bare net/http GET", true},
	{"serve-get", "GET balance through `serve` (in-process read model)", "serve GET", true},
	{"redis-get", "GET balance through `server` + Redis", "server+Redis GET", true},
	{"post-1fsync", "POST credit, `serve --group-commit=false` (one fsync per command, baseline)", "POST, 1 fsync/command", false},
	{"post-gc", "POST credit, `serve` (group commit, durable)", "POST, group commit", false},
	{"post-nosync", "POST credit, `serve --unsafe-no-sync` (group commit, synchronous=OFF: the ceiling, not durable)", "POST, sync=OFF (ceiling)", false},
}

var conns = []int{1, 64}

// loadRun is what `uneventful load --json` printed for one row at one number of
// connections in one round.
type loadRun struct {
	Requests int64            `json:"requests"`
	Duration float64          `json:"duration_s"`
	Status   map[string]int64 `json:"status"`
	Latency  struct {
		P50 float64 `json:"p50"`
		P99 float64 `json:"p99"`
	} `json:"latency_us"`

	ok     float64 // 2xx answers per second
	failed int64   // answers other than 2xx, and transport errors
	cpuUS  float64 // the server processes' CPU time per request, µs; NaN if not measured
}

// cell is one row at one number of connections: its runs, one per round,
// and their medians.
type cell struct {
	runs              map[int]*loadRun // by round
	ok, p50, p99, cpu float64          // medians over the rounds
	failed            int64            // over all rounds
}

type results struct {
	dir    string
	rounds int
	cells  map[string]*cell  // row-conns
	skip   map[string]string // row: why not measured
	fsync  *fsyncResult      // every sample of every fsync-*.json
	meta   map[string]string // meta/<name>: text
}

func key(id string, c int) string { return id + "-" + strconv.Itoa(c) }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func load(dir string) (*results, error) {
	r := &results{dir: dir, cells: map[string]*cell{}, skip: map[string]string{}, meta: map[string]string{}}
	for _, rw := range rows {
		if b, err := os.ReadFile(filepath.Join(dir, "cells", rw.id+".skip")); err == nil {
			r.skip[rw.id] = strings.TrimSpace(string(b))
		}
		for _, c := range conns {
			files, _ := filepath.Glob(filepath.Join(dir, "cells", key(rw.id, c)+".r*.json"))
			if len(files) == 0 {
				continue
			}
			ce := &cell{runs: map[int]*loadRun{}}
			var oks, p50s, p99s, cpus []float64
			for _, f := range files {
				round, err := strconv.Atoi(strings.TrimSuffix(f[strings.LastIndex(f, ".r")+2:], ".json"))
				if err != nil {
					return nil, fmt.Errorf("%s: no round number", f)
				}
				b, err := os.ReadFile(f)
				if err != nil {
					return nil, err
				}
				var ru loadRun
				if err := json.Unmarshal(b, &ru); err != nil {
					return nil, fmt.Errorf("%s: %w", f, err)
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
				ru.cpuUS = math.NaN()
				if b, err := os.ReadFile(strings.TrimSuffix(f, ".json") + ".cpu"); err == nil && ru.Requests > 0 {
					// "ticks clk_tck" of the server processes during the run.
					var ticks, hz float64
					if _, err := fmt.Sscan(string(b), &ticks, &hz); err == nil && hz > 0 {
						ru.cpuUS = ticks / hz * 1e6 / float64(ru.Requests)
						cpus = append(cpus, ru.cpuUS)
					}
				}
				ce.runs[round] = &ru
				ce.failed += ru.failed
				oks, p50s, p99s = append(oks, ru.ok), append(p50s, ru.Latency.P50), append(p99s, ru.Latency.P99)
				r.rounds = max(r.rounds, round)
			}
			ce.ok, ce.p50, ce.p99, ce.cpu = median(oks), median(p50s), median(p99s), median(cpus)
			r.cells[key(rw.id, c)] = ce
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "meta", "fsync-*.json"))
	var samples []float64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var fr fsyncResult
		if err := json.Unmarshal(b, &fr); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		samples = append(samples, fr.Samples...)
	}
	if len(samples) > 0 {
		fr := summariseSamples(samples)
		r.fsync = &fr
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "meta"))
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(dir, "meta", e.Name())); err == nil {
			r.meta[e.Name()] = strings.TrimSpace(string(b))
		}
	}
	return r, nil
}

func (r *results) get(id string, c int) *cell { return r.cells[key(id, c)] }

// ratio is the median over the rounds of a's 2xx throughput over b's in the
// same round, with the lowest and highest; NaN when not measured.
type ratio struct{ med, lo, hi float64 }

func (r *results) ratio(a, b string, c int) ratio {
	x, y := r.get(a, c), r.get(b, c)
	none := ratio{math.NaN(), math.NaN(), math.NaN()}
	if x == nil || y == nil {
		return none
	}
	var rs []float64
	for round, xr := range x.runs {
		if yr := y.runs[round]; yr != nil && yr.ok > 0 {
			rs = append(rs, xr.ok/yr.ok)
		}
	}
	if len(rs) == 0 {
		return none
	}
	return ratio{median(rs), slices.Min(rs), slices.Max(rs)}
}

func (q ratio) String() string {
	if math.IsNaN(q.med) {
		return "–"
	}
	if q.lo == q.hi {
		return fmt.Sprintf("%.2fx", q.med)
	}
	return fmt.Sprintf("%.2fx [%.2f–%.2f]", q.med, q.lo, q.hi)
}

func fmtRate(f float64) string {
	switch {
	case f >= 1000:
		s := strconv.FormatFloat(math.Round(f), 'f', 0, 64)
		for i := len(s) - 3; i > 0; i -= 3 {
			s = s[:i] + "," + s[i:]
		}
		return s
	case f >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	default:
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
}

func fmtUS(us float64) string {
	switch {
	case us >= 1000:
		return strconv.FormatFloat(us/1000, 'f', 2, 64) + " ms"
	default:
		return strconv.FormatFloat(us, 'f', 0, 64) + " µs"
	}
}

// table renders the results table.
func (r *results) table() string {
	var b strings.Builder
	b.WriteString("| what | conns | throughput (2xx/s) | p50 | p99 | vs bare handler | vs 1 fsync/command | vs sync=OFF | server CPU per request | not 2xx |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, rw := range rows {
		for _, c := range conns {
			ce := r.get(rw.id, c)
			if ce == nil {
				why := r.skip[rw.id]
				if why == "" {
					why = "not measured"
				}
				fmt.Fprintf(&b, "| %s | %d | %s | | | | | | | |\n", rw.label, c, why)
				continue
			}
			vsBare, vs1, vsOff := "", "", ""
			if rw.get {
				if rw.id != "bare" {
					vsBare = r.ratio(rw.id, "bare", c).String()
				}
			} else {
				if rw.id != "post-1fsync" {
					vs1 = r.ratio(rw.id, "post-1fsync", c).String()
				}
				if rw.id != "post-nosync" {
					vsOff = r.ratio(rw.id, "post-nosync", c).String()
				}
			}
			cpu := ""
			if !math.IsNaN(ce.cpu) {
				cpu = fmtUS(ce.cpu)
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %d |\n", rw.label, c, fmtRate(ce.ok),
				fmtUS(ce.p50), fmtUS(ce.p99), vsBare, vs1, vsOff, cpu, ce.failed)
		}
	}
	return b.String()
}

// target is one of the targets, judged on this run.
type target struct {
	name, want, got string
	met             *bool // nil: not measured
	detail          string
}

func (r *results) targets() []target {
	var ts []target
	judgeRatio := func(name, want string, q ratio, min float64, against string) {
		t := target{name: name, want: want}
		if got := q.med; math.IsNaN(got) {
			t.got = "not measured"
		} else {
			ok := got >= min
			t.met = &ok
			t.got = q.String() + " " + against
			if !ok {
				t.detail = fmt.Sprintf("short by %.0f%%", 100*(1-got/min))
			}
		}
		ts = append(ts, t)
	}
	judgeRatio("GET balance through `serve`, 64 connections", "≥ 0.85x the bare handler", r.ratio("serve-get", "bare", 64), 0.85, "the bare handler")
	judgeRatio("GET balance through `server` + Redis, 64 connections", "≥ 0.6x the bare handler", r.ratio("redis-get", "bare", 64), 0.6, "the bare handler")
	judgeRatio("Durable POST credit (group commit), 64 connections", "≥ 5x one fsync per command", r.ratio("post-gc", "post-1fsync", 64), 5, "one fsync per command")
	judgeRatio("Durable POST credit (group commit), 64 connections", "≥ 0.7x synchronous=OFF", r.ratio("post-gc", "post-nosync", 64), 0.7, "synchronous=OFF")

	t := target{name: "POST credit, 1 connection, p50", want: "≤ one fsync + 0.5 ms"}
	if ce := r.get("post-gc", 1); ce != nil && r.fsync != nil {
		limit := r.fsync.P50 + 500
		ok := ce.p50 <= limit
		t.met = &ok
		t.got = fmt.Sprintf("%s (fsync p50 %s, so ≤ %s)", fmtUS(ce.p50), fmtUS(r.fsync.P50), fmtUS(limit))
		if !ok {
			t.detail = fmt.Sprintf("over by %s", fmtUS(ce.p50-limit))
		}
	} else {
		t.got = "not measured"
	}
	ts = append(ts, t)
	return ts
}

func (r *results) targetTable() string {
	var b strings.Builder
	b.WriteString("| target | wanted | measured | verdict |\n| --- | --- | --- | --- |\n")
	for _, t := range r.targets() {
		verdict := "not measured"
		if t.met != nil {
			verdict = "**met**"
			if !*t.met {
				verdict = "**missed**, " + t.detail
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.name, t.want, t.got, verdict)
	}
	return b.String()
}

// machine describes the machine from /proc and the Go runtime.
func (r *results) machine() string {
	cpu := "unknown"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	mem := "unknown"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if kb, err := strconv.ParseFloat(strings.Fields(v)[0], 64); err == nil {
					mem = fmt.Sprintf("%.1f GiB", kb/(1<<20))
				}
			}
		}
	}
	kernel := "unknown"
	var u syscall.Utsname
	if err := syscall.Uname(&u); err == nil {
		kernel = utsString(u.Sysname[:]) + " " + utsString(u.Release[:])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| | |\n| --- | --- |\n")
	fmt.Fprintf(&b, "| date | %s |\n", r.metaOr("date", time.Now().UTC().Format("2006-01-02 15:04 UTC")))
	fmt.Fprintf(&b, "| cores (`nproc`) | %d, shared by the load generator and every server process |\n", runtime.NumCPU())
	fmt.Fprintf(&b, "| CPU | %s |\n", cpu)
	fmt.Fprintf(&b, "| memory | %s |\n", mem)
	fmt.Fprintf(&b, "| kernel | %s |\n", kernel)
	fmt.Fprintf(&b, "| Go | %s |\n", r.metaOr("go", runtime.Version()))
	if v := r.meta["revision"]; v != "" {
		fmt.Fprintf(&b, "| code measured | %s |\n", v)
	}
	fmt.Fprintf(&b, "| data directory | %s |\n", r.metaOr("disk", "unknown"))
	if r.fsync != nil {
		fmt.Fprintf(&b, "| disk: 4 KiB append + fsync | p50 %s, p90 %s, p99 %s (%d rounds) |\n",
			fmtUS(r.fsync.P50), fmtUS(r.fsync.P90), fmtUS(r.fsync.P99), r.fsync.N)
	}
	fmt.Fprintf(&b, "| load average (1, 5, 15 min) at start | %s |\n", r.metaOr("loadavg.start", "unknown"))
	fmt.Fprintf(&b, "| load average at end | %s |\n", r.metaOr("loadavg.end", "unknown"))
	if v := r.meta["other"]; v != "" {
		fmt.Fprintf(&b, "| other processes over 5%% CPU at start | %s |\n", v)
	}
	return b.String()
}

func (r *results) metaOr(name, def string) string {
	if v := r.meta[name]; v != "" {
		return v
	}
	return def
}

func utsString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

// report prints the table and, with -out, writes the Markdown page and its
// chart.
func report(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	out := fs.String("out", "", "write the Markdown page to this file")
	svg := fs.String("svg", "", "write the chart to this file (linked from the page by its base name)")
	notes := fs.String("notes", "", "a Markdown file of analysis to include in the page")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: benchtool report [-out FILE] [-svg FILE] [-notes FILE] WORKDIR")
	}
	r, err := load(fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Print(r.table())
	fmt.Println()
	fmt.Print(r.targetTable())
	if *svg != "" {
		if err := os.WriteFile(*svg, []byte(r.chart()), 0o644); err != nil {
			return err
		}
	}
	if *out == "" {
		return nil
	}
	var notesText string
	if *notes != "" {
		b, err := os.ReadFile(*notes)
		if err != nil {
			return err
		}
		notesText = string(b)
	}
	return os.WriteFile(*out, []byte(r.page(filepath.Base(*svg), notesText)), 0o644)
}
