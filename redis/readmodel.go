package redis

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/redis/rueidis"

	"github.com/uneventful/uneventful"
)

// Defaults of the ReadModel's settings.
const (
	DefaultTimeout     = 2 * time.Second
	DefaultDialTimeout = time.Second
)

// redialInterval is how long after a failed connection attempt calls fail
// at once instead of dialling again.
const redialInterval = 250 * time.Millisecond

// ReadModel is the read model on Redis. Open one with Open; its methods are
// safe for concurrent use. The settings below are read by Open and must not
// change afterwards.
type ReadModel struct {
	// Prefix is prepended to every key, so that several read models (or
	// test runs) can share one Redis database. Default "".
	Prefix string
	// Timeout bounds each call's wait for Redis; past it the call fails
	// with ErrUnavailable. Default DefaultTimeout.
	Timeout time.Duration
	// DialTimeout bounds each connection attempt. A dial_timeout in the
	// URL takes precedence. Default DefaultDialTimeout.
	DialTimeout time.Duration
	// CacheTTL, when positive, turns on client-side caching of reads:
	// entries are kept until Redis invalidates them (RESP3 tracking) and
	// at most CacheTTL. Cached reads measured 2.7x (64 at once) to 20x (one
	// at a time) faster, but they give up read-your-writes: the
	// invalidation arrives some tens of microseconds after the write is
	// acknowledged, and a read in between returns the previous version.
	// Zero (the default) reads from Redis every time; see docs/REDIS.md.
	CacheTTL time.Duration
	// Logger receives warnings about the connection. Default
	// slog.Default().
	Logger *slog.Logger
	// TLSConfig, for a rediss:// URL, replaces the default TLS settings
	// (the system's CAs, no client certificate): set RootCAs to trust a
	// private CA and Certificates to present a client certificate. Its
	// ServerName defaults to the URL's host, and skip_verify in the URL
	// still applies. Open rejects it with a redis:// URL. Default nil.
	TLSConfig *tls.Config

	url    string // redacted, for logs
	opt    rueidis.ClientOption
	client atomic.Pointer[clientRef]

	dialMu  sync.Mutex // held while dialling; guards the fields below
	dialErr error      // the last failed attempt's error
	dialAt  time.Time  // when it failed
	closed  bool

	tokenMu sync.Mutex
	tokens  map[string]string // domain -> token of the rebuild this ReadModel saw start
}

type clientRef struct{ rueidis.Client }

var _ uneventful.ReadModel = (*ReadModel)(nil)

// Option sets a ReadModel's setting in Open.
type Option func(*ReadModel)

// WithPrefix sets ReadModel.Prefix.
func WithPrefix(prefix string) Option { return func(m *ReadModel) { m.Prefix = prefix } }

// WithTimeout sets ReadModel.Timeout.
func WithTimeout(d time.Duration) Option { return func(m *ReadModel) { m.Timeout = d } }

// WithDialTimeout sets ReadModel.DialTimeout.
func WithDialTimeout(d time.Duration) Option { return func(m *ReadModel) { m.DialTimeout = d } }

// WithCache sets ReadModel.CacheTTL: a positive ttl turns client-side
// caching on.
func WithCache(ttl time.Duration) Option { return func(m *ReadModel) { m.CacheTTL = ttl } }

// WithLogger sets ReadModel.Logger.
func WithLogger(l *slog.Logger) Option { return func(m *ReadModel) { m.Logger = l } }

// WithTLS sets ReadModel.TLSConfig.
func WithTLS(c *tls.Config) Option { return func(m *ReadModel) { m.TLSConfig = c } }

