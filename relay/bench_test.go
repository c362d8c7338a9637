package relay

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/slim/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/slim/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/slim/otlp/logs/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/telemetry"
)

// discard is a central sink that drops every batch.
type discard struct{ telemetry.NoSpool }

func (discard) Send(context.Context, *telemetry.RemoteBatch) error { return nil }
func (discard) Close(context.Context) error                        { return nil }

// benchBodies is Claude Code's logs export of claude-full (prompt,
// model calls, tool decision and result, answers: every kind the relay
// maps) repeated to 200 records, as OTLP/JSON and as protobuf.
func benchBodies(b *testing.B) (js, pb []byte, records int) {
	body, err := os.ReadFile(filepath.Join(fixturesDir(b), "claude-full", "0007_v1_logs.json"))
	if err != nil {
		b.Fatal(err)
	}
	var m collogs.ExportLogsServiceRequest
	if err := protojson.Unmarshal(body, &m); err != nil {
		b.Fatal(err)
	}
	sl := m.ResourceLogs[0].ScopeLogs[0]
	one := sl.LogRecords
	var all []*logspb.LogRecord
	for len(all) < 200 {
		for _, lr := range one {
			all = append(all, proto.Clone(lr).(*logspb.LogRecord))
		}
	}
	sl.LogRecords = all[:200]
	if js, err = protojson.Marshal(&m); err != nil {
		b.Fatal(err)
	}
	if pb, err = proto.Marshal(&m); err != nil {
		b.Fatal(err)
	}
	return js, pb, 200
}

// BenchmarkDecode is the OTLP library alone: the same bodies decoded.
func BenchmarkDecode(b *testing.B) {
	js, pb, n := benchBodies(b)
	for _, bc := range []struct {
		name string
		enc  encoding
		body []byte
	}{{"json", encJSON, js}, {"protobuf", encProto, pb}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.body)))
			for i := 0; i < b.N; i++ {
				if _, err := decode(sigLogs, bc.enc, bc.body); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
	}
}

// BenchmarkRelay is the relay's whole cost per record: the request read
// and decoded, its records mapped and held, then recorded through the
// telemetry library (converted to remote-safe records and queued for a
// sender that drops them). Beside BenchmarkDecode, the difference is what
// the relay adds to decoding.
func BenchmarkRelay(b *testing.B) {
	js, pb, n := benchBodies(b)
	for _, bc := range []struct {
		name, ct string
		body     []byte
	}{{"json", "application/json", js}, {"protobuf", "application/x-protobuf", pb}} {
		b.Run(bc.name, func(b *testing.B) {
			var stderr testkit.Buffer
			opts := centralTo(b, discard{}, &stderr)
			opts.FlushInterval = 50 * time.Millisecond
			r := New(Options{Telemetry: opts, Stderr: &stderr, Tick: time.Hour})
			defer r.Close(context.Background())
			w := httptest.NewRecorder()
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.body)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req := httptest.NewRequest(http.MethodPost, "/v1/logs", bytes.NewReader(bc.body))
				req.Header.Set("Content-Type", bc.ct)
				r.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatal(w.Code)
				}
				r.Flush()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
	}
}

// BenchmarkBurst: 32 CLI sessions exporting 200 records each at once,
// over and over, with nothing recorded in between: held-bytes is the most
// the relay held (bounded by MaxSessions × 2 × SessionBytes).
func BenchmarkBurst(b *testing.B) {
	_, pb, _ := benchBodies(b)
	var m collogs.ExportLogsServiceRequest
	proto.Unmarshal(pb, &m)
	var bodies [][]byte
	for s := 0; s < 32; s++ {
		for _, lr := range m.ResourceLogs[0].ScopeLogs[0].LogRecords {
			setSession(lr, s)
		}
		body, _ := proto.Marshal(&m)
		bodies = append(bodies, body)
	}
	var stderr testkit.Buffer
	r := New(Options{Telemetry: centralTo(b, discard{}, &stderr), Stderr: &stderr, Tick: time.Hour})
	defer r.Close(context.Background())
	peak := 0
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		for _, body := range bodies {
			req := httptest.NewRequest(http.MethodPost, "/v1/logs", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/x-protobuf")
			r.ServeHTTP(httptest.NewRecorder(), req)
		}
		peak = max(peak, r.heldBytes())
	}
	b.ReportMetric(float64(peak), "held-bytes")
}

func setSession(lr *logspb.LogRecord, s int) {
	for _, kv := range lr.Attributes {
		if kv.Key == "session.id" {
			kv.Value = &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "burst-" + string(rune('a'+s%26)) + string(rune('a'+s/26))}}
		}
	}
}
