package dashboard

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/fredcode/fredtel/insights"
	"github.com/fredcode/fredtel/schema"
)

// insightPage is one page per analysis.
type insightPage struct {
	Slug, Nav, Title string
}

var insightPages = []insightPage{
	{"stuck", "Stuck", "Where the fast model gets stuck"},
	{"commands", "Commands", "Dead slash commands"},
	{"retries", "Retries", "Retry storms"},
	{"loops", "Loops", "Tool dispatch loops"},
	{"plan", "Plan mode", "Plan-mode adoption"},
	{"permissions", "Permissions", "Permission patterns"},
}

// sinceChoices are the windows of the filter's menu.
var sinceChoices = []struct{ Value, Label string }{
	{"1h", "last hour"}, {"24h", "last 24 hours"}, {"7d", "last 7 days"}, {"30d", "last 30 days"}, {"90d", "last 90 days"}, {"all", "all time"},
}

// filter is the window, model and agent of a request, as its query says.
type filter struct {
	Since, From, To, Model, Agent string
	Label                         string
	opts                          insights.Options
}

// Encode is the filter as a query string, for links and chart sources.
func (f filter) Encode() string {
	v := url.Values{}
	if f.From == "" && f.To == "" {
		v.Set("since", f.Since)
	}
	for k, x := range map[string]string{"from": f.From, "to": f.To, "model": f.Model, "agent": f.Agent} {
		if x != "" {
			v.Set(k, x)
		}
	}
	return v.Encode() // sorted by key, whatever the map's order
}

// Query is Encode for a template: a URL part html/template keeps as it is
// (it would escape a string's "=" and "&" after the "?").
func (f filter) Query() template.URL { return template.URL(f.Encode()) }

// ReportSrc and TrendsSrc are the JSON endpoints of the filter.
func (f filter) ReportSrc() string { return "/dashboard/api/report?" + f.Encode() }
func (f filter) TrendsSrc() string { return "/dashboard/api/trends?" + f.Encode() }

// key names the computation of the filter in the cache.
func (f filter) key() string {
	return f.opts.From.Format(time.RFC3339Nano) + "|" + f.opts.To.Format(time.RFC3339Nano) + "|" + f.Model + "|" + f.Agent
}

// errFilter is a query the dashboard does not understand; its message is
// fixed text, never the query's own.
type errFilter string

func (e errFilter) Error() string { return string(e) }

func (h *handler) filter(r *http.Request) (filter, error) {
	q := r.URL.Query()
	f := filter{Since: q.Get("since"), From: q.Get("from"), To: q.Get("to"), Model: q.Get("model"), Agent: q.Get("agent")}
	f.opts = insights.Options{Tables: h.cfg.Tables, Prices: h.cfg.Prices}
	if f.Model != "" {
		if len(f.Model) > 128 || !schema.PatModel().Match(f.Model) {
			return f, errFilter("The model filter is not a model name (such as fred-flash).")
		}
		f.opts.Model = f.Model
	}
	if f.Agent != "" {
		if !slices.Contains(schema.SessionFields().Agent.Enum(), f.Agent) {
			return f, errFilter("The agent filter is not an agent this build knows (fred, claude-code, codex, gemini-cli, other).")
		}
		f.opts.Agent = f.Agent
	}
	// Round "now" up to the minute: the same window for a minute, so the
	// page and its charts share one computation.
	now := h.cfg.Now().UTC().Truncate(time.Minute).Add(time.Minute)
	if f.From != "" || f.To != "" {
		f.Since = ""
		f.opts.To = now
		if f.To != "" {
			t, err := parseWhen(f.To)
			if err != nil {
				return f, errFilter("The window's end (to) is not a date (2026-11-30) or an RFC 3339 time.")
			}
			if len(f.To) == len("2006-01-02") {
				// A date picked as the end includes its day.
				t = t.Add(24 * time.Hour)
			}
			f.opts.To = t
		}
		if f.From != "" {
			t, err := parseWhen(f.From)
			if err != nil {
				return f, errFilter("The window's start (from) is not a date (2026-11-30) or an RFC 3339 time.")
			}
			f.opts.From = t
		} else {
			f.opts.From = f.opts.To.Add(-7 * 24 * time.Hour)
		}
		if !f.opts.From.Before(f.opts.To) {
			return f, errFilter("The window is empty: its start (from) must be before its end (to).")
		}
		f.Label = f.opts.From.Format("2006-01-02 15:04") + " to " + f.opts.To.Format("2006-01-02 15:04") + " UTC"
		return f, nil
	}
	if f.Since == "" {
		f.Since = "7d"
	}
	for _, c := range sinceChoices {
		if c.Value == f.Since {
			f.Label = c.Label
		}
	}
	switch f.Since {
	case "all":
		// Zero From and To: all time, as insights.Options reads them.
	case "1h", "24h", "7d", "30d", "90d":
		d := map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour,
			"30d": 30 * 24 * time.Hour, "90d": 90 * 24 * time.Hour}[f.Since]
		f.opts.From, f.opts.To = now.Add(-d), now
	default:
		return f, errFilter("The window (since) is none of 1h, 24h, 7d, 30d, 90d, all.")
	}
	return f, nil
}