// Open returns a read model on the Redis at rawURL,
// redis://[user:password@]host:port/db or rediss://... for TLS (query
// parameters dial_timeout, write_timeout and skip_verify are understood).
//
// Open fails only on a malformed URL or setting, or when Redis refuses the
// connection (wrong password, unknown database). Redis being unreachable is
// not an error: Open logs a warning and returns a ReadModel whose calls
// answer ErrUnavailable until Redis is back, so that processes can start in
// any order. Use Ping to require Redis at start.
func Open(ctx context.Context, rawURL string, opts ...Option) (*ReadModel, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		// url.Parse's error quotes the URL, password included.
		return nil, uneventful.Errorf(uneventful.ErrInvalid, "invalid_redis_url",
			"the Redis URL is not valid: want redis://[user:password@]host:port/db or rediss://... for TLS")
	}
	opt, err := rueidis.ParseURL(rawURL)
	if err != nil {
		return nil, uneventful.Errorf(uneventful.ErrInvalid, "invalid_redis_url", "the Redis URL %s is not valid: %v", u.Redacted(), err)
	}
	m := &ReadModel{
		Timeout:     DefaultTimeout,
		DialTimeout: DefaultDialTimeout,
		Logger:      slog.Default(),
		url:         u.Redacted(),
		tokens:      make(map[string]string),
	}
	for _, o := range opts {
		o(m)
	}
	switch {
	case m.Timeout <= 0:
		return nil, uneventful.Errorf(uneventful.ErrInvalid, "invalid_setting", "redis: Timeout must be positive; got %v", m.Timeout)
	case m.DialTimeout <= 0:
		return nil, uneventful.Errorf(uneventful.ErrInvalid, "invalid_setting", "redis: DialTimeout must be positive; got %v", m.DialTimeout)
	case m.CacheTTL < 0:
		return nil, uneventful.Errorf(uneventful.ErrInvalid, "invalid_setting", "redis: CacheTTL must not be negative; got %v", m.CacheTTL)
	case m.TLSConfig != nil && opt.TLSConfig == nil:
		return nil, uneventful.Errorf(uneventful.ErrInvalid, "invalid_setting", "redis: TLSConfig needs a rediss:// URL; got %s", m.url)
	case m.Logger == nil:
		m.Logger = slog.Default()
	}
	if m.TLSConfig != nil {
		c := m.TLSConfig.Clone()
		if c.ServerName == "" {
			c.ServerName = opt.TLSConfig.ServerName
		}
		if c.MinVersion == 0 {
			c.MinVersion = opt.TLSConfig.MinVersion
		}
		c.InsecureSkipVerify = c.InsecureSkipVerify || opt.TLSConfig.InsecureSkipVerify
		opt.TLSConfig = c
	}
	if opt.Dialer.Timeout == 0 {
		opt.Dialer.Timeout = m.DialTimeout
	}
	// One primary (standalone or behind a proxy); the multi-key reads and
	// scripts are not cluster-safe.
	opt.ForceSingleClient = true
	opt.DisableCache = m.CacheTTL == 0
	opt.RetryDelay = retryOnce
	// One connection, and a pause of at most 20µs after each write to it
	// so that more commands share the next one: the deepest auto-pipelines.
	// On 2 cores that served 2.3x the reads of four connections, and the
	// pause 1.2x more again, at no measurable cost in latency
	// (docs/REDIS.md).
	opt.PipelineMultiplex = -1
	opt.MaxFlushDelay = 20 * time.Microsecond
	m.opt = opt

	if _, err := m.conn(ctx); err != nil {
		if !errors.Is(err, uneventful.ErrUnavailable) {
			return nil, err
		}
		tlsErr := tlsRefusal(err)
		if tlsErr == nil && opt.TLSConfig != nil {
			tlsErr = m.probeTLS(ctx)
		}
		if tlsErr != nil {
			return nil, fmt.Errorf("redis: connect to %s: TLS failed; check its CA, client certificate and key: %w", m.url, tlsErr)
		}
		m.Logger.Warn("redis is unreachable; reads answer 503 until it is back", "url", m.url, "err", err)
	}
	return m, nil
}

// tlsRefusal returns the error in err's chain by which TLS with Redis failed
// in a way that waiting does not mend: a certificate that does not verify,
// on either side, or a server that speaks no TLS. It returns nil otherwise.
func tlsRefusal(err error) error {
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var op *net.OpError
	switch {
	case errors.As(err, &verify):
		return verify
	case errors.As(err, &record):
		return record
	case errors.As(err, &op) && op.Op == "remote error": // an alert from Redis, e.g. "certificate required"
		return op
	}
	return nil
}

