package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/wire"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The integration suite starts the real fredtel binary on 127.0.0.1 and
// speaks raw HTTP to it: crafted requests, not the Go client.

type answer struct {
	code   int
	header http.Header
	body   map[string]any
}

// post sends body to /v1/batch with key and extra headers.
func post(t testing.TB, p *testkit.Process, key string, body []byte, hdr map[string]string) answer {
	t.Helper()
	return send(t, http.MethodPost, "http://"+p.URL+"/v1/batch", key, body, hdr)
}

// send sends a request with key and extra headers, and decodes a JSON answer.
func send(t testing.TB, method, url, key string, body []byte, hdr map[string]string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	a := answer{code: resp.StatusCode, header: resp.Header}
	raw, _ := io.ReadAll(resp.Body)
	json.Unmarshal(raw, &a.body)
	return a
}

// holdWriteLock blocks writers of db until release is called.
func holdWriteLock(t testing.TB, db string) (release func()) {
	t.Helper()
	ctx := context.Background()
	if strings.HasPrefix(db, "sqlite:") {
		sdb := testdb.Open(t, db)
		conn, err := sdb.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		return func() { conn.ExecContext(ctx, "ROLLBACK"); conn.Close(); sdb.Close() }
	}
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE telemetry_sessions IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	return func() { tx.Rollback(ctx); c.Close(ctx) }
}