func parseWhen(s string) (time.Time, error) {
	if len(s) > 64 {
		return time.Time{}, errors.New("too long")
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Parse("2006-01-02", s)
}

// pageData is what every template gets.
type pageData struct {
	Title   string
	Active  string
	Q       filter
	Since   []struct{ Value, Label string }
	Models  []string
	Agents  []string // the agents a session may say it ran in (schema.SessionFields().Agent.Enum())
	Pages   []insightPage
	Tables  string
	Counted string
	Token   bool // a token is configured: show the log-out button
	Next    string
	Error   string

	Report   *insights.Report
	Empty    *emptyState
	Problems []problemRow
	Page     insightPage
	Timeline *insights.SessionTimeline
	Session  string
}

// emptyState explains an empty page and what to run.
type emptyState struct {
	Title, Detail string
	Commands      []string
}

// problemRow is a detected problem with its evidence page.
type problemRow struct {
	insights.Problem
	Label, Link string
	Share       float64 // of the largest impact, for the meter
}

var problemInfo = map[string]struct{ label, page, anchor string }{
	"stuck_sessions":        {"Sessions stuck on a fast model", "stuck", "sessions"},
	"tool_loops":            {"Tool dispatch loops (stuck)", "loops", "loops"},
	"tool_loops_unverified": {"Tool loops (stuck or polling: unknown)", "loops", "loops"},
	"retry_storms":          {"Retry storms", "retries", "storms"},
	"denial_heavy_tools":    {"Tools users deny", "permissions", "tools"},
	"dead_commands":         {"Slash commands nobody uses", "commands", "unused"},
}

func (h *handler) base(r *http.Request, f filter, title, active string) *pageData {
	return &pageData{Title: title, Active: active, Q: f, Since: sinceChoices, Agents: schema.SessionFields().Agent.Enum(), Pages: insightPages,
		Tables: h.cfg.Tables, Token: h.session != nil}
}

// cached returns the cached or computed value of key.
func cached[T any](h *handler, r *http.Request, key string, fn func(context.Context) (T, error)) (T, error) {
	v, err := h.cache.get(r.Context(), key, func(ctx context.Context) (any, error) { return fn(ctx) })
	if err != nil {
		var zero T
		return zero, err
	}
	return v.(T), nil
}

func (h *handler) report(r *http.Request, f filter) (*insights.Report, error) {
	return cached(h, r, "report|"+f.key(), func(ctx context.Context) (*insights.Report, error) { return insights.Compute(ctx, h.cfg.DBURL, f.opts) })
}

func (h *handler) trends(r *http.Request, f filter) (*insights.Trends, error) {
	return cached(h, r, "trends|"+f.key(), func(ctx context.Context) (*insights.Trends, error) {
		return insights.ComputeTrends(ctx, h.cfg.DBURL, f.opts, 60)
	})
}

func (h *handler) timeline(r *http.Request, id string) (*insights.SessionTimeline, error) {
	return cached(h, r, "session|"+id, func(ctx context.Context) (*insights.SessionTimeline, error) {
		return insights.Timeline(ctx, h.cfg.DBURL, insights.TimelineOptions{Tables: h.cfg.Tables, SessionID: id})
	})
}

// empty turns an error of the insights into what the page says, or nil
// when the error is not about missing data.
func (h *handler) empty(err error, f filter) *emptyState {
	simulate := "fredtel simulate --url " + cmp.Or(h.cfg.IngestURL, "http://127.0.0.1:8700") + " --key KEY --sessions 300 --seed 1"
	if h.cfg.Tables == insights.TablesSelfHosted {
		simulate = "fredtel simulate --db DATABASE_URL --sessions 300 --seed 1"
	}
	switch {
	case errors.Is(err, insights.ErrNoData):
		e := &emptyState{Title: "No sessions in this window.",
			Detail:   "Nothing was recorded between the window's start and end" + map[bool]string{true: " for this model", false: ""}[f.Model != ""] + ". Pick a wider window (all time), or fill the database with a synthetic fleet:",
			Commands: []string{simulate}}
		if h.cfg.Tables == insights.TablesCentral {
			e.Commands = append(e.Commands, "fredtel demo")
		}
		return e
	case errors.Is(err, insights.ErrNoTables):
		return &emptyState{Title: "The database has no telemetry tables yet.",
			Detail:   "Create them, then fill them (or point the dashboard at the database the data is in):",
			Commands: []string{"fredtel migrate --db DATABASE_URL --set " + h.cfg.Tables, simulate}}
	case errors.Is(err, insights.ErrSchemaVersion):
		return &emptyState{Title: "The tables are of another schema version.",
			Detail:   "This fredtel reads schema version " + fmt.Sprint(schema.Version) + ". Migrate the database, or upgrade fredtel:",
			Commands: []string{"fredtel migrate --db DATABASE_URL --set " + h.cfg.Tables}}
	}
	return nil
}

// failCompute answers a page whose computation failed.
func (h *handler) failCompute(w http.ResponseWriter, r *http.Request, p *pageData, name string, err error) {
	if e := h.empty(err, p.Q); e != nil {
		p.Empty = e
		h.render(w, r, http.StatusOK, name, p)
		return
	}
	status, msg := h.classify(err)
	h.fail(w, r, status, msg, "")
}

// classify maps an error to a status and a fixed message; the error itself
// (a masked database URL, a driver's words) goes to the log only.
func (h *handler) classify(err error) (int, string) {
	switch {
	case errors.Is(err, insights.ErrNoSession):
		return http.StatusNotFound, "No such session in these tables."
	case errors.Is(err, insights.ErrBadOptions):
		return http.StatusBadRequest, "The page's query is not valid."
	case errors.Is(err, insights.ErrNoData), errors.Is(err, insights.ErrNoTables), errors.Is(err, insights.ErrSchemaVersion):
		return http.StatusNotFound, "No data: " + h.empty(err, filter{}).Title
	case errors.Is(err, context.DeadlineExceeded):
		h.log.Error("dashboard: computation timed out", "err", err.Error())
		return http.StatusServiceUnavailable, "The database took too long to answer."
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, "The request was cancelled."
	default:
		h.log.Error("dashboard: computation failed", "err", err.Error())
		return http.StatusServiceUnavailable, "The database could not be read (the server's log says why)."
	}
}

func (h *handler) models(rep *insights.Report, f filter) []string {
	var out []string
	seen := map[string]bool{}
	if rep != nil {
		for _, m := range rep.Stuck.Models {
			out = append(out, m.Model)
			seen[m.Model] = true
		}
	}
	if f.Model != "" && !seen[f.Model] {
		out = append(out, f.Model)
	}
	sort.Strings(out)
	return out
}

func (h *handler) overview(w http.ResponseWriter, r *http.Request) {
	f, err := h.filter(r)
	p := h.base(r, f, "Overview", "overview")
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, err.Error(), "")
		return
	}
	rep, err := h.report(r, f)
	if err != nil {
		h.failCompute(w, r, p, "overview", err)
		return
	}
	p.Report, p.Models, p.Counted = rep, h.models(rep, f), rep.Counted
	var top float64
	for _, pr := range rep.Problems {
		top = max(top, impactOf(pr.Impact))
	}
	for _, pr := range rep.Problems {
		info := problemInfo[pr.Kind]
		row := problemRow{Problem: pr, Label: info.label, Link: "/dashboard/" + info.page + "?" + f.Encode() + "#" + info.anchor}
		if row.Label == "" {
			row.Label, row.Link = pr.Kind, "/dashboard/?"+f.Encode()
		}
		if top > 0 {
			row.Share = impactOf(pr.Impact) / top
		}
		p.Problems = append(p.Problems, row)
	}
	h.render(w, r, http.StatusOK, "overview", p)
}