// probeTLS finds out whether Redis refuses the client's certificate, or
// the want of one. With TLS 1.3 Redis checks it after the client's side of
// the handshake is done, so a client that writes first, as the driver
// does, sees only a reset connection; one that reads first gets Redis's
// alert. It returns nil when TLS is not what failed.
func (m *ReadModel) probeTLS(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.opt.Dialer.Timeout)
	defer cancel()
	d := m.opt.Dialer
	c, err := (&tls.Dialer{NetDialer: &d, Config: m.opt.TLSConfig}).DialContext(ctx, "tcp", m.opt.InitAddress[0])
	if err != nil {
		return tlsRefusal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond)) // Redis says nothing unasked
	_, err = c.Read(make([]byte, 1))
	return tlsRefusal(err)
}

// retryOnce retries a read-only command once at once, which covers a
// connection that broke while idle (say, Redis restarted), and otherwise
// gives up: the caller answers 503 and the user retries.
func retryOnce(attempts int, _ rueidis.Completed, _ error) time.Duration {
	if attempts <= 1 {
		return 0
	}
	return -1
}

// Ping checks that Redis answers.
func (m *ReadModel) Ping(ctx context.Context) error {
	c, err := m.conn(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
		return m.fail("ping", err)
	}
	return nil
}

// Close closes the connections. Calls after Close answer ErrUnavailable.
func (m *ReadModel) Close() error {
	m.dialMu.Lock()
	defer m.dialMu.Unlock()
	m.closed = true
	if c := m.client.Load(); c != nil {
		c.Close()
	}
	return nil
}

// conn returns the client, connecting first if need be. While another
// call is connecting, or shortly after a failed attempt, it fails at once.
func (m *ReadModel) conn(ctx context.Context) (rueidis.Client, error) {
	if c := m.client.Load(); c != nil {
		return c.Client, nil
	}
	if !m.dialMu.TryLock() {
		return nil, m.fail("connect", errors.New("connecting"))
	}
	defer m.dialMu.Unlock()
	if c := m.client.Load(); c != nil {
		return c.Client, nil
	}
	if m.closed {
		return nil, m.fail("connect", rueidis.ErrClosing)
	}
	if m.dialErr != nil && time.Since(m.dialAt) < redialInterval {
		return nil, m.dialErr
	}
	c, err := rueidis.NewClient(m.opt)
	if err != nil {
		m.dialErr, m.dialAt = m.fail("connect to "+m.url, err), time.Now()
		return nil, m.dialErr
	}
	m.dialErr = nil
	m.client.Store(&clientRef{c})
	m.checkEviction(ctx, c)
	return c, nil
}

// checkEviction warns when Redis may evict keys: an evicted state would
// read as "no such entity" while the readiness marker is still there.
func (m *ReadModel) checkEviction(ctx context.Context, c rueidis.Client) {
	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	kv, err := c.Do(ctx, c.B().ConfigGet().Parameter("maxmemory-policy").Build()).AsStrMap()
	if err != nil {
		return // CONFIG may be disabled (managed Redis); nothing to check
	}
	if p, ok := kv["maxmemory-policy"]; ok && p != "noeviction" {
		m.Logger.Warn("redis may evict keys of the read model; set maxmemory-policy noeviction, or an evicted entity reads as not found",
			"url", m.url, "maxmemory-policy", p)
	}
}

// The Lua script of Project. KEYS[1] is the state key, KEYS[2] the events
// key; ARGV[1] is the version (decimal, no leading zeros), ARGV[2] the state
// JSON, ARGV[3] the event JSON. The state replaces the stored one only if
// its version is higher; the stored version is read from the JSON's first
// field, which is always "version", without decoding the rest (a value
// without it is not ours, and is replaced). Versions compare as decimal
// strings (longer is larger), exactly for every int64.
// The event is added unless an event of that version is held, so that a
// repeat with a different encoding is no duplicate. It returns 1 when the
// state was replaced.
const projectScript = `
local v = ARGV[1]
local newer = 1
local old = redis.call('GET', KEYS[1])
if old then
  local ov = string.match(old, '^{"version":(%d+)[,}]')
  if ov and (#ov > #v or (#ov == #v and ov >= v)) then
    newer = 0
  end
end
if newer == 1 then
  redis.call('SET', KEYS[1], ARGV[2])
end
if redis.call('ZCOUNT', KEYS[2], v, v) == 0 then
  redis.call('ZADD', KEYS[2], 'NX', v, ARGV[3])
end
return newer
`

