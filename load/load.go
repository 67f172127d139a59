package load

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/uneventful/uneventful"
)

// WalletPlaceholder is replaced in Config.URL and Config.Body by a wallet id.
const WalletPlaceholder = "{wallet}"

// How requests are spread over the wallets.
const (
	Uniform = "uniform" // every wallet equally likely
	Zipf    = "zipf"    // wallet k with weight 1/(k+1)^1.1: a few hot wallets
)

// zipfS is the Zipf exponent: with 100 wallets the hottest gets about a
// quarter of the requests and the top ten about 60%.
const zipfS = 1.1

// Config says what to send, how often and for how long.
//
// Run stops when ctx ends, when Requests requests have been sent, or when
// Duration has passed, whichever comes first. Setting Loop, Requests,
// Duration or Rate makes the workers repeat; with none of them set, each
// worker sends one request. With Loop and no other bound, Run goes on until
// ctx ends.
type Config struct {
	// URL is the target, http or https. It may contain {wallet}, and must
	// when Wallets > 0.
	URL string
	// Method defaults to GET, or POST when Body is set.
	Method string
	// Body is sent with every request; {wallet} in it is replaced too. When
	// it is set and Header has no Content-Type, it is sent as
	// application/json.
	Body string
	// Header is added to every request. A Host header sets the Host.
	Header http.Header
	// Idempotency adds an Idempotency-Key header with a new KSUID to every
	// request.
	Idempotency bool

	// Workers is the number of concurrent requests (and connections);
	// default 1. In open loop it caps the requests in flight.
	Workers int
	// Loop makes each worker repeat until another bound stops it.
	Loop bool
	// Requests, when positive, is the total number of requests to send.
	Requests int64
	// Duration, when positive, is how long to send requests for. Requests in
	// flight when it ends are waited for (at most Timeout).
	Duration time.Duration
	// Period is how long a worker sleeps after each response (closed loop
	// only).
	Period time.Duration
	// Rate, when positive, switches to open loop: Rate requests per second in
	// all, on a fixed timetable, the latency of a request that had to wait
	// for a worker measured from its due time (see the package comment).
	Rate float64
	// Timeout bounds each request, body included; default 30s.
	Timeout time.Duration

	// Wallets, when positive, is the number of wallet ids to make and
	// substitute for {wallet}.
	Wallets int
	// Skew is Uniform (the default) or Zipf.
	Skew string
	// SeedCredit, when set, is an amount (a decimal such as 100 or 12.50) to
	// credit each wallet with once before the run, by POST
	// <base>/wallet/{id}/credit, where <base> is the part of URL before
	// /wallet/{wallet}, else its scheme and host. The run starts after every
	// wallet was credited; any answer other than 2xx fails Run.
	SeedCredit string
	// Seed seeds the choice of wallets, for repeatable runs; 0 picks one at
	// random.
	Seed uint64

	// Bodies, when set, receives every response body, each ended by a
	// newline.
	Bodies io.Writer
	// Progress, when set, receives "N requests per second" every second.
	Progress io.Writer
}

// Run sends requests as cfg says and returns what it measured. It returns an
// error only when cfg is invalid, when seeding a wallet fails, or when ctx
// ends before the run starts; once it is running, ending ctx stops it and
// Run returns what was measured so far with Result.Interrupted set.
// Requests cut short by ctx are not counted.
func Run(ctx context.Context, cfg Config) (Result, error) {
	r, err := newRunner(cfg)
	if err != nil {
		return Result{}, err
	}
	defer r.transport.CloseIdleConnections()
	if err := r.seed(ctx); err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	return r.run(ctx), nil
}

type runner struct {
	cfg       Config
	method    string
	header    http.Header
	host      string
	urls      []string // one per wallet; one in all without wallets
	wallets   []string
	bodyVar   bool // Body contains {wallet}
	openLoop  bool
	repeat    bool
	seed0     uint64
	transport *http.Transport
	client    *http.Client
	dials     atomic.Int64

	start    time.Time
	deadline time.Time // zero: none
	issued   atomic.Int64
	done     atomic.Int64 // completed: responses and counted errors
	late     atomic.Int64 // open loop: requests sent over 1ms after they were due

	latency Histogram  // from the due time (open loop) or the send
	service *Histogram // open loop: from the send
	status  [1000]atomic.Int64

	mu       sync.Mutex // guards errKinds and writes to Bodies and Progress
	errKinds map[string]int64
}

