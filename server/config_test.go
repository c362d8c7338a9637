package server_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/server"
	"github.com/fredcode/fredtel/store"
)

// inProcess is a server.Server over a fresh SQLite database, behind
// httptest, with one key; for the options a test sets directly.
type inProcess struct {
	url string
	key string
	st  store.Store
}

func startInProcess(t *testing.T, cfg server.Config) *inProcess {
	t.Helper()
	return startOn(t, openCentral(t, testdb.SQLite(t)), cfg)
}

func openCentral(t *testing.T, url string) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), url, store.Options{Set: schema.CentralSet, Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// startOn serves st in process, with a new key of alice's.
func startOn(t *testing.T, st store.Store, cfg server.Config) *inProcess {
	t.Helper()
	p := &inProcess{st: st}
	p.key = p.newKey(t, "alice")
	srv, err := server.New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	p.url = hs.URL
	return p
}

func (p *inProcess) newKey(t *testing.T, user string) string {
	t.Helper()
	key, rec := server.NewKey(user, "", time.Now())
	if err := p.st.CreateKey(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	return key
}

// do sends a request and decodes a JSON answer.
func (p *inProcess) do(t testing.TB, method, path, key string, body []byte, hdr map[string]string) (int, http.Header, map[string]any) {
	t.Helper()
	a := send(t, method, p.url+path, key, body, hdr)
	return a.code, a.header, a.body
}

// TestVersionsOption: a server built to accept only v1 refuses v2 batches
// with 422 and its own list, and publishes only v1 at /v1/schema.
func TestVersionsOption(t *testing.T) {
	p := startInProcess(t, server.Config{Versions: []int{1}})
	now := time.Now()
	v1 := fixture.ValidBatch(now)
	if code, _, body := p.do(t, "POST", "/v1/batch", p.key, fixture.MustJSON(v1), nil); code != 200 {
		t.Fatalf("v1 batch: %d %v", code, body)
	}
	v2 := fixture.ValidBatch(now)
	v2["schema_version"] = 2
	code, _, body := p.do(t, "POST", "/v1/batch", p.key, fixture.MustJSON(v2), nil)
	if code != 422 || body["error"] != "schema_version_unsupported" || string(fixture.MustJSON(body["supported"])) != "[1]" {
		t.Fatalf("v2 batch to a v1-only server: %d %v", code, body)
	}
	code, _, body = p.do(t, "GET", "/v1/schema", "", nil, nil)
	if code != 200 || string(fixture.MustJSON(body["supported"])) != "[1]" {
		t.Fatalf("/v1/schema: %d %v", code, body["supported"])
	}
	if vs, _ := body["versions"].(map[string]any); len(vs) != 1 || vs["1"] == nil {
		t.Fatalf("/v1/schema publishes versions %v, want 1 only", body["versions"])
	}
	if _, err := server.New(server.Config{Versions: []int{schema.WireVersion + 1}}, p.st); err == nil {
		t.Fatal("a server accepting a version this build does not declare was built")
	}
}

// TestUnauthorizedCarriesChallenge: every 401 names the scheme to use
// (RFC 9110 §15.5.2). On main before this test, 401s had no
// WWW-Authenticate.
func TestUnauthorizedCarriesChallenge(t *testing.T) {
	p := startInProcess(t, server.Config{})
	body := fixture.MustJSON(fixture.ValidBatch(time.Now()))
	for _, c := range []struct{ name, method, path, key string }{
		{"no key", "POST", "/v1/batch", ""},
		{"unknown key", "POST", "/v1/batch", "fred_live_" + "NoSuchKeyNoSuchKeyNoSuchKey12345"},
		{"whoami unknown key", "GET", "/v1/whoami", "fred_live_nope"},
	} {
		code, hdr, _ := p.do(t, c.method, c.path, c.key, body, nil)
		if code != 401 || hdr.Get("WWW-Authenticate") != "Bearer" {
			t.Errorf("%s: %d, WWW-Authenticate %q; want 401 with Bearer", c.name, code, hdr.Get("WWW-Authenticate"))
		}
	}
}

// TestAdmissionAnswersBusyAtOnce: beyond MaxValidating requests in flight,
// or beyond ValidateMemory bytes between them, a request is answered 503
// with Retry-After at once, without its body being read; a client that
// comes back once there is room is served.
func TestAdmissionAnswersBusyAtOnce(t *testing.T) {
	// A rate limit out of the way: the third request is asked until it is turned away.
	p := startInProcess(t, server.Config{MaxValidating: 2, ValidateMemory: 4 << 20, Rate: 10000, Burst: 10000})
	valid := fixture.MustJSON(fixture.ValidBatch(time.Now()))

	// Two requests whose bodies never finish hold both slots.
	var writers []*io.PipeWriter
	done := make(chan int, 2)
	for range 2 {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		// Before the server's own cleanup, which waits for its requests.
		t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) })
		req, _ := http.NewRequest("POST", p.url+"/v1/batch", pr)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+p.key)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		pw.Write(valid[:10])
	}
	// The server admits both once their first bytes arrive; until then a
	// third request may still find room (and is stored: batches are
	// idempotent), so ask until it is turned away.
	var (
		code int
		hdr  http.Header
		body map[string]any
		took time.Duration
	)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		start := time.Now()
		code, hdr, body = p.do(t, "POST", "/v1/batch", p.key, valid, nil)
		took = time.Since(start)
		if code != 200 {
			break
		}
	}
	if code != 503 || hdr.Get("Retry-After") == "" {
		t.Fatalf("a third request with two in flight: %d %v, Retry-After %q; want 503 with Retry-After", code, body, hdr.Get("Retry-After"))
	}
	if took > time.Second {
		t.Errorf("the 503 took %v: it must not wait for room", took)
	}
	for _, pw := range writers {
		pw.CloseWithError(io.ErrUnexpectedEOF)
	}
	for range 2 {
		<-done
	}
	// The server notices the broken bodies a moment after the client does.
	served := false
	for deadline := time.Now().Add(5 * time.Second); !served && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		code, _, _ := p.do(t, "POST", "/v1/batch", p.key, fixture.MustJSON(fixture.ValidBatch(time.Now())), nil)
		served = code == 200
	}
	if !served {
		t.Fatal("once the two requests ended, a batch still found no room")
	}

	// A body whose buffers need more than the budget: 503, not read.
	big := fixture.Gzip(bytes.Repeat([]byte(" "), 3<<20))
	if code, hdr, body := p.do(t, "POST", "/v1/batch", p.key, big, map[string]string{"Content-Encoding": "gzip"}); code != 503 || hdr.Get("Retry-After") == "" {
		t.Fatalf("a body over the memory budget: %d %v; want 503 with Retry-After", code, body)
	}
	if code, _, body := p.do(t, "POST", "/v1/batch", p.key, fixture.MustJSON(fixture.ValidBatch(time.Now())), nil); code != 200 {
		t.Fatalf("after the refused body the budget is free again: %d %v", code, body)
	}
}