var projectSHA = func() string {
	sum := sha1.Sum([]byte(projectScript))
	return hex.EncodeToString(sum[:])
}()

// Project implements uneventful.ReadModel: every accepted record of the call
// in one pipelined round trip, one script run per record. It returns an
// error wrapping ErrUnavailable when Redis cannot take the writes; then
// some of them may have been applied, and repeating the call is safe.
func (m *ReadModel) Project(ctx context.Context, records []uneventful.Record) error {
	type exec struct{ keys, args []string }
	execs := make([]exec, 0, len(records))
	for i := range records {
		s := records[i].State
		if s == nil {
			continue
		}
		if s.Domain == "" || s.EntityID == "" || s.Version < 1 {
			return fmt.Errorf("project: state of %q version %d: want a domain, an entity id and a version of 1 or more", s.Stream(), s.Version)
		}
		if v := records[i].Event.Version; v != s.Version {
			return fmt.Errorf("project %s: event version %d differs from state version %d", s.Stream(), v, s.Version)
		}
		state, err := encodeState(s)
		if err != nil {
			return fmt.Errorf("project %s version %d: %w", s.Stream(), s.Version, err)
		}
		event, err := encodeEvent(&records[i].Event)
		if err != nil {
			return fmt.Errorf("project %s version %d: %w", s.Stream(), s.Version, err)
		}
		key := m.Prefix + s.Stream()
		execs = append(execs, exec{
			keys: []string{key, key + ":events"},
			args: []string{strconv.FormatInt(s.Version, 10), string(state), string(event)},
		})
	}
	if len(execs) == 0 {
		return nil
	}
	c, err := m.conn(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	cmds := make(rueidis.Commands, len(execs))
	for i, e := range execs {
		cmds[i] = c.B().Evalsha().Sha1(projectSHA).Numkeys(2).Key(e.keys...).Arg(e.args...).Build()
	}
	var again []int // the script was not loaded (Redis restarted, SCRIPT FLUSH)
	for i, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			if re, ok := rueidis.IsRedisErr(err); ok && re.IsNoScript() {
				again = append(again, i)
				continue
			}
			return m.fail("project", err)
		}
	}
	if len(again) == 0 {
		return nil
	}
	// EVAL runs the script and caches it for the next EVALSHA.
	cmds = cmds[:0]
	for _, i := range again {
		e := execs[i]
		cmds = append(cmds, c.B().Eval().Script(projectScript).Numkeys(2).Key(e.keys...).Arg(e.args...).Build())
	}
	for _, r := range c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return m.fail("project", err)
		}
	}
	return nil
}

// storedState is uneventful.State with "version" first, as the script reads
// it, and as `redis-cli GET` has always shown it.
type storedState struct {
	Version   int64           `json:"version"`
	Timestamp time.Time       `json:"timestamp"`
	Domain    string          `json:"name"`
	EntityID  string          `json:"entity_id"`
	EventID   string          `json:"event_id"`
	Data      json.RawMessage `json:"data"`
}

func encodeState(s *uneventful.State) ([]byte, error) {
	return marshal(storedState{s.Version, s.Timestamp, s.Domain, s.EntityID, s.EventID, s.Data})
}

// decodeState decodes a stored state exactly as json.Unmarshal does. The
// layout that encodeState writes is parsed directly, which takes a fraction
// of encoding/json's time on the hottest read path; anything else (escaped
// strings, other field orders) goes through encoding/json.
func decodeState(b []byte, s *uneventful.State) error {
	if parseState(b, s) {
		return nil
	}
	*s = uneventful.State{}
	return json.Unmarshal(b, s)
}

