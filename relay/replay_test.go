package relay

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	collogs "go.opentelemetry.io/proto/slim/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/slim/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// fixturesDir holds real exports of Claude Code, Codex and Gemini CLI
// (FRED_OTLP_FIXTURES overrides it).
func fixturesDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("FRED_OTLP_FIXTURES")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "otlp-fixtures")
		if _, err := os.Stat(dir); err != nil {
			dir = "/work/shared/otlp-fixtures"
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
		t.Fatalf("the OTLP fixtures are not at %s (set FRED_OTLP_FIXTURES): %v", dir, err)
	}
	return dir
}

// request is one export of a fixture folder, as the CLI sent it.
type request struct {
	name        string
	path        string // /v1/logs …
	contentType string
	body        []byte
}

// fixtureRequests reads a folder's requests in the order they were sent:
// the file names' numbers (index.log's order). A .json body is sent as
// it is, a .pb body as protobuf; a .decoded.json (the protojson copy of a
// protobuf body) is sent as protobuf again when its .pb is not there.
func fixtureRequests(t testing.TB, folder string) []request {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(folder, "[0-9][0-9][0-9][0-9]_v1_*.json"))
	pbs, _ := filepath.Glob(filepath.Join(folder, "[0-9][0-9][0-9][0-9]_v1_*.pb"))
	files = append(files, pbs...)
	if err != nil || len(files) == 0 {
		t.Fatalf("no requests in %s: %v", folder, err)
	}
	sort.Strings(files)
	var out []request
	for _, f := range files {
		base := filepath.Base(f)
		if strings.HasSuffix(base, ".meta.json") {
			continue
		}
		pb := strings.HasSuffix(base, ".pb")
		if strings.HasSuffix(base, ".decoded.json") {
			if _, err := os.Stat(strings.TrimSuffix(f, ".decoded.json") + ".pb"); err == nil {
				continue // the body as sent is there
			}
		}
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sig := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(strings.SplitN(base, "_v1_", 2)[1], ".json"), ".decoded"), ".pb")
		if pb {
			out = append(out, request{name: base, path: "/v1/" + sig, contentType: "application/x-protobuf", body: body})
			continue
		}
		req := request{name: base, path: "/v1/" + sig, contentType: "application/json", body: body}
		if strings.HasSuffix(base, ".decoded.json") {
			var m proto.Message
			switch sig {
			case "logs":
				m = &collogs.ExportLogsServiceRequest{}
			case "traces":
				m = &coltrace.ExportTraceServiceRequest{}
			default:
				m = &colmetrics.ExportMetricsServiceRequest{}
			}
			if err := protojson.Unmarshal(body, m); err != nil {
				t.Fatalf("%s: %v", base, err)
			}
			if req.body, err = proto.Marshal(m); err != nil {
				t.Fatal(err)
			}
			req.contentType = "application/x-protobuf"
		}
		out = append(out, req)
	}
	return out
}

// send posts one request to the relay's handler (gzipped when gz) and
// returns the status.
func send(h http.Handler, rq request, gz bool) int {
	if gz {
		return post(h, rq.path, rq.contentType, "gzip", fixture.Gzip(rq.body)).Code
	}
	return post(h, rq.path, rq.contentType, "", rq.body).Code
}

// The fixture reader sends a .pb body as it was sent, and its decoded
// copy only when the .pb is not there.
func TestFixtureReaderPrefersPB(t *testing.T) {
	src := filepath.Join(fixturesDir(t), "claude-error-protobuf")
	reqs := fixtureRequests(t, src)
	dir := t.TempDir()
	for i, rq := range reqs {
		name := strings.TrimSuffix(rq.name, ".decoded.json")
		if i%2 == 0 {
			os.WriteFile(filepath.Join(dir, name+".pb"), rq.body, 0o600)
		}
		b, _ := os.ReadFile(filepath.Join(src, rq.name))
		os.WriteFile(filepath.Join(dir, rq.name), b, 0o600)
	}
	got := fixtureRequests(t, dir)
	if len(got) != len(reqs) {
		t.Fatalf("%d requests, want %d", len(got), len(reqs))
	}
	for i := range got {
		if !bytes.Equal(got[i].body, reqs[i].body) || got[i].path != reqs[i].path || (i%2 == 0) != strings.HasSuffix(got[i].name, ".pb") {
			t.Errorf("%d: %s %s vs %s", i, got[i].name, got[i].path, reqs[i].name)
		}
	}
}
