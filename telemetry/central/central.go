// Package central is the client's central sender: it posts a session's
// remote-safe batches to the ingest API (POST /v1/batch, gzip), sorts the
// answers into deliver, drop, retry and stop (SPEC §5), keeps what could not
// be delivered in a bounded disk spool that the next session sends first,
// and keeps a small audit log of what left the machine (`fred telemetry
// show`).
//
// It is a telemetry.CentralSink: plug it in with
// telemetry.Options{NewCentral: central.New}. Everything it writes lives in
// the config dir, mode 0600, and only ever holds remote-safe payloads. The
// config dir, spool/ and audit/ must be the user's own (CheckConfigDir); no
// symbolic link is followed there, only files of the sender's own names are
// read or deleted, and a spooled file is sent only when wire's
// validator accepts it (it imports nothing of the server but that package).
package central

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/fredcode/fredtel/internal/redact"
	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/telemetry"
	"github.com/fredcode/fredtel/wire"
	"github.com/google/uuid"
)

// Defaults.
const (
	DefaultSpoolBytes = 4 << 20 // the spool's bound on disk
	DefaultAuditN     = 10      // batches kept in the audit log
	requestTimeout    = 10 * time.Second
	// spoolPerSend bounds how many spooled batches one SendBacklog delivers,
	// so a large backlog never holds the session's own batches back long.
	spoolPerSend = 4
)

// Sender posts batches to one ingest API with one key.
type Sender struct {
	url, key    string
	fredVersion string
	client      *http.Client
	spool       *spool
	audit       *audit
	stderr      io.Writer
	now         func() time.Time
	noticeOnce  sync.Once
	spoolOnce   sync.Once
	// buf and zw are reused from batch to batch; Send and Spool are only
	// called from the session's one background goroutine.
	buf []byte
	zw  *gzip.Writer
}

// New builds the sender for a session (a telemetry NewCentral function).
// It refuses to start when the config folder, its spool or its audit
// folder is not the user's own (telemetry.CheckConfigDir).
func New(cfg telemetry.CentralConfig) (telemetry.CentralSink, error) {
	if err := telemetry.CheckConfigDir(cfg.ConfigDir); err != nil {
		return nil, err
	}
	return NewSender(cfg), nil
}

// NewSender is New with the concrete type.
func NewSender(cfg telemetry.CentralConfig) *Sender {
	var stderr io.Writer = io.Discard
	if cfg.Stderr != nil {
		stderr = cfg.Stderr
	}
	return &Sender{
		url: telemetry.APIURL(cfg.APIURL) + "/v1/batch", key: cfg.APIKey,
		// Cleaned as the batch's client.fred_version is: the version is
		// the embedder's input, and a header must not carry whatever it is.
		fredVersion: cleanVersion(cfg.FredVersion),
		// One client for the session, with timeouts at every stage: an
		// endpoint that accepts and never answers costs a timeout, not a
		// hang (and Close cancels the request sooner).
		client: &http.Client{Timeout: requestTimeout, Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			MaxIdleConns:          2,
			IdleConnTimeout:       30 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: requestTimeout,
			ExpectContinueTimeout: time.Second,
		}},
		spool:  newSpool(cfg.ConfigDir, DefaultSpoolBytes),
		audit:  newAudit(cfg.ConfigDir, DefaultAuditN),
		stderr: stderr,
		now:    time.Now,
	}
}

// encode appends the JSON body of POST /v1/batch for b to the sender's
// buffer: the envelope, then every record through the encoders generated
// from the declaration (no reflection, no allocation per record).
func (s *Sender) encode(b *telemetry.RemoteBatch) []byte {
	rv, _ := schema.SessionFields().RuntimeVersion.Clean(goVersion())
	out := s.buf[:0]
	out = append(out, `{"`+wire.KeySchemaVersion+`":`...)
	out = strconv.AppendInt(out, schema.WireVersion, 10)
	out = append(out, `,"`+wire.KeyBatchID+`":`...)
	out = schema.AppendUUID(out, uuid.Must(uuid.NewV7()))
	out = append(out, `,"`+wire.KeySentAt+`":`...)
	out = schema.TimeOf(s.now()).AppendJSON(out)
	out = append(out, `,"`+wire.KeyClient+`":{"`+wire.KeyFredVersion+`":`...)
	out = schema.AppendString(out, s.fredVersion)
	out = append(out, `,"`+wire.KeyRuntimeVersion+`":`...)
	out = schema.AppendString(out, rv)
	out = append(out, "},"...)
	out = append(b.AppendJSON(out), '}')
	s.buf = out
	return out
}