// parseState parses b if it has encodeState's layout and needs no
// unescaping, and reports whether it did.
func parseState(b []byte, s *uneventful.State) bool {
	lit := func(l string) bool {
		ok := bytes.HasPrefix(b, []byte(l))
		if ok {
			b = b[len(l):]
		}
		return ok
	}
	// str takes a JSON string without escapes and returns its contents.
	str := func() ([]byte, bool) {
		if len(b) == 0 || b[0] != '"' {
			return nil, false
		}
		for i := 1; i < len(b); i++ {
			switch c := b[i]; {
			case c == '"':
				v := b[1:i]
				b = b[i+1:]
				return v, utf8.Valid(v)
			case c == '\\' || c < 0x20:
				return nil, false
			}
		}
		return nil, false
	}
	if !lit(`{"version":`) {
		return false
	}
	n := 0
	for n < len(b) && '0' <= b[n] && b[n] <= '9' {
		n++
	}
	if n == 0 || (n > 1 && b[0] == '0') {
		return false
	}
	v, err := strconv.ParseInt(string(b[:n]), 10, 64)
	if err != nil {
		return false
	}
	b = b[n:]
	if !lit(`,"timestamp":`) || len(b) == 0 {
		return false
	}
	start := b
	if _, ok := str(); !ok {
		return false
	}
	var ts time.Time
	if ts.UnmarshalJSON(start[:len(start)-len(b)]) != nil || !lit(`,"name":`) {
		return false
	}
	domain, ok := str()
	if !ok || !lit(`,"entity_id":`) {
		return false
	}
	entity, ok := str()
	if !ok || !lit(`,"event_id":`) {
		return false
	}
	event, ok := str()
	if !ok || !lit(`,"data":`) || len(b) < 2 || b[len(b)-1] != '}' {
		return false
	}
	data := b[:len(b)-1]
	if !json.Valid(data) {
		return false
	}
	*s = uneventful.State{Domain: string(domain), EntityID: string(entity), Version: v, Timestamp: ts, EventID: string(event), Data: bytes.Clone(data)}
	return true
}

// encodeEvent returns the event as the events set holds it: without the
// reply (large, and kept in the event log for retries) and the request
// hash.
func encodeEvent(e *uneventful.Event) ([]byte, error) {
	c := *e
	c.Reply, c.RequestHash = nil, ""
	return marshal(&c)
}

// marshal encodes v compactly without escaping <, > and &, so that the
// data's bytes are kept as they are (numbers always are).
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// State implements uneventful.Reader. It reads the state and the domain's
// readiness marker in one round trip. Missing state with the marker there:
// an error wrapping ErrNotFound (code "not_found"). Marker missing (the read
// model is being rebuilt): ErrUnavailable with code "read_model_rebuilding".
// Redis unreachable, loading or slow: ErrUnavailable with code
// "read_model_unavailable".
func (m *ReadModel) State(ctx context.Context, domain, entityID string) (uneventful.State, error) {
	var s uneventful.State
	stream := uneventful.StreamName(domain, entityID)
	c, err := m.conn(ctx)
	if err != nil {
		return s, err
	}
	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	key, marker := m.Prefix+stream, m.markerKey(domain)
	var state, ready rueidis.RedisMessage
	if m.CacheTTL > 0 {
		rs := c.DoMultiCache(ctx,
			rueidis.CT(c.B().Get().Key(key).Cache(), m.CacheTTL),
			rueidis.CT(c.B().Get().Key(marker).Cache(), m.CacheTTL))
		if state, err = rs[0].ToMessage(); err != nil && !rueidis.IsRedisNil(err) {
			return s, m.fail("read "+stream, err)
		}
		if ready, err = rs[1].ToMessage(); err != nil && !rueidis.IsRedisNil(err) {
			return s, m.fail("read "+stream, err)
		}
	} else {
		// MGET reads both at one instant: no flush can fall in between.
		vs, err := c.Do(ctx, c.B().Mget().Key(key, marker).Build()).ToArray()
		if err != nil {
			return s, m.fail("read "+stream, err)
		}
		if len(vs) != 2 {
			return s, fmt.Errorf("read %s: MGET answered %d values for 2 keys", stream, len(vs))
		}
		state, ready = vs[0], vs[1]
	}
	if ready.IsNil() {
		return s, rebuilding(domain)
	}
	if state.IsNil() {
		return s, uneventful.Errorf(uneventful.ErrNotFound, "not_found", "%s is not in the read model", stream)
	}
	b, err := state.AsBytes()
	if err == nil {
		err = decodeState(b, &s) // copies: b may be shared with the cache
	}
	if err != nil {
		return s, fmt.Errorf("read %s: the read model holds no valid state: %w", stream, err)
	}
	return s, nil
}

