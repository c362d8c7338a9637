package server

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fredcode/fredtel/internal/apikey"
	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/store"
	"github.com/fredcode/fredtel/wire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config configures the ingest server. Zero fields take the defaults noted.
type Config struct {
	// MaxBody bounds the request body as sent (default 1 MiB) and
	// MaxInflated the body after gzip (default 8 MiB): 413 beyond.
	MaxBody, MaxInflated int64
	// MaxRecords per batch (default 1000): 413 beyond.
	MaxRecords int
	// MaxValidating bounds the requests whose bodies are being read and
	// validated at once (default 4 × GOMAXPROCS, at least 8), and
	// ValidateMemory the bytes they may hold between them (default 96
	// MiB: bodies as sent and inflated, twice, for the parse and the
	// records). A request beyond either is answered 503 with Retry-After
	// at once: never queued, never read.
	MaxValidating  int
	ValidateMemory int64
	// SessionCacheBytes bounds the cache of recent sessions' catalogs,
	// which a batch of schema version 2 or later is checked against
	// (default 32 MiB; equal catalogs are held once, so about 200,000
	// sessions of a few builds).
	SessionCacheBytes int
	// MinClientVersion: older clients get 426 (default none).
	MinClientVersion string
	// Versions are the wire schema versions accepted, each between 1 and
	// schema.WireVersion (default wire.SupportedVersions(): the current one and
	// the one before). A batch of another version gets 422 with this list,
	// which /v1/schema also publishes.
	Versions []int
	// Rate and Burst: each key's token bucket, in requests per second
	// (default 20/s, burst 40): 429 with Retry-After beyond.
	Rate  float64
	Burst int
	// KeyCacheTTL: how long a key's status is trusted before it is read
	// again (default 30 s), so a revoked key is refused by every server
	// process within a minute.
	KeyCacheTTL time.Duration
	// MaxClockSkew bounds |sent_at - server clock| (default 30 days).
	MaxClockSkew time.Duration
	// RetryAfter is what 503 answers tell clients to wait (default 5 s).
	RetryAfter time.Duration
	// WriteTimeout bounds one database write (default 10 s).
	WriteTimeout time.Duration
	Logger       *slog.Logger
	Now          func() time.Time
	// Registry receives the metrics (default a new one, served at /metrics).
	Registry *prometheus.Registry
}

// WithDefaults is c with every field left zero set to its default, as New
// sets it: the defaults fredtel serve's help shows.
func (c Config) WithDefaults() Config {
	c.defaults()
	return c
}

func (c *Config) defaults() {
	orDefault(&c.MaxBody, 1<<20)
	orDefault(&c.MaxInflated, 8<<20)
	orDefault(&c.MaxRecords, 1000)
	orDefault(&c.MaxValidating, max(8, 4*runtime.GOMAXPROCS(0)))
	orDefault(&c.ValidateMemory, 96<<20)
	orDefault(&c.SessionCacheBytes, 32<<20)
	orDefault(&c.Rate, 20)
	orDefault(&c.Burst, 40)
	orDefault(&c.KeyCacheTTL, 30*time.Second)
	orDefault(&c.MaxClockSkew, 30*24*time.Hour)
	orDefault(&c.RetryAfter, 5*time.Second)
	orDefault(&c.WriteTimeout, 10*time.Second)
	c.Logger = cmp.Or(c.Logger, slog.New(slog.DiscardHandler))
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Registry = cmp.Or(c.Registry, prometheus.NewRegistry())
	if len(c.Versions) == 0 {
		c.Versions = wire.SupportedVersions()
	}
}

// orDefault sets *p to def where it was left zero (or made negative).
func orDefault[T ~int | ~int64 | ~float64](p *T, def T) {
	if *p <= 0 {
		*p = def
	}
}

// Server is the ingest API. Build it with New; it is an http.Handler.
type Server struct {
	cfg      Config
	st       store.Store
	keys     *keyCache
	limits   *limiter
	admit    *admission
	catalogs *catalogCache
	m        *metrics
	mux      *http.ServeMux
	paths    map[string]bool // of the routes, for the metrics' labels
	touched  sync.Map        // key hash → last time last_used_at was written
}