// cleanVersion is the Fred version the declaration allows (a semantic
// version), else its fallback.
func cleanVersion(v string) string {
	c, _ := schema.SessionFields().FredVersion.Clean(v)
	return c
}

func goVersion() string {
	v := runtime.Version()
	if i := strings.IndexAny(v, " -"); i > 0 {
		v = v[:i]
	}
	return v
}

// MaxRecords is the most records one request carries: the session's queue
// may hold more after a failed send, and the server takes at most 1,000.
const MaxRecords = 500

// chunks splits b into batches of at most max records, as views of b.
func chunks(b *telemetry.RemoteBatch, max int) []telemetry.RemoteBatch {
	var out []telemetry.RemoteBatch
	for rest := *b; rest.Len() > 0; {
		var c telemetry.RemoteBatch
		c, rest = rest.Split(max)
		out = append(out, c)
	}
	return out
}

// Send delivers b in requests of at most MaxRecords records. If one fails,
// the session keeps all of b and sends it again later: what got through
// already is acknowledged as duplicates, since the server is idempotent on
// record ids. Earlier sessions' spooled batches are not sent here but by
// SendBacklog, in the background, so they never take the session's own
// records' place in the close budget.
func (s *Sender) Send(ctx context.Context, b *telemetry.RemoteBatch) error {
	for _, c := range chunks(b, MaxRecords) {
		if err := s.post(ctx, s.encode(&c)); err != nil {
			return err
		}
	}
	return nil
}

// SendBacklog delivers a few spooled batches of earlier sessions: the
// session calls it in the background from its start, and at Close with what
// the budget has left. done reports that the spool has nothing more this
// process can send.
func (s *Sender) SendBacklog(ctx context.Context) (done bool, err error) {
	return s.sendSpooled(ctx, spoolPerSend)
}

// sendSpooled posts up to n spooled batches; each delivered or refused one
// leaves the spool, any other stays for a later try (a 422 in particular:
// the server does not take this version yet, and the records wait).
func (s *Sender) sendSpooled(ctx context.Context, n int) (bool, error) {
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		f, body, ok := s.spool.claim(s.now())
		if !ok {
			return true, nil
		}
		err := s.post(ctx, body)
		var se *telemetry.SendError
		if err == nil || (errors.As(err, &se) && se.Drop) {
			s.spool.done(f)
			continue
		}
		s.spool.unclaim(f)
		return false, err
	}
	return false, nil
}

// refreshSentAt rewrites sent_at of a spooled body: the server measures a
// batch's record times against its sent_at, which must be the sending time.
func refreshSentAt(body []byte, now time.Time) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return body
	}
	ts, _ := json.Marshal(schema.TimeOf(now))
	m[wire.KeySentAt] = ts
	out, err := json.Marshal(m)
	if err != nil {
		return body
	}
	return out
}

// keep hands body to the audit log. body may be the encoding buffer, which
// the audit then owns: the sender encodes the next batch into the buffer
// the audit gave back. It matters: the audit copying each body instead
// costs BenchmarkPipeline/fred 1.04× to 1.08× the CPU per record (three
// runs, each against this in the same run), a buffer grown afresh for each
// batch 1.15× to 1.26×.
func (s *Sender) keep(body []byte, status string) {
	s.buf = s.audit.add(body, status, s.now())
}