// impactOf is the number problems are ranked by for the meter: wall time.
func impactOf(i insights.Impact) float64 { return float64(i.Ms) }

func (h *handler) insightPage(pg insightPage) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := h.filter(r)
		p := h.base(r, f, pg.Title, pg.Slug)
		p.Page = pg
		if err != nil {
			h.fail(w, r, http.StatusBadRequest, err.Error(), "")
			return
		}
		rep, err := h.report(r, f)
		if err != nil {
			h.failCompute(w, r, p, pg.Slug, err)
			return
		}
		p.Report, p.Models, p.Counted = rep, h.models(rep, f), rep.Counted
		h.render(w, r, http.StatusOK, pg.Slug, p)
	}
}

func (h *handler) sessionPage(w http.ResponseWriter, r *http.Request) {
	f, err := h.filter(r)
	p := h.base(r, f, "Session", "")
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, err.Error(), "")
		return
	}
	id := r.PathValue("id")
	tl, err := h.timeline(r, id)
	if err != nil {
		status, msg := h.classify(err)
		if errors.Is(err, insights.ErrBadOptions) {
			status, msg = http.StatusNotFound, "That is not a session id."
		}
		h.fail(w, r, status, msg, "")
		return
	}
	p.Timeline, p.Session = tl, tl.Session.SessionID
	p.Title = "Session " + tl.Session.SessionID[:8]
	h.render(w, r, http.StatusOK, "session", p)
}