// New returns the ingest API over a central store.
func New(cfg Config, st store.Store) (*Server, error) {
	if st.Set() != schema.CentralSet {
		return nil, fmt.Errorf("server: the store must write the central set")
	}
	cfg.defaults()
	cfg.Versions = slices.Clone(cfg.Versions)
	slices.Sort(cfg.Versions)
	cfg.Versions = slices.Compact(cfg.Versions)
	for _, v := range cfg.Versions {
		if v < 1 || v > schema.WireVersion {
			return nil, fmt.Errorf("server: schema version %d: this build declares versions 1 to %d", v, schema.WireVersion)
		}
	}
	s := &Server{cfg: cfg, st: st, keys: newKeyCache(st, cfg.KeyCacheTTL, cfg.Now),
		limits: newLimiter(cfg.Rate, cfg.Burst, cfg.Now), admit: newAdmission(cfg.MaxValidating, cfg.ValidateMemory),
		catalogs: newCatalogCache(cfg.SessionCacheBytes),
		m:        newMetrics(cfg.Registry)}
	// The API's routes, written once: the mux serves them and the metrics
	// label requests by their paths (any other path is "other").
	s.mux, s.paths = http.NewServeMux(), map[string]bool{}
	for pattern, h := range map[string]http.Handler{
		"POST /v1/batch": http.HandlerFunc(s.handleBatch),
		"GET /v1/whoami": http.HandlerFunc(s.handleWhoami),
		"GET /v1/schema": http.HandlerFunc(s.handleSchema),
		"GET /healthz":   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) }),
		"GET /readyz":    http.HandlerFunc(s.handleReady),
		"GET /metrics":   promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}),
	} {
		s.mux.Handle(pattern, h)
		_, path, _ := strings.Cut(pattern, " ")
		s.paths[path] = true
	}
	return s, nil
}

// ServeHTTP implements http.Handler: it counts every answer by code and
// turns a panic into a 500 without taking the process down.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusWriter{ResponseWriter: w, code: 200}
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			s.cfg.Logger.Error("panic in handler", "path", r.URL.Path, "panic", fmt.Sprint(p))
			if !rec.wrote {
				writeJSON(rec, http.StatusInternalServerError, map[string]string{"error": "internal"})
			}
		}
		route := r.URL.Path
		if !s.paths[route] {
			route = "other"
		}
		s.m.requests.WithLabelValues(route, strconv.Itoa(rec.code)).Inc()
		s.m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	}()
	s.mux.ServeHTTP(rec, r)
}

type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// refuse answers a rejected batch: counted by reason, logged by reason,
// field path and key prefix, never with a value from the payload.
func (s *Server) refuse(w http.ResponseWriter, rj *wire.Rejection, keyPrefix string) {
	s.m.rejected.WithLabelValues(rj.Reason).Inc()
	s.cfg.Logger.Info("batch rejected", "status", rj.Status, "reason", rj.Reason, "field", rj.Field, "key", keyPrefix)
	body := map[string]any{"error": rj.Msg}
	if rj.Field != "" {
		body["field"] = rj.Field
	}
	switch rj.Status {
	case http.StatusUnprocessableEntity:
		body = map[string]any{"error": "schema_version_unsupported", "supported": s.cfg.Versions}
	case http.StatusUpgradeRequired:
		body = map[string]any{"error": "client_too_old", "min_version": s.cfg.MinClientVersion}
	}
	writeJSON(w, rj.Status, body)
}

func (s *Server) retryLater(w http.ResponseWriter, code int, wait time.Duration, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(wait, time.Second).Seconds()))))
	writeJSON(w, code, map[string]string{"error": msg})
}

// unauthorized answers 401 with the challenge RFC 9110 requires of it: the
// scheme the API takes (RFC 6750).
func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", "Bearer")
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": msg})
}

// authenticate returns the key of a request, or answers 401/503 itself.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (store.APIKey, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !apikey.Valid(token) {
		s.m.rejected.WithLabelValues("auth").Inc()
		unauthorized(w, "missing or malformed API key")
		return store.APIKey{}, false
	}
	k, err := s.keys.lookup(r.Context(), token)
	switch {
	case errors.Is(err, store.ErrNoKey):
		s.m.rejected.WithLabelValues("auth").Inc()
		unauthorized(w, "unknown or revoked API key")
		return store.APIKey{}, false
	case err != nil:
		s.cfg.Logger.Warn("key lookup failed", "err", err)
		s.retryLater(w, http.StatusServiceUnavailable, s.cfg.RetryAfter, "database unavailable")
		return store.APIKey{}, false
	}
	return k, true
}