func newRunner(cfg Config) (*runner, error) {
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Skew == "" {
		cfg.Skew = Uniform
	}
	switch {
	case cfg.Workers < 0:
		return nil, fmt.Errorf("workers must be at least 1, not %d", cfg.Workers)
	case cfg.Requests < 0, cfg.Duration < 0, cfg.Period < 0, cfg.Rate < 0, cfg.Timeout < 0, cfg.Wallets < 0:
		return nil, errors.New("requests, duration, period, rate, timeout and wallets cannot be negative")
	case cfg.Rate > 0 && cfg.Period > 0:
		return nil, errors.New("period and rate do not mix: rate sets the timetable of all requests")
	case cfg.Skew != Uniform && cfg.Skew != Zipf:
		return nil, fmt.Errorf("skew %q: want %s or %s", cfg.Skew, Uniform, Zipf)
	case cfg.Wallets > 0 && !strings.Contains(cfg.URL, WalletPlaceholder):
		return nil, fmt.Errorf("wallets needs %s in the URL, e.g. http://127.0.0.1:8080/wallet/%s/balance", WalletPlaceholder, WalletPlaceholder)
	case cfg.Wallets == 0 && (strings.Contains(cfg.URL, WalletPlaceholder) || strings.Contains(cfg.Body, WalletPlaceholder)):
		return nil, fmt.Errorf("the request contains %s: say how many wallets to spread it over with wallets", WalletPlaceholder)
	case cfg.SeedCredit != "" && cfg.Wallets == 0:
		return nil, errors.New("seed credit needs wallets")
	case cfg.SeedCredit != "" && !validAmount(cfg.SeedCredit):
		return nil, fmt.Errorf("seed credit %q: want a positive decimal such as 100 or 12.50", cfg.SeedCredit)
	}
	u, err := url.Parse(strings.ReplaceAll(cfg.URL, WalletPlaceholder, "x"))
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("url %q: want http://host[:port]/path or https://...", cfg.URL)
	}

	r := &runner{
		cfg:      cfg,
		method:   cfg.Method,
		header:   cfg.Header.Clone(),
		bodyVar:  strings.Contains(cfg.Body, WalletPlaceholder),
		openLoop: cfg.Rate > 0,
		repeat:   cfg.Loop || cfg.Requests > 0 || cfg.Duration > 0 || cfg.Rate > 0,
		seed0:    cfg.Seed,
		errKinds: make(map[string]int64),
	}
	if r.method == "" {
		r.method = http.MethodGet
		if cfg.Body != "" {
			r.method = http.MethodPost
		}
	}
	if r.header == nil {
		r.header = make(http.Header)
	}
	if cfg.Body != "" && r.header.Get("Content-Type") == "" {
		r.header.Set("Content-Type", "application/json")
	}
	if h := r.header.Get("Host"); h != "" {
		r.host = h
		r.header.Del("Host")
	}
	if r.seed0 == 0 {
		r.seed0 = rand.Uint64()
	}
	if r.openLoop {
		r.service = new(Histogram)
	}
	if cfg.Wallets > 0 {
		r.wallets = make([]string, cfg.Wallets)
		r.urls = make([]string, cfg.Wallets)
		for i := range r.wallets {
			r.wallets[i] = uneventful.NewID()
			r.urls[i] = strings.ReplaceAll(cfg.URL, WalletPlaceholder, r.wallets[i])
		}
	} else {
		r.urls = []string{cfg.URL}
	}

	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	r.transport = &http.Transport{
		Proxy: nil, // measure the target, not a proxy
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			r.dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
		// A worker's next request can start before its connection is back in
		// the idle pool; the cap makes it wait for that connection instead
		// of dialling a spare one.
		MaxConnsPerHost:     cfg.Workers,
		MaxIdleConns:        cfg.Workers,
		MaxIdleConnsPerHost: cfg.Workers,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		DisableCompression:  true,
		Protocols:           protocols,
	}
	r.client = &http.Client{
		Transport: r.transport,
		Timeout:   cfg.Timeout,
		// Like curl: a redirect is an answer to count, not to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return r, nil
}

