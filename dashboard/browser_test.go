package dashboard

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/fredcode/fredtel/insights"
	"github.com/fredcode/fredtel/internal/sim"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// chromium finds the browser: FREDTEL_CHROMIUM, else Debian's
// /usr/bin/chromium (scripts/test installs it), else one on PATH. Missing,
// the test fails in CI (or with FREDTEL_REQUIRE_DB=1, as scripts/test
// sets) and is skipped, with the reason, elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FREDTEL_CHROMIUM"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := "headless Chromium is needed for the dashboard's browser test and was not found (/usr/bin/chromium; scripts/test installs it with apt-get install chromium; or set FREDTEL_CHROMIUM)"
	if testdb.Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// artifacts is the folder the screenshots go to: FREDTEL_ARTIFACTS, else a
// new temporary folder that is kept (its path is logged).
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FREDTEL_ARTIFACTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "fredtel-dashboard-screenshots-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// TestBrowser drives the dashboard of a real fredtel serve, filled by the
// simulator (a fleet recorded through the real client library and sent to
// the server's ingest API with its users' keys), in real headless Chromium:
// the login, every page without a console error, the charts' numbers
// against the insights, a loop's drill-down to its session, a narrow
// window and the keyboard; screenshots of each page as artifacts.
func TestBrowser(t *testing.T) {
	chrome := chromium(t)
	shots := artifacts(t)
	db := testdb.SQLite(t)
	srv := testkit.StartServer(t, db, "", "--dashboard-token", testToken, "--log-format", "text")
	base := "http://" + srv.URL

	ctx := context.Background()
	var keys []sim.UserKey
	for i := range 6 {
		keys = append(keys, sim.UserKey{Key: testkit.CreateKey(t, db, fmt.Sprintf("user-%02d", i+1))})
	}
	filled := time.Now()
	truth, err := sim.Run(ctx, sim.Config{Sessions: 150, Seed: 14, TempDir: t.TempDir()}, sim.Target{APIURL: base, Keys: keys})
	if err != nil {
		t.Fatalf("simulate: %v", err)
	}
	t.Logf("simulated %d sessions, %d turns, %d tool calls through the server in %v",
		truth.Totals.Sessions, truth.Totals.Turns, truth.Totals.ToolCalls, time.Since(filled))
	want, err := insights.Compute(ctx, db, insights.Options{})
	if err != nil {
		t.Fatal(err)
	}
	trends, err := insights.ComputeTrends(ctx, db, insights.Options{}, 60)
	if err != nil {
		t.Fatal(err)
	}

	bctx, cancel := browser(t, chrome)
	defer cancel()
	takeErrs := consoleErrors(t, bctx)
	var mu sync.Mutex
	var urls []string
	err = chromedp.Listen(bctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			urls = append(urls, e.Request.URL)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	// Without the cookie: the login form; the data refused, also with an
	// ingest API key of this server.
	must(t, chromedp.Do(bctx,
		chromedp.Navigate(base+"/dashboard/loops?since=all"),
		chromedp.WaitVisible(chromedp.ID("token"))))
	loc := run(t, bctx, chromedp.Location())
	if !strings.Contains(loc, "/dashboard/login?next=") {
		t.Errorf("without the token: at %s, want the login form", loc)
	}
	for _, hdr := range [][]string{nil, {"Authorization", "Bearer " + keys[0].Key}} {
		if r, _ := get(t, http.DefaultClient, base+"/dashboard/api/report?since=all", hdr...); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("the report without the token (with an API key: %v): %d", hdr != nil, r.StatusCode)
		}
	}
	shot(t, bctx, shots, "login")
	start := time.Now()
	must(t, chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.ID("token"), testToken),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS("table"))))
	loc = run(t, bctx, chromedp.Location())
	if loc != base+"/dashboard/loops?since=all" {
		t.Errorf("after the login: at %s, want the page asked for", loc)
	}
	t.Logf("login and first page: %v", time.Since(start))

	pages := []string{"", "stuck", "commands", "retries", "loops", "plan", "permissions"}
	expect := expectedCharts(want, trends)
	timings := map[string]time.Duration{}
	for _, p := range pages {
		name := cmp.Or(p, "overview")
		charts, took := load(t, bctx, base+"/dashboard/"+p+"?since=all")
		timings[name] = took
		if errs := takeErrs(); len(errs) > 0 {
			t.Errorf("%s: console errors: %v", name, errs)
		}
		if len(charts) == 0 {
			t.Errorf("%s: no chart drawn", name)
		}
		for kind, got := range charts {
			w, ok := expect[kind]
			if !ok {
				t.Errorf("%s: chart %s has no expectation", name, kind)
				continue
			}
			if !reflect.DeepEqual(normal(t, got), normal(t, w)) {
				gj, _ := json.Marshal(got)
				wj, _ := json.Marshal(w)
				t.Errorf("%s: chart %s drew\n%s\nthe insights say\n%s", name, kind, gj, wj)
			}
		}
		shot(t, bctx, shots, name)
	}
	t.Logf("page loads until every chart is drawn: %v", timings)

	// Drill down: the costliest loop's link reaches its session's timeline
	// with the loop's calls marked.
	top := want.ToolLoops.Loops[0]
	must(t, chromedp.Do(bctx,
		chromedp.Navigate(base+"/dashboard/loops?since=all"),
		chromedp.WaitVisible(chromedp.CSS("tr.loop-row a.sid")),
		chromedp.Click(chromedp.CSS("tr.loop-row a.sid")),
		chromedp.WaitVisible(chromedp.CSS("ol.timeline"))))
	loc = run(t, bctx, chromedp.Location())
	marked := run(t, bctx, chromedp.Evaluate[[]map[string]string](`Array.from(document.querySelectorAll("li.call.loop")).map(e => ({tool: e.dataset.tool, loop: e.dataset.loop, pos: e.dataset.pos}))`))
	injected := false
	for _, l := range truth.ToolLoops.Loops {
		injected = injected || l.SessionID.String() == top.SessionID && l.ToolName == top.ToolName
	}
	if !injected {
		t.Errorf("the costliest loop (%s in %s) is not one the simulator injected", top.ToolName, top.SessionID)
	}
	if want := fmt.Sprintf("/dashboard/session/%s?since=all#call-%d-%d", top.SessionID, top.StartTurnSeq, top.StartCallSeq); !strings.HasSuffix(loc, want) {
		t.Errorf("the loop link led to %s, want %s", loc, want)
	}
	// The call the link names is the first of a marked run of this tool.
	target := run(t, bctx, chromedp.Evaluate[map[string]string](`(e => e ? {cls: e.className, tool: e.dataset.tool, pos: e.dataset.pos || ""} : {})(document.getElementById(location.hash.slice(1)))`))
	if target["cls"] != "call loop" || target["tool"] != top.ToolName || target["pos"] != "1" {
		t.Errorf("the linked call is %v, want the first call of a %s loop", target, top.ToolName)
	}
	tl, err := insights.Timeline(ctx, db, insights.TimelineOptions{SessionID: top.SessionID})
	if err != nil {
		t.Fatal(err)
	}
	var inRun int64
	for _, m := range marked {
		if m["tool"] == top.ToolName && m["loop"] == "0" {
			inRun++
		}
	}
	var wantMarked int64
	for _, l := range tl.Loops {
		wantMarked += l.Repeats
	}
	if inRun < top.Repeats || int64(len(marked)) != wantMarked {
		t.Errorf("timeline marks %d calls (%d of the loop's %s run), want %d and %d", len(marked), inRun, top.ToolName, wantMarked, top.Repeats)
	}
	sessCharts, _ := load(t, bctx, loc)
	if errs := takeErrs(); len(errs) > 0 {
		t.Errorf("session: console errors: %v", errs)
	}
	var durs []any
	for _, tu := range tl.Turns {
		durs = append(durs, tu.DurationMs)
	}
	if got := sessCharts["session-turns"]; got == nil || !reflect.DeepEqual(normal(t, got.Series["duration_ms"]), normal(t, durs)) {
		t.Errorf("session chart %v, want durations %v", got, durs)
	}
	shot(t, bctx, shots, "session")

	// The keyboard: the first Tab reaches the skip link, Enter moves focus
	// to the content.
	must(t, chromedp.Do(bctx,
		chromedp.Navigate(base+"/dashboard/?since=all"),
		chromedp.WaitVisible(chromedp.CSS("main")),
		chromedp.KeyEvent(kb.Tab)))
	focused := run(t, bctx, chromedp.Evaluate[string](`document.activeElement.className + ":" + document.activeElement.getAttribute("href")`))
	if focused != "skip:#main" {
		t.Errorf("first Tab focuses %q, want the skip link", focused)
	}
	// The navigation keeps the window and model of the page.
	must(t, chromedp.Do(bctx,
		chromedp.Navigate(base+"/dashboard/?since=30d&model=fred-pro"),
		chromedp.Click(chromedp.CSS(`nav a[href^="/dashboard/retries"]`)),
		chromedp.WaitVisible(chromedp.CSS("#storms"))))
	if loc = run(t, bctx, chromedp.Location()); !strings.HasSuffix(loc, "/dashboard/retries?model=fred-pro&since=30d") {
		t.Errorf("the nav link led to %s", loc)
	}
	// A narrow window: no sideways scrolling of the page, charts fit.
	must(t, chromedp.Do(bctx,
		chromedp.EmulateViewport(375, 800),
		chromedp.Navigate(base+"/dashboard/?since=all"),
		chromedp.Poll[chromedp.Void](`window.fredtel && window.fredtel.ready`, chromedp.WithPollingTimeout(20*time.Second))))
	overflow := run(t, bctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`))
	if overflow {
		t.Errorf("the overview scrolls sideways in a 375 px window")
	}
	shot(t, bctx, shots, "overview-narrow")
	must(t, chromedp.Do(bctx, chromedp.EmulateReset()))
	if errs := takeErrs(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}

	// The token never was in a URL, nor in the server's log.
	mu.Lock()
	for _, u := range urls {
		if strings.Contains(u, testToken) {
			t.Errorf("the token is in the URL %s", u)
		}
	}
	mu.Unlock()
	if strings.Contains(srv.Stderr(), testToken) {
		t.Errorf("the token is in the server's log")
	}
}

// TestBrowserSelfHosted: the dashboard over a self-hoster's own tables,
// filled by the simulator through the self-hosted writer (text kept),
// served without a token on loopback as `fredtel dashboard` serves it: the
// pages load without a console error, and a session's timeline shows its
// text.
func TestBrowserSelfHosted(t *testing.T) {
	chrome := chromium(t)
	shots := artifacts(t)
	db := testdb.SQLite(t)
	ctx := context.Background()
	if _, err := sim.Run(ctx, sim.Config{Sessions: 40, Seed: 3, TempDir: t.TempDir()}, sim.Target{DBURL: db}); err != nil {
		t.Fatalf("simulate: %v", err)
	}
	h, err := New(Config{DBURL: db, Tables: "self-hosted", Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	want, err := insights.Compute(ctx, db, insights.Options{Tables: "self-hosted"})
	if err != nil {
		t.Fatal(err)
	}
	bctx, cancel := browser(t, chrome)
	defer cancel()
	errs := consoleErrors(t, bctx)
	charts, _ := load(t, bctx, srv.URL+"/dashboard/?since=all")
	if got := charts["activity"]; got == nil || got.Series["users"] != nil || len(got.Series["sessions"]) == 0 {
		t.Errorf("self-hosted activity chart: %+v (no user ids there: sessions only)", got)
	}
	shot(t, bctx, shots, "self-hosted-overview")
	if len(want.ToolLoops.Loops) == 0 {
		t.Fatal("the self-hosted fleet has no loop")
	}
	id := want.ToolLoops.Loops[0].SessionID
	load(t, bctx, srv.URL+"/dashboard/session/"+id+"?since=all")
	must(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("li.turn details summary"))))
	text := run(t, bctx, chromedp.Evaluate[string](`(document.querySelector("li.turn details pre") || {}).textContent || ""`))
	if strings.TrimSpace(text) == "" {
		t.Errorf("the self-hosted timeline shows no text")
	}
	shot(t, bctx, shots, "self-hosted-session")
	if e := errs(); len(e) > 0 {
		t.Errorf("console errors: %v", e)
	}
}

// browser starts headless Chromium with the flags of the test machines
// and a fresh profile.
func browser(t *testing.T, chrome string) (context.Context, context.CancelFunc) {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chrome),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	bctx, cancelCtx := chromedp.NewContext(alloc)
	bctx, cancelTimeout := context.WithTimeout(bctx, 4*time.Minute)
	return bctx, func() { cancelTimeout(); cancelCtx(); cancelAlloc() }
}

// consoleErrors collects the page's console errors, uncaught exceptions
// and error log entries (failed loads, CSP violations); the func returned
// takes what came so far.
func consoleErrors(t *testing.T, bctx context.Context) func() []string {
	t.Helper()
	var mu sync.Mutex
	var errs []string
	err := chromedp.Listen(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				errs = append(errs, "console.error: "+strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			errs = append(errs, "exception: "+e.ExceptionDetails.Text+" "+exceptionDesc(e.ExceptionDetails))
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.EntryLevelError {
				errs = append(errs, "log: "+e.Entry.Text+" "+e.Entry.URL)
			}
		}
	})
	if err != nil {
		t.Fatalf("starting the browser: %v", err)
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := errs
		errs = nil
		return out
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func exceptionDesc(d *runtime.ExceptionDetails) string {
	if d.Exception != nil {
		return d.Exception.Description
	}
	return ""
}

// chartData is what app.js publishes per chart.
type chartData struct {
	Labels []any            `json:"labels,omitempty"`
	T      []any            `json:"t,omitempty"`
	Series map[string][]any `json:"series"`
}

// load opens a page and waits until every chart is drawn; it returns the
// charts' numbers and the time from navigation to the last chart.
func load(t *testing.T, ctx context.Context, u string) (map[string]*chartData, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(u),
		chromedp.Poll[chromedp.Void](`window.fredtel && window.fredtel.ready`, chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(20*time.Millisecond)),
	); err != nil {
		t.Fatalf("%s: %v", u, err)
	}
	took := time.Since(start)
	raw := run(t, ctx, chromedp.Evaluate[string](`JSON.stringify(window.fredtel.charts)`))
	errs := run(t, ctx, chromedp.Evaluate[[]string](`window.fredtel.errors`))
	if len(errs) > 0 {
		t.Errorf("%s: charts failed: %v", u, errs)
	}
	out := map[string]*chartData{}
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		t.Fatal(err)
	}
	return out, took
}

func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// normal turns v into the generic form JSON gives, so numbers compare as
// float64 whatever their Go type.
func normal(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func col[T any, V any](xs []T, f func(T) V) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

func ints(xs []int64) []any { return col(xs, func(x int64) int64 { return x }) }

func pcts(a, b []int64) []any {
	out := make([]any, len(a))
	for i := range a {
		if b[i] > 0 {
			out[i] = 100 * float64(a[i]) / float64(b[i])
		}
	}
	return out
}

// expectedCharts is, per chart kind, the numbers app.js must draw: read
// from the insights' own answers, independently of app.js.
func expectedCharts(r *insights.Report, tr *insights.Trends) map[string]*chartData {
	ts := ints(tr.T)
	series := func(kv ...any) map[string][]any {
		m := map[string][]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1].([]any)
		}
		return m
	}
	fl := func(p []*float64) []any { return col(p, func(x *float64) any { return x }) }
	e := map[string]*chartData{
		"activity": {T: ts, Series: series("sessions", ints(tr.Sessions))},
		"volume":   {T: ts, Series: series("turns", ints(tr.Turns), "tool_calls", ints(tr.ToolCalls))},
		"rates": {T: ts, Series: series("turn_error_pct", pcts(tr.TurnErrors, tr.Turns), "tool_error_pct", pcts(tr.ToolErrors, tr.ToolCalls),
			"retries_per_100_turns", pcts(tr.Retries, tr.Turns), "denied_pct", pcts(tr.Denied, tr.ToolCalls))},
		"duration-bands": {T: ts, Series: series("p50", fl(tr.DurationP50), "p95", fl(tr.DurationP95), "p99", fl(tr.DurationP99))},
		"retries-time":   {T: ts, Series: series("retries", ints(tr.Retries), "turn_errors", ints(tr.TurnErrors))},
	}
	if tr.Counted == "users" {
		e["activity"].Series["users"] = ints(tr.Users)
	}
	bins := func(edges []int64, f func(x int64, next *int64) string) []any {
		out := make([]any, len(edges))
		for i, x := range edges {
			if i+1 < len(edges) {
				out[i] = f(x, &edges[i+1])
			} else {
				out[i] = f(x, nil)
			}
		}
		return out
	}
	dh, th := map[string][]any{}, map[string][]any{}
	for _, m := range tr.ModelHistogram {
		dh[m.Model], th[m.Model] = ints(m.Duration), ints(m.ToolCalls)
	}
	secs := func(x int64) string {
		if x >= 1000 {
			return fmt.Sprint(float64(x)/1000) + " s"
		}
		return fmt.Sprint(x) + " ms"
	}
	e["duration-hist"] = &chartData{Labels: bins(tr.DurationEdges, func(x int64, next *int64) string {
		if next == nil {
			return "≥ " + secs(x)
		}
		return secs(x) + "–" + secs(*next)
	}), Series: dh}
	e["toolcall-hist"] = &chartData{Labels: bins(tr.ToolCallEdges, func(x int64, next *int64) string {
		switch {
		case next == nil:
			return fmt.Sprint("≥ ", x)
		case *next-x == 1:
			return fmt.Sprint(x)
		}
		return fmt.Sprintf("%d–%d", x, *next-1)
	}), Series: th}

	fr := map[string][]any{}
	for _, m := range r.Stuck.Models {
		for k := range m.FinishReasons {
			fr[k] = nil
		}
	}
	for k := range fr {
		fr[k] = col(r.Stuck.Models, func(m insights.ModelStats) int64 { return m.FinishReasons[k] })
	}
	e["finish-reasons"] = &chartData{Labels: col(r.Stuck.Models, func(m insights.ModelStats) string { return m.Model }), Series: fr}
	e["command-uses"] = &chartData{Labels: col(r.DeadCommands.Commands, func(c insights.CommandUse) string { return "/" + c.Command }),
		Series: series("uses", col(r.DeadCommands.Commands, func(c insights.CommandUse) int64 { return c.Uses }))}
	e["retry-errors"] = &chartData{Labels: col(r.RetryStorms.ErrorTypes, func(c insights.ErrorTypeCount) string { return c.ErrorType }),
		Series: series("retries", col(r.RetryStorms.ErrorTypes, func(c insights.ErrorTypeCount) int64 { return c.Retries }))}
	e["retry-attempts"] = &chartData{Labels: col(r.RetryStorms.Attempts, func(c insights.AttemptCount) string { return fmt.Sprint(c.Attempt) }),
		Series: series("retries", col(r.RetryStorms.Attempts, func(c insights.AttemptCount) int64 { return c.Retries }))}
	kinds := map[string]map[string]int64{}
	lengths := map[int64]int64{}
	var longest int64
	for _, l := range r.ToolLoops.Loops {
		if kinds[l.ToolName] == nil {
			kinds[l.ToolName] = map[string]int64{}
		}
		kinds[l.ToolName][l.Kind]++
		lengths[l.Repeats]++
		longest = max(longest, l.Repeats)
	}
	bt := r.ToolLoops.ByTool
	e["loops-by-tool"] = &chartData{Labels: col(bt, func(b insights.ToolLoopAgg) string { return b.ToolName }), Series: series(
		"stuck", col(bt, func(b insights.ToolLoopAgg) int64 { return b.Stuck }),
		"polling", col(bt, func(b insights.ToolLoopAgg) int64 { return kinds[b.ToolName]["polling"] }),
		"unknown", col(bt, func(b insights.ToolLoopAgg) int64 { return kinds[b.ToolName]["unknown"] }))}
	var ll, lv []any
	for k := int64(r.ToolLoops.MinRepeats); k <= longest; k++ {
		ll, lv = append(ll, fmt.Sprint(k)), append(lv, lengths[k])
	}
	e["loop-repeats"] = &chartData{Labels: ll, Series: series("loops", lv)}
	p := r.PlanMode
	e["plan-funnel"] = &chartData{Labels: []any{"sessions", "plan sessions", "acted after planning", "left plan without acting", "back to plan within 2 turns"},
		Series: series("sessions", []any{p.Sessions, p.PlanSessions, p.PlanToAct, p.LeftPlanWithoutActing, p.BackToPlanWithin2Turns})}
	pt := r.Permissions.Tools
	e["permissions"] = &chartData{Labels: col(pt, func(x insights.ToolPermissions) string { return x.ToolName }), Series: series(
		"auto_allowed", col(pt, func(x insights.ToolPermissions) int64 { return x.AutoAllowed }),
		"user_allowed", col(pt, func(x insights.ToolPermissions) int64 { return x.UserAllowed }),
		"denied", col(pt, func(x insights.ToolPermissions) int64 { return x.Denied }))}
	return e
}