// handleBatch is POST /v1/batch, the wire contract of SPEC §5:
//
//	Authorization: Bearer fred_live_…
//	Content-Type: application/json   (else 415)
//	Content-Encoding: gzip | identity (else 415)
//	body ≤ MaxBody as sent and ≤ MaxInflated inflated (else 413)
//	{"schema_version", "batch_id", "sent_at", "client": {"fred_version", "runtime_version"},
//	 "sessions": [], "turns": [], "tool_calls": [], "events": []}
//
// Answers: 200 {"accepted", "duplicates"} only after the commit; 400
// {"error", "field"} with nothing written (from schema version 2 on, also a
// model, tool or command name in neither its session's catalog nor the
// fixed words); 401 unknown or revoked key; 413;
// 415; 422 {"error": "schema_version_unsupported", "supported"}; 426
// {"min_version"}; 429 and 503 with Retry-After (503 also when the server
// validates as many bodies as it takes at once). user_id comes from the key,
// never from the payload. No IP address is kept.
func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	key, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if wait, ok := s.limits.allow(key.Prefix); !ok { // mutant:rate-limit-shared-by-all-keys
		s.m.rejected.WithLabelValues("rate_limit").Inc()
		s.retryLater(w, http.StatusTooManyRequests, wait, "rate limit: retry later")
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		s.refuse(w, wire.Reject(http.StatusUnsupportedMediaType, "content_type", "", "want Content-Type: application/json"), key.Prefix)
		return
	}
	tk, ok := s.admit.admit()
	if !ok {
		s.busy(w)
		return
	}
	body, rj := s.readBody(w, r, tk)
	if rj == errBusy {
		tk.done()
		s.busy(w)
		return
	}
	if rj != nil {
		tk.done()
		s.refuse(w, rj, key.Prefix)
		return
	}
	now := s.cfg.Now()
	b, rj := wire.Validate(body, wire.Limits{MaxRecords: s.cfg.MaxRecords, Versions: s.cfg.Versions, MinClient: s.cfg.MinClientVersion, Now: now, MaxClockSkew: s.cfg.MaxClockSkew})
	// The write that follows is bounded by the pool and WriteTimeout, and
	// only valid batches of rate-limited keys reach it.
	tk.done()
	if rj != nil {
		s.refuse(w, rj, key.Prefix)
		return
	}
	if b.SchemaVersion >= 2 {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.WriteTimeout)
		rj, err := s.checkNames(ctx, b, key.UserID)
		cancel()
		if err != nil {
			s.cfg.Logger.Warn("session catalog lookup failed", "key", key.Prefix, "err", err)
			s.m.rejected.WithLabelValues("unavailable").Inc()
			s.retryLater(w, http.StatusServiceUnavailable, s.cfg.RetryAfter, "database unavailable")
			return
		}
		if rj != nil {
			s.refuse(w, rj, key.Prefix)
			return
		}
	}
	// The owner is the key's, whatever the payload says (and the validator
	// refuses a payload that says anything).
	batch := store.Batch{UserID: key.UserID, ReceivedAt: b.ReceivedAt, ClockOffset: b.ClockOffset, Batch: b.Batch}
	s.m.inflight.Inc()
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.WriteTimeout)
	start := time.Now()
	res, err := s.st.Write(ctx, &batch) // mutant:server-acks-before-commit
	s.m.dbLatency.Observe(time.Since(start).Seconds())
	cancel()
	s.m.inflight.Dec()
	if err != nil {
		var ce *store.ConflictError
		switch {
		case errors.As(err, &ce):
			s.refuse(w, wire.Reject(http.StatusBadRequest, "foreign_session", ce.Path, "session belongs to another user"), key.Prefix)
		case errors.Is(err, store.ErrRejected):
			// The validator let through what a CHECK constraint refused:
			// a gap to close, logged without the value.
			s.cfg.Logger.Error("database constraint rejected a validated batch", "key", key.Prefix)
			s.refuse(w, wire.Reject(http.StatusBadRequest, "constraint", "", "rejected by a database constraint"), key.Prefix)
		default:
			s.cfg.Logger.Warn("batch write failed", "key", key.Prefix, "err", err)
			s.m.rejected.WithLabelValues("unavailable").Inc()
			s.retryLater(w, http.StatusServiceUnavailable, s.cfg.RetryAfter, "database unavailable") // mutant:server-500-when-database-down
		}
		return
	}
	if b.SchemaVersion >= 2 {
		s.rememberCatalogs(b, key.UserID)
	}
	s.m.records.WithLabelValues("accepted").Add(float64(res.Accepted))
	s.m.records.WithLabelValues("duplicate").Add(float64(res.Duplicates))
	s.touch(key)
	writeJSON(w, http.StatusOK, map[string]int{"accepted": res.Accepted, "duplicates": res.Duplicates})
}