// validAmount accepts a positive decimal number as the wire format has it.
func validAmount(s string) bool {
	if s == "" || s[0] < '0' || s[0] > '9' || strings.ContainsAny(s, "eE") || !json.Valid([]byte(s)) {
		return false
	}
	return strings.Trim(s, "0.") != ""
}

// seed credits every wallet once, Workers at a time.
func (r *runner) seed(ctx context.Context) error {
	if r.cfg.SeedCredit == "" {
		return nil
	}
	base := r.cfg.URL
	if i := strings.Index(base, "/wallet/"+WalletPlaceholder); i >= 0 {
		base = base[:i]
	} else {
		u, _ := url.Parse(strings.ReplaceAll(base, WalletPlaceholder, "x"))
		base = u.Scheme + "://" + u.Host
	}
	body := `{"amount": ` + r.cfg.SeedCredit + `}`
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan string)
	var wg sync.WaitGroup
	for range min(r.cfg.Workers, len(r.wallets)) {
		wg.Go(func() {
			for id := range next {
				if err := r.credit(ctx, base+"/wallet/"+id+"/credit", body); err != nil {
					cancel(fmt.Errorf("seed credit wallet %s: %w", id, err))
				}
			}
		})
	}
	began := time.Now()
feed:
	for _, id := range r.wallets {
		select {
		case next <- id:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	r.printf(r.cfg.Progress, "credited %d wallets with %s each in %v\n", len(r.wallets), r.cfg.SeedCredit, time.Since(began).Round(time.Millisecond))
	return nil
}

func (r *runner) credit(ctx context.Context, target, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", uneventful.NewID())
	if r.host != "" {
		req.Host = r.host
	}
	res, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 4096))
	if err != nil {
		return err
	}
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", res.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

func (r *runner) run(ctx context.Context) Result {
	stop := make(chan struct{})
	var progress sync.WaitGroup
	if r.cfg.Progress != nil {
		progress.Go(func() { r.report(stop) })
	}
	r.start = time.Now()
	if r.cfg.Duration > 0 {
		r.deadline = r.start.Add(r.cfg.Duration)
	}
	var wg sync.WaitGroup
	for w := range r.cfg.Workers {
		rng := rand.New(rand.NewPCG(r.seed0, uint64(w)))
		if r.openLoop {
			wg.Go(func() { r.openWorker(ctx, rng) })
		} else {
			wg.Go(func() { r.closedWorker(ctx, rng) })
		}
	}
	wg.Wait()
	elapsed := time.Since(r.start)
	close(stop)
	progress.Wait()
	return r.result(elapsed, ctx.Err() != nil)
}

// report prints the number of requests completed in each second.
func (r *runner) report(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			n := r.done.Load()
			r.printf(r.cfg.Progress, "%d requests per second\n", n-last)
			last = n
		}
	}
}

func (r *runner) printf(w io.Writer, format string, args ...any) {
	if w == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(w, format, args...)
}

// claim reports whether a closed-loop worker may send another request.
func (r *runner) claim(ctx context.Context) bool {
	if ctx.Err() != nil || (!r.deadline.IsZero() && !time.Now().Before(r.deadline)) {
		return false
	}
	return r.cfg.Requests <= 0 || r.issued.Add(1) <= r.cfg.Requests
}

func (r *runner) closedWorker(ctx context.Context, rng *rand.Rand) {
	pick := r.picker(rng)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for r.claim(ctx) {
		sent := time.Now()
		r.do(ctx, pick(), sent, sent)
		if !r.repeat {
			return
		}
		if p := r.cfg.Period; p > 0 {
			if !r.deadline.IsZero() {
				p = min(p, time.Until(r.deadline))
			}
			if !sleep(ctx, timer, p) {
				return
			}
		}
	}
}