// post sends one JSON body and sorts the answer (SPEC §5).
func (s *Sender) post(ctx context.Context, body []byte) error {
	// A fresh buffer per request (the transport may read a body after Do
	// returns on errors), but one gzip writer for the session: its state
	// is most of gzip's cost in allocations.
	gz := bytes.NewBuffer(make([]byte, 0, len(body)/4+512))
	if s.zw == nil {
		// The fastest level: at batch sizes it compresses JSON only about
		// 10% worse than the default, for a third of the CPU, and that CPU
		// is the user's.
		s.zw, _ = gzip.NewWriterLevel(gz, gzip.BestSpeed)
	} else {
		s.zw.Reset(gz)
	}
	s.zw.Write(body)
	s.zw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, gz)
	if err != nil {
		return &telemetry.SendError{Err: err, Stop: true}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("User-Agent", "fred/"+s.fredVersion)
	resp, err := s.client.Do(req)
	if err != nil {
		return &telemetry.SendError{Err: fmt.Errorf("POST %s: %w", redact.URL(s.url), unwrapURL(err))}
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch code := resp.StatusCode; {
	case code == http.StatusOK:
		s.keep(body, "sent")
		return nil
	case code == http.StatusBadRequest, code == http.StatusRequestEntityTooLarge, code == http.StatusUnsupportedMediaType:
		return &telemetry.SendError{Err: fmt.Errorf("%s: %s", statusLine(resp.StatusCode), firstLine(answer)), Drop: true}
	case code == http.StatusUnauthorized, code == http.StatusForbidden:
		return &telemetry.SendError{Err: fmt.Errorf("%s: the API key is unknown or revoked (fred login)", statusLine(resp.StatusCode)), Stop: true}
	case code == http.StatusUpgradeRequired:
		var v struct {
			Min string `json:"min_version"`
		}
		json.Unmarshal(answer, &v)
		v.Min = redact.Terminal(v.Min, 40) // the server's text, on the user's terminal
		s.noticeOnce.Do(func() {
			fmt.Fprintf(s.stderr, "fred: this version of Fred is too old to send telemetry; upgrade to %s or later\n", v.Min)
		})
		return &telemetry.SendError{Err: fmt.Errorf("%s: client older than %s", statusLine(resp.StatusCode), v.Min), Stop: true}
	case code == http.StatusUnprocessableEntity:
		// schema_version_unsupported: version skew, never the records'
		// fault. Keep them (the session spools its own at Close, a spooled
		// batch stays put) and stop sending until a later session.
		return &telemetry.SendError{Err: fmt.Errorf("%s: the server does not take schema version %d yet; the records are kept", statusLine(resp.StatusCode), schema.WireVersion), Stop: true}
	case code == http.StatusTooManyRequests, code == http.StatusServiceUnavailable, code >= 500:
		return &telemetry.SendError{Err: fmt.Errorf("%s", statusLine(resp.StatusCode)), RetryAfter: retryAfter(resp.Header.Get("Retry-After"), s.now())}
	}
	return &telemetry.SendError{Err: fmt.Errorf("%s: %s", statusLine(resp.StatusCode), firstLine(answer)), Drop: true}
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && n >= 0 {
		return min(time.Duration(n)*time.Second, time.Hour)
	}
	if t, err := http.ParseTime(h); err == nil {
		return min(max(t.Sub(now), 0), time.Hour)
	}
	return 0
}

// statusLine names an answer by its code: "429 Too Many Requests". Not
// resp.Status, whose reason phrase the server chooses.
func statusLine(code int) string {
	return strconv.Itoa(code) + " " + http.StatusText(code)
}

// firstLine is the first line of a server's answer, safe for a terminal
// (no control characters) and at most 200 characters.
func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b[:min(len(b), 1024)]))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return redact.Terminal(s, 200)
}

// unwrapURL drops the *url.Error wrapper, whose message repeats the URL.
func unwrapURL(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// Spool keeps an undelivered batch for the next session, in files of at
// most MaxRecords records; the oldest go when the spool is over its bound.
func (s *Sender) Spool(ctx context.Context, b *telemetry.RemoteBatch) error {
	dropped := 0
	for _, c := range chunks(b, MaxRecords) {
		if err := ctx.Err(); err != nil {
			return err // out of time: the CLI is leaving
		}
		body := s.encode(&c)
		d, err := s.spool.put(body)
		if err != nil {
			return err
		}
		dropped += d
		s.keep(body, "spooled")
	}
	s.audit.flush()
	if dropped > 0 {
		s.spoolOnce.Do(func() {
			fmt.Fprintf(s.stderr, "fred: telemetry: the spool is full; %d older batches were dropped to keep it under %d bytes\n", dropped, s.spool.maxBytes)
		})
	}
	return nil
}

// Purge deletes the spool: telemetry was turned off.
func (s *Sender) Purge() error { return s.spool.purge() }

// Close writes the audit log and releases the connections.
func (s *Sender) Close(context.Context) error {
	s.audit.flush()
	s.client.CloseIdleConnections()
	return nil
}

// PurgeSpool deletes the spool of a config dir: `fred telemetry off`.
func PurgeSpool(configDir string) error { return newSpool(configDir, 0).purge() }

// SpoolSize reports the batches and bytes waiting in a config dir's spool.
func SpoolSize(configDir string) (batches int, bytes int64) {
	return newSpool(configDir, 0).size()
}
