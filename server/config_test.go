package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testdb"
	"github.com/fredcode/fredtel/internal/wiretest"
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
	ctx := context.Background()
	st, err := store.Open(ctx, testdb.SQLite(t), store.Options{Set: schema.CentralSet, Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, rec, err := server.NewKey("alice", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateKey(ctx, rec); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &inProcess{url: hs.URL, key: key, st: st}
}

// do sends a request and decodes a JSON answer.
func (p *inProcess) do(t testing.TB, method, path, key string, body []byte, hdr map[string]string) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, p.url+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(raw, &m)
	return resp.StatusCode, resp.Header, m
}

// TestVersionsOption: a server built to accept only v1 refuses v2 batches
// with 422 and its own list, and publishes only v1 at /v1/schema.
func TestVersionsOption(t *testing.T) {
	p := startInProcess(t, server.Config{Versions: []int{1}})
	now := time.Now()
	v1 := wiretest.ValidBatch(now)
	if code, _, body := p.do(t, "POST", "/v1/batch", p.key, wiretest.MustJSON(v1), nil); code != 200 {
		t.Fatalf("v1 batch: %d %v", code, body)
	}
	v2 := wiretest.ValidBatch(now)
	v2["schema_version"] = 2
	code, _, body := p.do(t, "POST", "/v1/batch", p.key, wiretest.MustJSON(v2), nil)
	if code != 422 || body["error"] != "schema_version_unsupported" || string(wiretest.MustJSON(body["supported"])) != "[1]" {
		t.Fatalf("v2 batch to a v1-only server: %d %v", code, body)
	}
	code, _, body = p.do(t, "GET", "/v1/schema", "", nil, nil)
	if code != 200 || string(wiretest.MustJSON(body["supported"])) != "[1]" {
		t.Fatalf("/v1/schema: %d %v", code, body["supported"])
	}
	if vs, _ := body["versions"].(map[string]any); len(vs) != 1 || vs["1"] == nil {
		t.Fatalf("/v1/schema publishes versions %v, want 1 only", body["versions"])
	}
	if _, err := server.New(server.Config{Versions: []int{schema.Version + 1}}, p.st); err == nil {
		t.Fatal("a server accepting a version this build does not declare was built")
	}
}

// TestUnauthorizedCarriesChallenge: every 401 names the scheme to use
// (RFC 9110 §15.5.2). On main before this test, 401s had no
// WWW-Authenticate.
func TestUnauthorizedCarriesChallenge(t *testing.T) {
	p := startInProcess(t, server.Config{})
	body := wiretest.MustJSON(wiretest.ValidBatch(time.Now()))
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