// Events implements uneventful.Reader: one page of the entity's accepted
// events from its sorted set, in O(log n + limit), oldest first. A limit of
// 0 or less means 100. The events have no Reply and no RequestHash. It
// reads the readiness marker in the same round trip, after the page, and
// returns the same errors as State, except that an entity with no events
// gives an empty page and no error.
func (m *ReadModel) Events(ctx context.Context, domain, entityID string, after int64, limit int) ([]uneventful.Event, error) {
	if limit <= 0 {
		limit = 100
	}
	after = max(after, 0)
	stream := uneventful.StreamName(domain, entityID)
	c, err := m.conn(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	key, marker := m.Prefix+stream+":events", m.markerKey(domain)
	lo := "(" + strconv.FormatInt(after, 10) // exclusive
	var rs []rueidis.RedisResult
	if m.CacheTTL > 0 {
		rs = c.DoMultiCache(ctx,
			rueidis.CT(c.B().Zrange().Key(key).Min(lo).Max("+inf").Byscore().Limit(0, int64(limit)).Cache(), m.CacheTTL),
			rueidis.CT(c.B().Get().Key(marker).Cache(), m.CacheTTL))
	} else {
		// The marker is read after the page: if it is still there, no
		// flush happened before the page was read.
		rs = c.DoMulti(ctx,
			c.B().Zrange().Key(key).Min(lo).Max("+inf").Byscore().Limit(0, int64(limit)).Build(),
			c.B().Get().Key(marker).Build())
	}
	if err := rs[1].Error(); err != nil {
		if rueidis.IsRedisNil(err) {
			return nil, rebuilding(domain)
		}
		return nil, m.fail("read events of "+stream, err)
	}
	members, err := rs[0].ToArray()
	if err != nil {
		return nil, m.fail("read events of "+stream, err)
	}
	events := make([]uneventful.Event, len(members))
	for i := range members {
		b, err := members[i].AsBytes()
		if err == nil {
			err = json.Unmarshal(b, &events[i])
		}
		if err != nil {
			return nil, fmt.Errorf("read events of %s: the read model holds an invalid event: %w", stream, err)
		}
	}
	return events, nil
}

func (m *ReadModel) markerKey(domain string) string {
	return m.Prefix + "uneventful:projector:" + domain
}

// positionScript returns {1, checkpoint} when the marker KEYS[1] is there,
// else {0, token} with the token of the rebuild in progress (KEYS[2]),
// starting one with token ARGV[1] if none is.
const positionScript = `
local cur = redis.call('GET', KEYS[1])
if cur then
  return {1, cur}
end
local t = redis.call('GET', KEYS[2])
if not t then
  t = ARGV[1]
  redis.call('SET', KEYS[2], t)
end
return {0, t}
`

// markReadyScript sets the marker KEYS[1] to ARGV[1] if that is higher,
// and returns 1. If the marker is missing it sets it only if the rebuild
// token KEYS[2] is still ARGV[2] (no flush since the rebuild began), and
// otherwise returns 0.
const markReadyScript = `
local p = ARGV[1]
local cur = redis.call('GET', KEYS[1])
if cur then
  if #p > #cur or (#p == #cur and p > cur) then
    redis.call('SET', KEYS[1], p)
  end
  return 1
end
if ARGV[2] ~= '' and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('SET', KEYS[1], p)
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
`

var (
	positionLua  = rueidis.NewLuaScript(positionScript)
	markReadyLua = rueidis.NewLuaScript(markReadyScript)
)

// Position returns the catch-up projector's checkpoint for the domain (the
// store sequence up to which the read model is complete) and true; or 0 and
// false when there is none because the read model is new, was flushed or
// Redis restarted empty, and then it begins a rebuild: the projector must
// project every record from sequence 0 and call MarkReady once caught up.
// Only a ReadModel that saw the rebuild begin through Position can mark it
// ready.
func (m *ReadModel) Position(ctx context.Context, domain string) (int64, bool, error) {
	c, err := m.conn(ctx)
	if err != nil {
		return 0, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	keys := []string{m.markerKey(domain), m.markerKey(domain) + ":rebuild"}
	vs, err := positionLua.Exec(ctx, c, keys, []string{uneventful.NewID()}).ToArray()
	if err != nil {
		return 0, false, m.fail("position of "+domain, err)
	}
	if len(vs) != 2 {
		return 0, false, fmt.Errorf("position of %s: the script answered %d values", domain, len(vs))
	}
	ready, err1 := vs[0].AsInt64()
	v, err2 := vs[1].ToString()
	if err := errors.Join(err1, err2); err != nil {
		return 0, false, fmt.Errorf("position of %s: %w", domain, err)
	}
	m.tokenMu.Lock()
	defer m.tokenMu.Unlock()
	if ready == 0 {
		m.tokens[domain] = v
		return 0, false, nil
	}
	delete(m.tokens, domain)
	pos, err := strconv.ParseInt(v, 10, 64)
	if err != nil || pos < 0 {
		return 0, false, fmt.Errorf("position of %s: the marker holds %q, not a position", domain, v)
	}
	return pos, true, nil
}

// MarkReady records that the read model of the domain holds every record
// up to the store sequence position, and so makes reads answer from it.
// Call it only when caught up: after a Position that answered false, only
// once the rebuild has reached the end of the store; after that, after
// every batch (and on every poll, which is how a flush is noticed). It
// never moves the checkpoint back.
//
// If the read model lost its data (FLUSHALL, restart) since this
// ReadModel's last Position call, MarkReady changes nothing and returns an
// error wrapping ErrConflict with code "read_model_flushed": call Position
// again and rebuild from what it returns.
func (m *ReadModel) MarkReady(ctx context.Context, domain string, position int64) error {
	if position < 0 {
		return uneventful.Errorf(uneventful.ErrInvalid, "invalid_position", "a position is 0 or more; got %d", position)
	}
	c, err := m.conn(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	m.tokenMu.Lock()
	token := m.tokens[domain]
	m.tokenMu.Unlock()
	keys := []string{m.markerKey(domain), m.markerKey(domain) + ":rebuild"}
	ok, err := markReadyLua.Exec(ctx, c, keys, []string{strconv.FormatInt(position, 10), token}).AsInt64()
	if err != nil {
		return m.fail("mark "+domain+" ready", err)
	}
	if ok == 0 {
		return uneventful.Errorf(uneventful.ErrConflict, "read_model_flushed",
			"the read model of %s lost its data since its position was read; call Position and rebuild from there", domain)
	}
	m.tokenMu.Lock()
	if m.tokens[domain] == token {
		delete(m.tokens, domain)
	}
	m.tokenMu.Unlock()
	return nil
}

func rebuilding(domain string) error {
	return uneventful.Errorf(uneventful.ErrUnavailable, "read_model_rebuilding",
		"the read model of %s is being rebuilt; retry shortly", domain)
}

// fail translates a client error: Redis unreachable, slow, loading, busy or
// out of memory is ErrUnavailable; anything else (a wrong type at a key, a
// bug) is returned wrapped.
func (m *ReadModel) fail(op string, err error) error {
	if re, ok := rueidis.IsRedisErr(err); ok {
		switch code, _, _ := strings.Cut(re.Error(), " "); code {
		case "LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "READONLY", "OOM", "NOREPLICAS":
		default:
			return fmt.Errorf("redis: %s: %w", op, err)
		}
	}
	return &uneventful.Error{
		Kind:    uneventful.ErrUnavailable,
		Code:    "read_model_unavailable",
		Message: "the read model (Redis) is unavailable; retry shortly",
		Err:     fmt.Errorf("%s: %w", op, err),
	}
}