// errBusy is readBody's answer when the admission budget cannot hold the
// body: 503, not a rejection of the batch.
var errBusy = &wire.Rejection{Status: http.StatusServiceUnavailable, Reason: "busy"}

// busy answers a request the admission has no room for: the client keeps
// its batch and comes back.
func (s *Server) busy(w http.ResponseWriter) {
	s.m.rejected.WithLabelValues("busy").Inc()
	s.retryLater(w, http.StatusServiceUnavailable, time.Second, "busy: retry later")
}

// readBody reads the body within the limits, inflating gzip without ever
// holding more than MaxInflated+1 bytes: a gzip bomb stops at the limit.
// Every buffer is reserved in tk first (errBusy when it cannot be).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, tk *ticket) ([]byte, *wire.Rejection) {
	if r.ContentLength > s.cfg.MaxBody {
		return nil, wire.Reject(http.StatusRequestEntityTooLarge, "too_large", "", "body over %d bytes", s.cfg.MaxBody)
	}
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	switch enc {
	case "", "identity", "gzip":
	default:
		return nil, wire.Reject(http.StatusUnsupportedMediaType, "content_encoding", "", "want Content-Encoding gzip or none")
	}
	// The body as sent first (at most MaxBody). A gzip trailer states the
	// inflated size, so an honest body is inflated into one buffer of the
	// right size. A trailer that lies only costs the liar growth within
	// its reservation.
	zbody, err := readAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody), r.ContentLength, s.cfg.MaxBody+1, tk)
	var mbe *http.MaxBytesError
	switch {
	case err == errNoRoom:
		return nil, errBusy
	case errors.As(err, &mbe):
		return nil, wire.Reject(http.StatusRequestEntityTooLarge, "too_large", "", "body over %d bytes", s.cfg.MaxBody)
	case err != nil:
		return nil, wire.Reject(http.StatusBadRequest, "gzip", "", "invalid or truncated body")
	case enc != "gzip":
		return zbody, nil
	}
	hint := int64(-1)
	if len(zbody) >= 18 {
		hint = int64(binary.LittleEndian.Uint32(zbody[len(zbody)-4:]))
	}
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	if zr == nil {
		zr, err = gzip.NewReader(bytes.NewReader(zbody))
	} else {
		err = zr.Reset(bytes.NewReader(zbody))
	}
	if err != nil {
		return nil, wire.Reject(http.StatusBadRequest, "gzip", "", "invalid gzip")
	}
	defer gzipReaders.Put(zr)
	body, err := readAll(zr, hint, s.cfg.MaxInflated+1, tk)
	if err == errNoRoom {
		return nil, errBusy
	}
	if err != nil {
		return nil, wire.Reject(http.StatusBadRequest, "gzip", "", "invalid or truncated body")
	}
	if int64(len(body)) > s.cfg.MaxInflated { // mutant:inflated-size-unchecked
		return nil, wire.Reject(http.StatusRequestEntityTooLarge, "too_large_inflated", "", "body over %d bytes once inflated", s.cfg.MaxInflated)
	}
	return body, nil
}

// gzipReaders keeps inflaters from request to request: a new one costs
// ~40 KiB of tables.
var gzipReaders sync.Pool

// errNoRoom: the admission budget cannot hold the buffer.
var errNoRoom = errors.New("admission budget spent")

