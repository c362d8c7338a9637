package dashboard

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fredcode/fredtel/insights"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/schema"
)

const testToken = "s3cret-dashboard-token-0123456789"

var testNow = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// client is an http.Client that keeps cookies and does not follow
// redirects, so each answer can be checked.
func client(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil) // never fails without options
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 60 * time.Second}
}

// setText keeps text on the first turn of the first session of a
// self-hosted SQLite database.
func setText(t *testing.T, db, in, out string) {
	t.Helper()
	d, err := sql.Open("sqlite", strings.TrimPrefix(db, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	res, err := d.Exec("UPDATE dsc_turns SET user_input = ?, assistant_text = ? WHERE session_id = '0190b000-0000-7000-8000-000000000001' AND seq = 0", in, out)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("text set on %d turns", n)
	}
}

func newServer(t *testing.T, cfg Config) (*httptest.Server, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, &logs
}

func get(t *testing.T, c *http.Client, u string, hdr ...string) (*http.Response, string) {
	t.Helper()
	return do(t, c, "GET", u, nil, hdr...)
}

func postForm(t *testing.T, c *http.Client, u string, form url.Values, hdr ...string) (*http.Response, string) {
	t.Helper()
	return do(t, c, "POST", u, strings.NewReader(form.Encode()), append([]string{"Content-Type", "application/x-www-form-urlencoded"}, hdr...)...)
}

// do sends a request with the headers hdr (name, value, …) and reads the
// answer.
func do(t *testing.T, c *http.Client, method, u string, body io.Reader, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestAccessWithToken: nothing but the login form and static files opens
// without the cookie the form sets; the cookie is HttpOnly, SameSite=Strict
// and is not the token; the token is in no URL, header or log line.
func TestAccessWithToken(t *testing.T) {
	url0 := testdb.SQLite(t)
	fleet(t, url0, schema.CentralSet, 30, testNow)
	srv, logs := newServer(t, Config{DBURL: url0, Token: testToken})
	c := client(t)
	var seen []string // every URL and header value the client saw
	note := func(r *http.Response) {
		seen = append(seen, r.Request.URL.String())
		for k, vs := range r.Header {
			seen = append(seen, k+": "+strings.Join(vs, ","))
		}
	}

	for _, path := range []string{"/dashboard/", "/dashboard/stuck?since=all", "/dashboard/session/0190b000-0000-7000-8000-000000000001"} {
		r, _ := get(t, c, srv.URL+path)
		note(r)
		if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/dashboard/login?next=") {
			t.Errorf("%s without a cookie: %d %s", path, r.StatusCode, r.Header.Get("Location"))
		}
	}
	for _, hdr := range [][]string{
		nil,
		{"Authorization", "Bearer fred_live_0123456789abcdef0123456789abcdef"}, // an ingest API key
		{"Authorization", "Bearer " + testToken},                               // the token, but not through the form
		{"Cookie", CookieName + "=" + testToken},                               // the token itself as the cookie
		{"Cookie", CookieName + "=" + strings.Repeat("0", 64)},
	} {
		r, body := get(t, c, srv.URL+"/dashboard/api/report?since=all", hdr...)
		note(r)
		if r.StatusCode != http.StatusUnauthorized || strings.Contains(body, "sessions") {
			t.Errorf("api with %v: %d %q", hdr, r.StatusCode, body)
		}
	}
	if r, _ := get(t, c, srv.URL+"/dashboard/api/report?since=all&token="+testToken); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("token in the query opened the api: %d", r.StatusCode)
	}

	// The login page and static files need no cookie.
	if r, body := get(t, c, srv.URL+"/dashboard/login?next=/dashboard/loops"); r.StatusCode != 200 || !strings.Contains(body, `type="password"`) {
		t.Errorf("login form: %d", r.StatusCode)
	}
	if r, _ := get(t, c, srv.URL+"/dashboard/static/app.js"); r.StatusCode != 200 {
		t.Errorf("static: %d", r.StatusCode)
	}

	// A cross-site POST is refused before the token is looked at.
	r, _ := postForm(t, c, srv.URL+"/dashboard/login", url.Values{"token": {testToken}}, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")
	if r.StatusCode != http.StatusForbidden || len(r.Cookies()) > 0 {
		t.Errorf("cross-site login: %d, cookies %v", r.StatusCode, r.Cookies())
	}
	r, body := postForm(t, c, srv.URL+"/dashboard/login", url.Values{"token": {"wrong-token-wrong-token"}, "next": {"/dashboard/loops?since=all"}})
	note(r)
	if r.StatusCode != http.StatusUnauthorized || len(r.Cookies()) > 0 || !strings.Contains(body, "not the dashboard token") {
		t.Errorf("wrong token: %d, cookies %v", r.StatusCode, r.Cookies())
	}
	r, _ = postForm(t, c, srv.URL+"/dashboard/login", url.Values{"token": {testToken}, "next": {"/dashboard/loops?since=all"}})
	note(r)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/dashboard/loops?since=all" {
		t.Fatalf("login: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}
	ck := r.Cookies()
	if len(ck) != 1 || ck[0].Name != CookieName || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Path != "/dashboard/" ||
		ck[0].Value == testToken || strings.Contains(ck[0].Value, testToken) {
		t.Fatalf("cookie = %+v", ck)
	}
	// An open redirect through next is not possible.
	r2, _ := postForm(t, client(t), srv.URL+"/dashboard/login", url.Values{"token": {testToken}, "next": {"//evil.example/dashboard/"}})
	if loc := r2.Header.Get("Location"); loc != "/dashboard/" {
		t.Errorf("next=//evil.example: redirected to %q", loc)
	}

	for _, path := range []string{"/dashboard/?since=all", "/dashboard/loops?since=all", "/dashboard/api/report?since=all"} {
		r, _ := get(t, c, srv.URL+path)
		note(r)
		if r.StatusCode != 200 {
			t.Errorf("%s with the cookie: %d", path, r.StatusCode)
		}
	}
	r, _ = postForm(t, c, srv.URL+"/dashboard/logout", nil)
	note(r)
	if r, _ := get(t, c, srv.URL+"/dashboard/api/report?since=all"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("after logout: %d", r.StatusCode)
	}

	for _, s := range append(seen, logs.String()) {
		if strings.Contains(s, testToken) && !strings.Contains(s, "token="+testToken) {
			t.Errorf("the token appears in %q", s)
		}
	}
	if strings.Contains(logs.String(), testToken) {
		t.Errorf("the token is in the log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "dashboard login refused") {
		t.Errorf("the failed login is not logged:\n%s", logs.String())
	}
}

// TestLoginRateLimit: guessing gets ten tries, then 429 even for the
// right token.
func TestLoginRateLimit(t *testing.T) {
	srv, _ := newServer(t, Config{DBURL: testdb.SQLite(t), Token: testToken})
	c := client(t)
	for i := 0; i < 10; i++ {
		if r, _ := postForm(t, c, srv.URL+"/dashboard/login", url.Values{"token": {"guess-guess-guess-" + string(rune('a'+i))}}); r.StatusCode != 401 {
			t.Fatalf("guess %d: %d", i, r.StatusCode)
		}
	}
	r, _ := postForm(t, c, srv.URL+"/dashboard/login", url.Values{"token": {testToken}})
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" || len(r.Cookies()) > 0 {
		t.Errorf("11th try: %d", r.StatusCode)
	}
}

// TestAccessWithoutToken: served only on a loopback listener, only for a
// loopback Host (a DNS-rebinding page names its own host).
func TestAccessWithoutToken(t *testing.T) {
	db := testdb.SQLite(t)
	fleet(t, db, schema.CentralSet, 10, testNow)
	c := client(t)
	off, _ := newServer(t, Config{DBURL: db, Loopback: false})
	if r, body := get(t, c, off.URL+"/dashboard/?since=all"); r.StatusCode != http.StatusForbidden || !strings.Contains(body, "--dashboard-token") {
		t.Errorf("non-loopback listener without a token: %d", r.StatusCode)
	}
	if r, _ := get(t, c, off.URL+"/dashboard/api/report?since=all"); r.StatusCode != http.StatusForbidden {
		t.Errorf("api, non-loopback listener without a token: %d", r.StatusCode)
	}
	on, _ := newServer(t, Config{DBURL: db, Loopback: true})
	if r, _ := get(t, c, on.URL+"/dashboard/?since=all"); r.StatusCode != 200 {
		t.Errorf("loopback: %d", r.StatusCode)
	}
	req, _ := http.NewRequest("GET", on.URL+"/dashboard/api/report?since=all", nil)
	req.Host = "rebound.evil.example"
	r, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusForbidden {
		t.Errorf("foreign Host on loopback: %d", r.StatusCode)
	}
	for h, loopback := range map[string]bool{"localhost:8701": true, "127.0.0.1": true, "[::1]:80": true, "127.1.2.3:9": true,
		"localhost.evil.example": false, "10.0.0.1": false, "example.com:80": false, "": false} {
		if loopbackHost(h) != loopback {
			t.Errorf("loopbackHost(%q) = %v, want %v", h, !loopback, loopback)
		}
	}
	if _, err := New(Config{DBURL: db, Token: "short"}); err == nil {
		t.Error("a 5-character token was accepted")
	}
}

var (
	inlineScript = regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]`)
	eventAttr    = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
	styleAttr    = regexp.MustCompile(`(?i)\sstyle\s*=`)
)

// TestPages: every page answers with the security headers, no inline
// script, style or handler, and the JSON the charts read equals the
// insights package's answer for the same window, on both backends and
// table sets.
func TestPages(t *testing.T) {
	for _, be := range testdb.Backends {
		for _, set := range schema.Sets() {
			t.Run(be.Name+"/"+set.String(), func(t *testing.T) {
				t.Parallel()
				db := be.URL(t)
				fleet(t, db, set, 60, testNow)
				srv, _ := newServer(t, Config{DBURL: db, Tables: set.String(), Loopback: true})
				c := client(t)
				ctx := context.Background()
				// The JSON endpoints are the insights' answers.
				sameAs := func(path string, o insights.Options) *insights.Report {
					t.Helper()
					o.Tables = set.String()
					w, err := insights.Compute(ctx, db, o)
					if err != nil {
						t.Fatal(err)
					}
					_, body := get(t, c, srv.URL+path)
					if wb, _ := json.Marshal(w); strings.TrimSpace(body) != string(wb) {
						t.Errorf("%s differs from insights.Compute:\n%s\n%s", path, body, wb)
					}
					return w
				}
				want := sameAs("/dashboard/api/report?since=all", insights.Options{})
				if len(want.ToolLoops.Loops) == 0 || len(want.RetryStorms.StormSessions) == 0 || len(want.Stuck.StuckSessions) == 0 {
					t.Fatalf("the fleet lacks a problem: %+v", want.Problems)
				}
				pages := []string{"/dashboard/?since=all", "/dashboard/session/" + want.ToolLoops.Loops[0].SessionID,
					"/dashboard/login", "/dashboard/nope"}
				for _, p := range insightPages {
					pages = append(pages, "/dashboard/"+p.Slug+"?since=all")
				}
				for _, p := range pages {
					r, body := get(t, c, srv.URL+p)
					if p == "/dashboard/nope" {
						if r.StatusCode != 404 {
							t.Errorf("%s: %d", p, r.StatusCode)
						}
					} else if r.StatusCode != 200 && !(p == "/dashboard/login" && r.StatusCode == http.StatusSeeOther) {
						t.Errorf("%s: %d", p, r.StatusCode)
					}
					checkHeaders(t, p, r)
					if inlineScript.MatchString(body) || eventAttr.MatchString(body) || styleAttr.MatchString(body) {
						t.Errorf("%s has inline script, a handler or a style attribute", p)
					}
				}
				wt, err := insights.ComputeTrends(ctx, db, insights.Options{Tables: set.String()}, 60)
				if err != nil {
					t.Fatal(err)
				}
				_, body := get(t, c, srv.URL+"/dashboard/api/trends?since=all")
				wtb, _ := json.Marshal(wt)
				if strings.TrimSpace(body) != string(wtb) {
					t.Errorf("api/trends differs from insights.ComputeTrends")
				}
				// A model filter and a window reach the computation.
				if wm := sameAs("/dashboard/api/report?model=fred-pro&from=2026-11-30T06:00:00Z&to=2026-11-30T11:00:00Z", insights.Options{Model: "fred-pro",
					From: time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 30, 11, 0, 0, 0, time.UTC)}); wm.Totals.Sessions == want.Totals.Sessions {
					t.Errorf("the model filter and the window filtered nothing")
				}
				// A date as the end includes its day.
				if wd := sameAs("/dashboard/api/report?from=2026-11-30&to=2026-11-30", insights.Options{
					From: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}); wd.Totals.Sessions == 0 {
					t.Errorf("from=to=a date is not that day")
				}
				// since=7d counts back from the clock, rounded up to the minute.
				sameAs("/dashboard/api/report", insights.Options{From: testNow.Add(time.Minute - 7*24*time.Hour), To: testNow.Add(time.Minute)})
				// The overview ranks the problems as the report does and
				// links each to its evidence.
				_, body = get(t, c, srv.URL+"/dashboard/?since=all")
				kinds := regexp.MustCompile(`data-kind="([a-z_]+)"`).FindAllStringSubmatch(body, -1)
				if len(kinds) != len(want.Problems) {
					t.Fatalf("overview shows %d problems, the report %d", len(kinds), len(want.Problems))
				}
				for i, k := range kinds {
					if k[1] != want.Problems[i].Kind {
						t.Errorf("problem %d: %s, report %s", i, k[1], want.Problems[i].Kind)
					}
				}
				if cap := map[schema.Set]string{schema.CentralSet: "Sessions and users, by session start", schema.SelfHostedSet: "Sessions, by session start"}[set]; !strings.Contains(body, "<figcaption>"+cap+"</figcaption>") {
					t.Errorf("activity caption is not %q", cap)
				}
				if !strings.Contains(body, `href="/dashboard/loops?since=all#loops"`) {
					t.Errorf("no link from the loop problem to its evidence")
				}
			})
		}
	}
}

func checkHeaders(t *testing.T, path string, r *http.Response) {
	t.Helper()
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") ||
		!strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("%s: CSP %q", path, csp)
	}
	if r.Header.Get("X-Frame-Options") != "DENY" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%s: X-Frame-Options %q, X-Content-Type-Options %q", path, r.Header.Get("X-Frame-Options"), r.Header.Get("X-Content-Type-Options"))
	}
}

// TestPrices: with a price table the problems say what they cost.
func TestPrices(t *testing.T) {
	db := testdb.SQLite(t)
	fleet(t, db, schema.CentralSet, 30, testNow)
	p, err := insights.ParsePrices(strings.NewReader("# currency EUR\nfred-flash 0.10 0.40\nfred-pro 1.25 10.00\n"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := insights.Compute(context.Background(), db, insights.Options{Prices: p})
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := newServer(t, Config{DBURL: db, Loopback: true, Prices: p})
	_, body := get(t, client(t), srv.URL+"/dashboard/?since=all")
	for _, pr := range want.Problems {
		if pr.Impact.Cost != nil {
			if s := strconv.FormatFloat(*pr.Impact.Cost, 'f', 2, 64) + " EUR"; !strings.Contains(body, s) {
				t.Errorf("%s: cost %s not shown", pr.Kind, s)
			}
		}
	}
	if !strings.Contains(body, " EUR") {
		t.Errorf("no cost shown")
	}
}

// TestTimelineText: on self-hosted tables the timeline shows the kept
// text, escaped; on central ones there is none to show.
func TestTimelineText(t *testing.T) {
	db := testdb.SQLite(t)
	fleet(t, db, schema.SelfHostedSet, 3, testNow)
	setText(t, db, "<script>alert('x')</script> fix the & bug", "done <b>bold</b>")
	srv, _ := newServer(t, Config{DBURL: db, Tables: "self-hosted", Loopback: true})
	r, body := get(t, client(t), srv.URL+"/dashboard/session/0190b000-0000-7000-8000-000000000001")
	if r.StatusCode != 200 {
		t.Fatalf("session page: %d", r.StatusCode)
	}
	if strings.Contains(body, "<script>alert") || strings.Contains(body, "<b>bold") {
		t.Errorf("text not escaped")
	}
	if !strings.Contains(body, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; fix the &amp; bug") || !strings.Contains(body, "done &lt;b&gt;bold&lt;/b&gt;") {
		t.Errorf("text not shown:\n%s", body)
	}
}

// TestEmptyStates: an empty window, an empty database and a database
// without tables each say what to run; a bad query is refused without
// echoing it.
func TestEmptyStates(t *testing.T) {
	c := client(t)
	db := testdb.SQLite(t)
	fleet(t, db, schema.CentralSet, 3, testNow)
	srv, _ := newServer(t, Config{DBURL: db, Loopback: true, IngestURL: "http://127.0.0.1:8700"})
	r, body := get(t, c, srv.URL+"/dashboard/stuck?since=1h&model=fred-nonexistent")
	if r.StatusCode != 200 || !strings.Contains(body, "No sessions in this window") ||
		!strings.Contains(body, "fredtel simulate --url http://127.0.0.1:8700 --key KEY --sessions 300 --seed 1") {
		t.Errorf("empty window: %d\n%s", r.StatusCode, body)
	}
	for _, q := range []string{"since=forever", "model=%3Cscript%3Ex", "agent=%3Cscript%3Ex", "agent=cursor", "from=yesterday", "from=2026-11-30&to=2026-11-01"} {
		r, body := get(t, c, srv.URL+"/dashboard/?"+q)
		if r.StatusCode != 400 || strings.Contains(body, "<script>x") || strings.Contains(body, "forever") || strings.Contains(body, "yesterday") {
			t.Errorf("%s: %d", q, r.StatusCode)
		}
		if r, _ := get(t, c, srv.URL+"/dashboard/api/report?"+q); r.StatusCode != 400 {
			t.Errorf("api %s: %d", q, r.StatusCode)
		}
	}
	// The agent filter (issue 16): the fleet is fred's; another agent's
	// window is empty, fred's is not, and the filter stays in the links.
	if r, body := get(t, c, srv.URL+"/dashboard/stuck?since=all&agent=codex"); r.StatusCode != 200 || !strings.Contains(body, "No sessions in this window") {
		t.Errorf("agent=codex: %d, want the empty state\n%s", r.StatusCode, body)
	}
	if r, body := get(t, c, srv.URL+"/dashboard/?since=all&agent=fred"); r.StatusCode != 200 || strings.Contains(body, "No sessions in this window") ||
		!strings.Contains(body, "agent=fred") || !strings.Contains(body, "<option selected>fred</option>") {
		t.Errorf("agent=fred: %d, want the fleet, the filter kept in links and selected\n%s", r.StatusCode, body)
	}
	if r, _ := get(t, c, srv.URL+"/dashboard/session/not-a-uuid"); r.StatusCode != 404 {
		t.Errorf("bad session id: %d", r.StatusCode)
	}
	if r, _ := get(t, c, srv.URL+"/dashboard/session/0190b000-0000-7000-8000-999999999999"); r.StatusCode != 404 {
		t.Errorf("unknown session: %d", r.StatusCode)
	}

	// A database without tables.
	bare := testdb.SQLite(t)
	fleet(t, bare, schema.SelfHostedSet, 1, testNow) // the file exists, the central tables do not
	srv2, _ := newServer(t, Config{DBURL: bare, Loopback: true})
	r, body = get(t, c, srv2.URL+"/dashboard/")
	if r.StatusCode != 200 || !strings.Contains(body, "fredtel migrate --db DATABASE_URL --set central") {
		t.Errorf("no tables: %d\n%s", r.StatusCode, body)
	}
	// Self-hosted: simulate --db.
	srv3, _ := newServer(t, Config{DBURL: bare, Tables: "self-hosted", Loopback: true})
	_, body = get(t, c, srv3.URL+"/dashboard/?from=2020-01-01&to=2020-01-02")
	if !strings.Contains(body, "fredtel simulate --db DATABASE_URL --sessions 300 --seed 1") {
		t.Errorf("self-hosted empty state:\n%s", body)
	}
}