// ---- JSON ---------------------------------------------------------------

func (h *handler) writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	if err := enc.Encode(v); err != nil {
		h.log.Error("dashboard: encode", "err", err.Error())
		http.Error(w, `{"error":"encoding failed"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

func (h *handler) jsonError(w http.ResponseWriter, err error) {
	status, msg := h.classify(err)
	var fe errFilter
	if errors.As(err, &fe) {
		status, msg = http.StatusBadRequest, string(fe)
	}
	body := map[string]any{"error": msg}
	if e := h.empty(err, filter{}); e != nil {
		body["empty"] = true
	}
	h.writeJSON(w, status, body)
}

// apiOf serves what compute answers for the request's filter
// (/dashboard/api/report and /trends).
func apiOf[T any](h *handler, compute func(*http.Request, filter) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := h.filter(r)
		var v T
		if err == nil {
			v, err = compute(r, f)
		}
		if err != nil {
			h.jsonError(w, err)
			return
		}
		h.writeJSON(w, http.StatusOK, v)
	}
}

func (h *handler) apiSession(w http.ResponseWriter, r *http.Request) {
	tl, err := h.timeline(r, r.PathValue("id"))
	if err != nil {
		if errors.Is(err, insights.ErrBadOptions) {
			h.writeJSON(w, http.StatusNotFound, map[string]string{"error": "not a session id"})
			return
		}
		h.jsonError(w, err)
		return
	}
	h.writeJSON(w, http.StatusOK, tl)
}

// ---- cache --------------------------------------------------------------

// cache shares one computation among the requests that ask for it within
// ttl (a page and the charts it loads), and bounds how many run at once.
type cache struct {
	ttl     time.Duration
	max     int
	sem     chan struct{}
	mu      sync.Mutex
	entries map[string]*entry
}

type entry struct {
	done chan struct{}
	at   time.Time
	val  any
	err  error
}

func newCache(ttl time.Duration, max, concurrent int) *cache {
	return &cache{ttl: ttl, max: max, sem: make(chan struct{}, concurrent), entries: map[string]*entry{}}
}

// computeTimeout bounds one computation, whoever waits for it.
const computeTimeout = 30 * time.Second

// get returns the value of key, computing it with fn in the calling
// goroutine when no fresh one is there. Errors are not kept.
func (c *cache) get(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	c.mu.Lock()
	e := c.entries[key]
	if e != nil && (e.at.IsZero() || time.Since(e.at) < c.ttl) {
		c.mu.Unlock()
		select {
		case <-e.done:
			return e.val, e.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	e = &entry{done: make(chan struct{})}
	c.entries[key] = e
	c.evict()
	c.mu.Unlock()

	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		c.finish(key, e, nil, ctx.Err())
		return nil, ctx.Err()
	}
	// The computation outlives a cancelled request (others may wait for
	// it) but not its deadline.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), computeTimeout)
	v, err := fn(cctx)
	cancel()
	<-c.sem
	c.finish(key, e, v, err)
	return v, err
}

func (c *cache) finish(key string, e *entry, v any, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.val, e.err, e.at = v, err, time.Now()
	if err != nil && c.entries[key] == e {
		delete(c.entries, key)
	}
	close(e.done)
}

// evict drops stale entries, then the oldest finished ones, down to max.
func (c *cache) evict() {
	if len(c.entries) <= c.max {
		return
	}
	for k, e := range c.entries {
		if !e.at.IsZero() && time.Since(e.at) >= c.ttl {
			delete(c.entries, k)
		}
	}
	for len(c.entries) > c.max {
		var oldK string
		var old *entry
		for k, e := range c.entries {
			if !e.at.IsZero() && (old == nil || e.at.Before(old.at)) {
				oldK, old = k, e
			}
		}
		if old == nil {
			return // all running: they finish soon
		}
		delete(c.entries, oldK)
	}
}