// readAll reads at most limit bytes of in into a buffer of the size hint
// (the body's stated length; -1 when unknown), growing it only when the
// hint was wrong. Each buffer is reserved in tk, twice (the parse and the
// decoded records are of its order), before it is made. The buffer is the
// request's own (never pooled): the parsed batch points into it.
func readAll(in io.Reader, hint, limit int64, tk *ticket) ([]byte, error) {
	size := int64(64 << 10)
	if hint >= 0 {
		size = hint + 1 // room to read EOF without growing
	}
	size = min(size, limit)
	if !tk.reserve(2 * size) {
		return nil, errNoRoom
	}
	buf := make([]byte, 0, size)
	for int64(len(buf)) < limit {
		if len(buf) == cap(buf) {
			next := min(max(2*int64(cap(buf)), 64<<10), limit)
			if !tk.reserve(2 * next) {
				return nil, errNoRoom
			}
			nb := make([]byte, len(buf), next)
			copy(nb, buf)
			buf = nb
		}
		n, err := in.Read(buf[len(buf):min(int64(cap(buf)), limit)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// touch records the key's use at most once a minute per process.
func (s *Server) touch(k store.APIKey) {
	now := s.cfg.Now()
	if last, ok := s.touched.Load(k.Hash); ok && now.Sub(last.(time.Time)) < time.Minute {
		return
	}
	s.touched.Store(k.Hash, now)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.st.TouchKey(ctx, k.Hash, now); err != nil {
		s.cfg.Logger.Warn("cannot record key use", "key", k.Prefix, "err", err)
	}
}

func (s *Server) handleWhoami(w http.ResponseWriter, r *http.Request) {
	key, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"user_id": key.UserID, "key_prefix": key.Prefix})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.st.Ping(ctx); err != nil {
		s.retryLater(w, http.StatusServiceUnavailable, s.cfg.RetryAfter, "database unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// handleSchema publishes the supported wire versions and, for each, the
// allowlist derived from the declaration.
func (s *Server) handleSchema(w http.ResponseWriter, r *http.Request) {
	type field struct {
		Kind     string   `json:"kind"`
		Nullable bool     `json:"nullable,omitempty"`
		Enum     []string `json:"enum,omitempty"`
		Pattern  string   `json:"pattern,omitempty"`
		Min      *int64   `json:"min,omitempty"`
		Max      *int64   `json:"max,omitempty"`
		MaxItems int      `json:"max_items,omitempty"`
	}
	describe := func(f *schema.Field) field {
		d := field{Kind: f.Kind().String(), Nullable: f.Nullable(), Enum: f.Enum(), MaxItems: f.MaxItems()}
		if f.Pattern() != nil {
			d.Pattern = f.Pattern().Expr()
		}
		if f.Kind() == schema.KindInt {
			d.Min, d.Max = new(f.Min()), new(f.Max())
		}
		return d
	}
	versions := map[string]any{}
	for _, v := range s.cfg.Versions {
		recs := map[string]any{}
		for _, rec := range schema.Records() {
			fields := map[string]field{}
			for _, f := range rec.Fields() {
				if f.Scope() == schema.Central && f.Since() <= v {
					fields[f.Name()] = describe(f)
				}
			}
			entry := map[string]any{"fields": fields}
			if names := rec.PropNames(); names != nil {
				props := map[string]map[string]field{}
				for _, name := range names {
					props[name] = map[string]field{}
					for _, f := range rec.Props(name) {
						if f.Since() <= v {
							props[name][f.Name()] = describe(f)
						}
					}
				}
				entry["props"] = props
			}
			recs[rec.Batch()] = entry
		}
		versions[strconv.Itoa(v)] = recs
	}
	writeJSON(w, http.StatusOK, map[string]any{"current": schema.WireVersion, "supported": s.cfg.Versions, "versions": versions})
}

// NewKey makes a new API key (package apikey) and its stored form, hash
// and prefix; the key itself is never kept.
func NewKey(userID, label string, now time.Time) (string, store.APIKey) {
	key := apikey.New()
	return key, store.APIKey{Hash: apikey.Hash(key), Prefix: apikey.Stored(key), UserID: userID, Label: label, CreatedAt: now}
}

// keyCache remembers key lookups for a while, so a batch costs no key query
// and a revoked key is refused within the TTL.
type keyCache struct {
	st  store.Keys
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[schema.Hash]cachedKey
}

type cachedKey struct {
	key     store.APIKey
	found   bool
	fetched time.Time
}

const keyCacheMax = 100_000

func newKeyCache(st store.Keys, ttl time.Duration, now func() time.Time) *keyCache {
	return &keyCache{st: st, ttl: ttl, now: now, m: map[schema.Hash]cachedKey{}}
}

// lookup finds an active key. The key is compared as its SHA-256, in
// constant time, so neither the lookup nor the comparison leaks how much of
// a guess was right.
func (c *keyCache) lookup(ctx context.Context, token string) (store.APIKey, error) {
	h := schema.Hash(apikey.Hash(token))
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[h]
	c.mu.Unlock()
	if !ok || now.Sub(e.fetched) > c.ttl {
		k, err := c.st.LookupKey(ctx, h)
		if err != nil && !errors.Is(err, store.ErrNoKey) {
			return store.APIKey{}, err
		}
		e = cachedKey{key: k, found: err == nil, fetched: now}
		c.mu.Lock()
		if len(c.m) >= keyCacheMax {
			clear(c.m) // a flood of random keys must not grow memory without bound
		}
		c.m[h] = e
		c.mu.Unlock()
	}
	if !e.found || e.key.Revoked() || subtle.ConstantTimeCompare(e.key.Hash[:], h[:]) != 1 { // mutant:revoked-keys-accepted
		return store.APIKey{}, store.ErrNoKey
	}
	return e.key, nil
}
