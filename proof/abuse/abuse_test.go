// Package abuse is the proof suite's abuse catalogue and cross-user
// checks (issue 6, parts 2 and 3): malicious requests sent raw to the real
// fredtel serve on a database of its own, each checked for its answer, for
// what it wrote (nothing), for what it echoed or logged (never the value),
// and for the server's health afterwards.
package abuse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/schema"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// answer is what the server said, raw and decoded.
type answer struct {
	code   int
	header http.Header
	raw    []byte
	body   map[string]any
}

// request is one hand-made HTTP request. Header values of "-" remove
// the default header.
type request struct {
	method  string
	path    string
	hdr     map[string]string
	body    []byte
	chunked bool // no Content-Length: the server cannot refuse on it up front
}

// send writes r on a connection of its own and reads the answer while
// the body is still going out: the server may answer (413, 431) before it
// has read the body and then reset the connection, and net/http's client
// reports that reset instead of the answer it got.
func send(t testing.TB, base string, r request) answer {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	if r.path == "" {
		r.path = "/v1/batch"
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
		if r.chunked {
			body = io.MultiReader(body) // hides the length: chunked
		}
	}
	req, err := http.NewRequest(r.method, "http://"+base+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	for k, v := range r.hdr {
		if v != "-" {
			req.Header.Set(k, v)
		}
	}
	conn, err := net.DialTimeout("tcp", base, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", base, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	written := make(chan error, 1)
	go func() { written <- req.Write(conn) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		conn.Close()
		t.Fatalf("%s %s: no answer: %v (writing: %v)", r.method, r.path, err, <-written)
	}
	a := answerOf(resp)
	conn.Close()
	<-written
	return a
}

// answerOf reads and closes resp's body.
func answerOf(resp *http.Response) answer {
	defer resp.Body.Close()
	a := answer{code: resp.StatusCode, header: resp.Header}
	a.raw, _ = io.ReadAll(resp.Body)
	json.Unmarshal(a.raw, &a.body)
	return a
}

// keepAlive is the client of tests that send many well-formed requests.
var keepAlive = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: time.Minute}

// postKeepAlive sends a batch over a pooled connection, as a real client does.
func postKeepAlive(t testing.TB, base, key string, body []byte) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+base+"/v1/batch", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := keepAlive.Do(req)
	if err != nil {
		t.Errorf("POST /v1/batch: %v", err)
		return answer{}
	}
	return answerOf(resp)
}

// post sends a JSON batch the way a well-behaved client would, with key.
func post(t testing.TB, base, key string, body []byte) answer {
	t.Helper()
	return send(t, base, request{body: body, hdr: map[string]string{"Authorization": "Bearer " + key, "Content-Type": "application/json"}})
}

// healthy fails t unless both probes answer 200: a request that took the
// server down, or left it unable to reach its database, shows here.
func healthy(t testing.TB, base string) {
	t.Helper()
	for _, p := range []string{"/healthz", "/readyz"} {
		if a := send(t, base, request{method: http.MethodGet, path: p}); a.code != 200 {
			t.Fatalf("%s answered %d %s after the request", p, a.code, a.raw)
		}
	}
}

// dbConn is a direct connection to the server's database, for the checks.
func dbConn(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// tableState is one table's row count and a digest of all its rows.
type tableState struct {
	rows int64
	sum  string
}

// dbState is every table of the database, found in information_schema so
// that a table nobody thought of (a new one included) is watched too.
type dbState map[string]tableState

func snapshot(t testing.TB, c *pgx.Conn) dbState {
	t.Helper()
	ctx := context.Background()
	tables := texts(t, c, `SELECT table_name::text FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`)
	if len(tables) == 0 {
		t.Fatal("the database has no tables: nothing to watch")
	}
	var q []string
	for _, tb := range tables {
		if folded[tb] {
			continue
		}
		id := pgx.Identifier{tb}.Sanitize()
		q = append(q, fmt.Sprintf(`SELECT %s::text, count(*), coalesce(md5(string_agg(x::text, E'\n' ORDER BY x::text)), '') FROM %s x`,
			"'"+strings.ReplaceAll(tb, "'", "''")+"'", id))
	}
	rows, err := c.Query(ctx, strings.Join(q, " UNION ALL "))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	s := dbState{}
	for rows.Next() {
		var name string
		var st tableState
		if err := rows.Scan(&name, &st.rows, &st.sum); err != nil {
			t.Fatal(err)
		}
		s[name] = st
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

// folded are the tables the server's background fold writes on its own
// clock (schema.HourRollup.Folded): what they hold is a function of the
// record tables, which snapshot compares, so they are left out.
var folded = func() map[string]bool {
	m := map[string]bool{}
	for _, hr := range schema.HourRollups() {
		m[hr.TableName(schema.CentralSet)], m[hr.StateTable(schema.CentralSet)] = true, true
	}
	return m
}()

// changes lists the tables whose rows differ between two states.
func changes(before, after dbState) []string {
	var out []string
	for name, b := range before {
		a, ok := after[name]
		switch {
		case !ok:
			out = append(out, name+" disappeared")
		case a != b:
			out = append(out, fmt.Sprintf("%s: %d rows → %d, contents changed", name, b.rows, a.rows))
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			out = append(out, name+" appeared")
		}
	}
	slices.Sort(out)
	return out
}

// records counts the rows of the record tables (the rollups kept from
// them are not records).
func (s dbState) records() int64 {
	var n int64
	for _, r := range schema.Records() {
		n += s[schema.CentralSet.TableName(r)].rows
	}
	return n
}

// userRows is every row that carries user_id = user, as PostgreSQL's
// text form, per table: a byte-for-byte picture of what one user owns.
func userRows(t testing.TB, c *pgx.Conn, user string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, tb := range tablesWith(t, c, "user_id") {
		out[tb] = texts(t, c, fmt.Sprintf("SELECT x::text FROM %s x WHERE user_id = $1 ORDER BY 1", pgx.Identifier{tb}.Sanitize()), user)
	}
	return out
}

// tablesWith lists the tables that have every one of columns.
func tablesWith(t testing.TB, c *pgx.Conn, columns ...string) []string {
	t.Helper()
	return texts(t, c, `SELECT table_name::text FROM information_schema.columns
		WHERE table_schema = current_schema() AND column_name = ANY($1) GROUP BY table_name HAVING count(*) = cardinality($1) ORDER BY 1`, columns)
}

// texts runs a query of one text column.
func texts(t testing.TB, c *pgx.Conn, q string, args ...any) []string {
	t.Helper()
	rows, err := c.Query(context.Background(), q, args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func queryInt(t testing.TB, c *pgx.Conn, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := c.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// logLine is one line of the server's JSON log.
type logLine map[string]any

// rejections parses the log written since offset and returns its
// "batch rejected" lines; any line that is not JSON fails t, since a
// value could hide in free text.
func rejections(t testing.TB, log string) []logLine {
	t.Helper()
	var out []logLine
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		if l == "" {
			continue
		}
		var m logLine
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("a server log line is not JSON: %q", l)
		}
		if m["msg"] == "batch rejected" {
			out = append(out, m)
		}
	}
	return out
}

// newDB is a fresh PostgreSQL database for t.
func newDB(t testing.TB) string { return testdb.Postgres(t) }