// RunSuite reaches every answer of POST /v1/batch against a server on
// serverDB (db is the same database, reached directly, for checks).
func RunSuite(t *testing.T, db, serverDB, migrateDB string) {
	p := testkit.StartServer(t, serverDB, migrateDB, "--rate", "1000", "--burst", "1000", "--min-client-version", "1.0.0",
		"--key-cache-ttl", "1s", "--write-timeout", "1s")
	key := testkit.CreateKey(t, db, "alice")
	now := time.Now()

	t.Run("200 and an idempotent retry", func(t *testing.T) {
		b := fixture.MustJSON(fixture.ValidBatch(now))
		a := post(t, p, key, b, nil)
		if a.code != 200 || a.body["accepted"] != 7.0 || a.body["duplicates"] != 0.0 {
			t.Fatalf("first: %d %v", a.code, a.body)
		}
		a = post(t, p, key, fixture.Gzip(b), map[string]string{"Content-Encoding": "gzip"})
		if a.code != 200 || a.body["accepted"] != 0.0 || a.body["duplicates"] != 7.0 {
			t.Fatalf("gzip retry: %d %v", a.code, a.body)
		}
	})

	type tc struct {
		name   string
		body   func() []byte
		key    string
		hdr    map[string]string
		code   int
		field  string
		reason string
	}
	mutate := func(f func(b map[string]any)) func() []byte {
		return func() []byte { b := fixture.ValidBatch(now); f(b); return fixture.MustJSON(b) }
	}
	bomb := func() []byte {
		var buf bytes.Buffer
		w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zeros := make([]byte, 1<<20)
		for i := 0; i < 64; i++ { // 64 MiB inflated, about 64 KiB sent
			w.Write(zeros)
		}
		w.Close()
		return buf.Bytes()
	}
	cases := []tc{
		{name: "text in a turn", body: mutate(func(b map[string]any) { fixture.Rec(b, "turns", 0)["user_input"] = "my secret prompt" }), code: 400, field: "turns[0].user_input"},
		{name: "user_id in the payload", body: mutate(func(b map[string]any) { fixture.Rec(b, "sessions", 0)["user_id"] = "mallory" }), code: 400, field: "sessions[0].user_id"},
		{name: "unknown prop", body: mutate(func(b map[string]any) { fixture.Rec(b, "events", 0)["props"].(map[string]any)["args"] = "x" }), code: 400, field: "events[0].props.<unknown key>"},
		{name: "sentence as a tool name", body: mutate(func(b map[string]any) { fixture.Rec(b, "tool_calls", 0)["tool_name"] = "read the secret file" }), code: 400, field: "tool_calls[0].tool_name"},
		{name: "enum", body: mutate(func(b map[string]any) { fixture.Rec(b, "turns", 0)["mode"] = "yolo" }), code: 400, field: "turns[0].mode"},
		{name: "hash", body: mutate(func(b map[string]any) {
			fixture.Rec(b, "tool_calls", 0)["args_fingerprint"] = strings.Repeat("AB", 32)
		}), code: 400, field: "tool_calls[0].args_fingerprint"},
		{name: "negative count", body: mutate(func(b map[string]any) { fixture.Rec(b, "turns", 0)["prompt_tokens"] = -1 }), code: 400, field: "turns[0].prompt_tokens"},
		{name: "float count", body: mutate(func(b map[string]any) { fixture.Rec(b, "turns", 0)["prompt_tokens"] = 1.5 }), code: 400, field: "turns[0].prompt_tokens"},
		{name: "time outside the window", body: mutate(func(b map[string]any) {
			fixture.Rec(b, "turns", 0)["started_at"] = now.Add(-40 * 24 * time.Hour).UTC().Format(time.RFC3339)
		}), code: 400, field: "turns[0].started_at"},
		{name: "escaped key", body: func() []byte {
			return bytes.Replace(fixture.MustJSON(fixture.ValidBatch(now)), []byte(`"mode":"act"`), []byte(`"user\u005finput":"x","mode":"act"`), 1)
		}, code: 400, field: "turns[0].user_input"},
		{name: "duplicate key", body: func() []byte {
			return bytes.Replace(fixture.MustJSON(fixture.ValidBatch(now)), []byte(`"mode":"act"`), []byte(`"mode":"act","mode":"plan"`), 1)
		}, code: 400, field: "turns[0].mode"},
		{name: "not JSON", body: func() []byte { return []byte(`{"schema_version":1,`) }, code: 400},
		{name: "truncated gzip", body: func() []byte { g := fixture.Gzip(fixture.MustJSON(fixture.ValidBatch(now))); return g[:len(g)/2] }, hdr: map[string]string{"Content-Encoding": "gzip"}, code: 400},
		{name: "unknown key", key: "fred_live_nosuchkeynosuchkeynosuchkey12", body: mutate(func(map[string]any) {}), code: 401},
		{name: "no key", key: "-", body: mutate(func(map[string]any) {}), code: 401},
		{name: "body over 1 MiB", body: func() []byte { return bytes.Repeat([]byte(" "), 1<<20+10) }, code: 413},
		{name: "gzip bomb", body: bomb, hdr: map[string]string{"Content-Encoding": "gzip"}, code: 413},
		{name: "1001 records", body: mutate(func(b map[string]any) {
			e := b["events"].([]any)
			for len(e) < 1001-3 { // plus a session, a turn and a tool call
				x := maps.Clone(e[0].(map[string]any))
				x["event_id"] = uuid.Must(uuid.NewV7()).String()
				e = append(e, x)
			}
			b["events"] = e
		}), code: 413},
		{name: "text/plain", body: mutate(func(map[string]any) {}), hdr: map[string]string{"Content-Type": "text/plain"}, code: 415},
		{name: "brotli", body: mutate(func(map[string]any) {}), hdr: map[string]string{"Content-Encoding": "br"}, code: 415},
		{name: "future schema version", body: mutate(func(b map[string]any) { b["schema_version"] = 99 }), code: 422},
		{name: "client too old", body: mutate(func(b map[string]any) { b["client"].(map[string]any)["fred_version"] = "0.9.0" }), code: 426},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.code, " ", c.name), func(t *testing.T) {
			before := testdb.Rows(t, db)
			k := key
			if c.key == "-" {
				k = ""
			} else if c.key != "" {
				k = c.key
			}
			a := post(t, p, k, c.body(), c.hdr)
			if a.code != c.code {
				t.Fatalf("got %d %v, want %d", a.code, a.body, c.code)
			}
			if c.field != "" && a.body["field"] != c.field {
				t.Errorf("field %v, want %s", a.body["field"], c.field)
			}
			if after := testdb.Rows(t, db); after != before {
				t.Errorf("a rejected batch wrote %d rows", after-before)
			}
			switch c.code {
			case 422:
				if a.body["error"] != "schema_version_unsupported" || fmt.Sprint(a.body["supported"]) != fmt.Sprint(wire.SupportedVersions()) {
					t.Errorf("422 body %v", a.body)
				}
			case 426:
				if a.body["min_version"] != "1.0.0" {
					t.Errorf("426 body %v", a.body)
				}
			}
			if strings.Contains(fmt.Sprint(a.body), "secret") {
				t.Errorf("the answer echoes a rejected value: %v", a.body)
			}
		})
	}

	t.Run("429 with Retry-After", func(t *testing.T) {
		q := testkit.StartServer(t, serverDB, migrateDB, "--rate", "0.5", "--burst", "2")
		var last answer
		for i := 0; i < 3; i++ {
			last = post(t, q, key, fixture.MustJSON(fixture.ValidBatch(now)), nil)
		}
		if last.code != 429 || last.header.Get("Retry-After") == "" {
			t.Fatalf("third request: %d, Retry-After %q", last.code, last.header.Get("Retry-After"))
		}
	})

	t.Run("503 with Retry-After while the database cannot write", func(t *testing.T) {
		before := testdb.Rows(t, db)
		release := holdWriteLock(t, db)
		a := func() answer {
			defer release()
			return post(t, p, key, fixture.MustJSON(fixture.ValidBatch(now)), nil)
		}()
		if a.code != 503 || a.header.Get("Retry-After") == "" {
			t.Fatalf("got %d %v, Retry-After %q", a.code, a.body, a.header.Get("Retry-After"))
		}
		if after := testdb.Rows(t, db); after != before {
			t.Errorf("a failed batch wrote %d rows", after-before)
		}
		if a := post(t, p, key, fixture.MustJSON(fixture.ValidBatch(now)), nil); a.code != 200 {
			t.Fatalf("after the outage: %d %v", a.code, a.body)
		}
	})

	t.Run("401 once a key is revoked", func(t *testing.T) {
		k := testkit.CreateKey(t, db, "bob")
		if a := post(t, p, k, fixture.MustJSON(fixture.ValidBatch(now)), nil); a.code != 200 {
			t.Fatalf("fresh key: %d", a.code)
		}
		testkit.RevokeKey(t, db, k)
		deadline := time.Now().Add(5 * time.Second) // the server caches keys for 1 s here
		for {
			a := post(t, p, k, fixture.MustJSON(fixture.ValidBatch(now)), nil)
			if a.code == 401 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("revoked key still answered %d", a.code)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("another user's session", func(t *testing.T) {
		b := fixture.ValidBatch(now)
		if a := post(t, p, key, fixture.MustJSON(b), nil); a.code != 200 {
			t.Fatal(a.code)
		}
		mallory := testkit.CreateKey(t, db, "mallory")
		fixture.Rec(b, "sessions", 0)["ended_at"] = now.UTC().Format(time.RFC3339)
		before := testdb.Rows(t, db)
		a := post(t, p, mallory, fixture.MustJSON(b), nil)
		if a.code != 400 || a.body["field"] != "sessions[0].session_id" || testdb.Rows(t, db) != before {
			t.Fatalf("got %d %v", a.code, a.body)
		}
	})

	t.Run("whoami, schema, health, metrics", func(t *testing.T) {
		get := func(path, k string) (int, string) {
			req, _ := http.NewRequest("GET", "http://"+p.URL+path, nil)
			if k != "" {
				req.Header.Set("Authorization", "Bearer "+k)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if c, b := get("/v1/whoami", key); c != 200 || !strings.Contains(b, `"user_id":"alice"`) {
			t.Errorf("whoami: %d %s", c, b)
		}
		if c, _ := get("/v1/whoami", "fred_live_nope"); c != 401 {
			t.Errorf("whoami with a bad key: %d", c)
		}
		if c, b := get("/v1/schema", ""); c != 200 || !strings.Contains(b, `"supported":`+string(fixture.MustJSON(wire.SupportedVersions()))) || !strings.Contains(b, `"args_fingerprint"`) || strings.Contains(b, "user_input") {
			t.Errorf("schema: %d %s", c, b)
		}
		if c, _ := get("/healthz", ""); c != 200 {
			t.Errorf("healthz %d", c)
		}
		if c, _ := get("/readyz", ""); c != 200 {
			t.Errorf("readyz %d", c)
		}
		c, b := get("/metrics", "")
		for _, m := range []string{`fredtel_http_requests_total{code="400",route="/v1/batch"}`, `fredtel_records_total{result="accepted"}`,
			`fredtel_batches_rejected_total{reason="forbidden_field"}`, "fredtel_db_write_duration_seconds_bucket", "fredtel_db_writes_in_flight"} {
			if c != 200 || !strings.Contains(b, m) {
				t.Errorf("metrics lack %s", m)
			}
		}
	})

	t.Run("logs name the rule, never the value", func(t *testing.T) {
		logs := p.Stderr()
		if !strings.Contains(logs, `"reason":"forbidden_field"`) || !strings.Contains(logs, `"field":"turns[0].user_input"`) {
			t.Errorf("no rejection logged:\n%s", logs)
		}
		if strings.Contains(logs, "secret") || strings.Contains(logs, "mallory\"") && strings.Contains(logs, "user_id\":\"mallory") {
			t.Errorf("a rejected value reached the log:\n%s", logs)
		}
	})
}

func TestIngestPostgres(t *testing.T) {
	t.Parallel()
	db := testdb.Postgres(t)
	RunSuite(t, db, db, "")
}

func TestIngestSQLite(t *testing.T) {
	t.Parallel()
	db := testdb.SQLite(t)
	RunSuite(t, db, db, "")
}

// TestTwoServersExactlyOnce: two server processes on one database, eight
// clients sending the same batches to both at once: every record once.
func TestTwoServersExactlyOnce(t *testing.T) {
	testdb.Each(t, func(t *testing.T, be testdb.Backend) {
		db := be.URL(t)
		a := testkit.StartServer(t, db, "", "--rate", "100000", "--burst", "100000")
		b := testkit.StartServer(t, db, "", "--rate", "100000", "--burst", "100000")
		key := testkit.CreateKey(t, db, "fleet")
		now := time.Now()
		var bodies [][]byte
		ids := map[string]bool{}
		for i := 0; i < 20; i++ {
			m := fixture.ValidBatch(now)
			for _, arr := range []string{"sessions", "turns", "tool_calls", "events"} {
				for j := range m[arr].([]any) {
					for _, k := range []string{"session_id", "turn_id", "call_id", "event_id"} {
						if v, ok := fixture.Rec(m, arr, j)[k].(string); ok && (k != "session_id" || arr == "sessions") && (k != "turn_id" || arr == "turns") {
							ids[arr+v] = true
						}
					}
				}
			}
			bodies = append(bodies, fixture.MustJSON(m))
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[int]int{}
		for c := 0; c < 8; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := a
				if c%2 == 1 {
					p = b
				}
				for i := range bodies {
					ans := post(t, p, key, bodies[(i+c*3)%len(bodies)], nil)
					mu.Lock()
					codes[ans.code]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if codes[200] != 8*len(bodies) {
			t.Fatalf("answers %v, want all 200", codes)
		}
		if n := testdb.Rows(t, db); n != len(ids) {
			t.Fatalf("%d rows for %d distinct record ids", n, len(ids))
		}
	})
}

// TestShutdownFinishesInFlightBatches: SIGTERM while a batch waits for the
// database: the batch still commits and gets its 200, then the process exits.
func TestShutdownFinishesInFlightBatches(t *testing.T) {
	db := testdb.Postgres(t)
	p := testkit.StartServer(t, db, "", "--write-timeout", "20s")
	key := testkit.CreateKey(t, db, "alice")
	release := holdWriteLock(t, db)
	done := make(chan answer, 1)
	go func() { done <- post(t, p, key, fixture.MustJSON(fixture.ValidBatch(time.Now())), nil) }()
	testkit.WaitFor(t, 10*time.Second, "the batch to wait on the lock", func() bool {
		resp, err := http.Get("http://" + p.URL + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), "fredtel_db_writes_in_flight 1")
	})
	p.Cmd.Process.Signal(syscall.SIGTERM)
	testkit.WaitFor(t, 10*time.Second, "the server to stop accepting", func() bool {
		resp, err := http.Get("http://" + p.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err != nil
	})
	release()
	select {
	case a := <-done:
		if a.code != 200 {
			t.Fatalf("in-flight batch answered %d %v", a.code, a.body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the in-flight batch never finished")
	}
	if n := testdb.Rows(t, db); n != 7 {
		t.Fatalf("%d rows after shutdown, want the batch's 7", n)
	}
}

// TestDatabaseUnreachable: when PostgreSQL refuses connections, batches get
// 503 with Retry-After (never 500), /readyz says so, and ingest resumes.
func TestDatabaseUnreachable(t *testing.T) {
	db := testdb.Postgres(t)
	p := testkit.StartServer(t, db, "", "--write-timeout", "3s")
	key := testkit.CreateKey(t, db, "alice")
	now := time.Now()
	if a := post(t, p, key, fixture.MustJSON(fixture.ValidBatch(now)), nil); a.code != 200 {
		t.Fatalf("before: %d", a.code)
	}
	admin, err := pgx.Connect(context.Background(), testdb.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	name := db[strings.LastIndex(db, "/")+1:]
	if i := strings.Index(name, "?"); i >= 0 {
		name = name[:i]
	}
	exec := func(q string) {
		if _, err := admin.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	exec("ALTER DATABASE " + name + " ALLOW_CONNECTIONS false")
	exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + name + "'")
	a := post(t, p, key, fixture.MustJSON(fixture.ValidBatch(now)), nil)
	if a.code != 503 || a.header.Get("Retry-After") == "" {
		t.Errorf("database down: %d %v, Retry-After %q", a.code, a.body, a.header.Get("Retry-After"))
	}
	resp, err := http.Get("http://" + p.URL + "/readyz")
	if err != nil || resp.StatusCode != 503 {
		t.Errorf("/readyz with the database down: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	exec("ALTER DATABASE " + name + " ALLOW_CONNECTIONS true")
	if a := post(t, p, key, fixture.MustJSON(fixture.ValidBatch(now)), nil); a.code != 200 {
		t.Fatalf("after: %d %v", a.code, a.body)
	}
	if strings.Contains(p.Stderr(), `"level":"ERROR"`) {
		t.Errorf("an expected fault was logged as an error:\n%s", p.Stderr())
	}
}

func TestMain(m *testing.M) { testkit.Main(m) }