// openWorker takes the next slot of the timetable, waits until it is due,
// and sends its request. A slot that was already due when the worker took
// it (every worker was busy) measures latency from its due time, so the
// wait counts; a slot the worker waited for measures from the send, so that
// the timer waking late (up to a millisecond, the generator's delay, not the
// server's) does not.
func (r *runner) openWorker(ctx context.Context, rng *rand.Rand) {
	pick := r.picker(rng)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		i := r.issued.Add(1) - 1
		if r.cfg.Requests > 0 && i >= r.cfg.Requests {
			return
		}
		offset := time.Duration(float64(i) * float64(time.Second) / r.cfg.Rate)
		if r.cfg.Duration > 0 && offset >= r.cfg.Duration {
			return
		}
		due := r.start.Add(offset)
		wait := time.Until(due)
		if wait > 0 && !sleep(ctx, timer, wait) {
			return
		}
		if ctx.Err() != nil {
			return
		}
		sent := time.Now()
		from := sent
		if wait <= 0 {
			from = due
			if sent.Sub(due) > time.Millisecond {
				r.late.Add(1)
			}
		}
		r.do(ctx, pick(), from, sent)
	}
}

// sleep waits for d or until ctx ends, and reports whether ctx is still
// live.
func sleep(ctx context.Context, t *time.Timer, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t.Reset(d)
	select {
	case <-ctx.Done():
		t.Stop()
		return false
	case <-t.C:
		return true
	}
}

// picker returns a function choosing the wallet (index into r.urls) of the
// next request.
func (r *runner) picker(rng *rand.Rand) func() int {
	n := len(r.urls)
	switch {
	case n == 1:
		return func() int { return 0 }
	case r.cfg.Skew == Zipf:
		z := rand.NewZipf(rng, zipfS, 1, uint64(n-1))
		return func() int { return int(z.Uint64()) }
	default:
		return func() int { return rng.IntN(n) }
	}
}

// do sends one request to wallet w and records its outcome; latency counts
// from start, service time from sent.
func (r *runner) do(ctx context.Context, w int, start, sent time.Time) {
	var body io.Reader
	if r.cfg.Body != "" {
		b := r.cfg.Body
		if r.bodyVar {
			b = strings.ReplaceAll(b, WalletPlaceholder, r.wallets[w])
		}
		body = strings.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.urls[w], body)
	if err != nil {
		r.fail(ctx, err)
		return
	}
	req.Header = r.header
	if r.cfg.Idempotency {
		req.Header = r.header.Clone()
		req.Header.Set("Idempotency-Key", uneventful.NewID())
	}
	if r.host != "" {
		req.Host = r.host
	}
	res, err := r.client.Do(req)
	if err != nil {
		r.fail(ctx, err)
		return
	}
	if r.cfg.Bodies != nil {
		var b []byte
		if b, err = io.ReadAll(res.Body); err == nil {
			r.mu.Lock()
			r.cfg.Bodies.Write(b)
			if len(b) == 0 || b[len(b)-1] != '\n' {
				r.cfg.Bodies.Write([]byte{'\n'})
			}
			r.mu.Unlock()
		}
	} else {
		_, err = io.Copy(io.Discard, res.Body)
	}
	res.Body.Close()
	if err != nil {
		r.fail(ctx, err)
		return
	}
	end := time.Now()
	r.latency.Record(end.Sub(start))
	if r.service != nil {
		r.service.Record(end.Sub(sent))
	}
	code := res.StatusCode
	if code < 0 || code >= len(r.status) {
		code = 0
	}
	r.status[code].Add(1)
	r.done.Add(1)
}

// fail counts a transport error, unless ctx ending caused it.
func (r *runner) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	kind := ErrorKind(err)
	r.mu.Lock()
	r.errKinds[kind]++
	r.mu.Unlock()
	r.done.Add(1)
}

// ErrorKind names the kind of a transport error in a few words, without
// addresses, so that errors of one kind count together.
func ErrorKind(err error) string {
	var (
		ne   net.Error
		dns  *net.DNSError
		cert *tls.CertificateVerificationError
		rec  tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no free local port"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.As(err, &dns):
		return "dns"
	case errors.As(err, &cert), errors.As(err, &rec):
		return "tls"
	}
	for {
		inner := errors.Unwrap(err)
		if inner == nil {
			break
		}
		err = inner
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}
