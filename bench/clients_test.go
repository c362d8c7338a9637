package bench

import (
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/fredcode/fredtel/telemetry"
	"github.com/fredcode/fredtel/telemetry/central"
	"github.com/posthog/posthog-go"
	"go.opentelemetry.io/otel/attribute"
	analytics "gopkg.in/segmentio/analytics-go.v3"
)

// apiKey is a well-formed key: fred_live_ and 32 alphanumerics.
const apiKey = "fred_live_0123456789abcdefghijKLMNOPQRSTuv"

// args200 is a typical edit call's arguments, about 200 bytes of JSON.
var args200 = []byte(`{"path":"internal/server/batch.go","old_string":"func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {","new_string":"func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) error {"}`)

// toolCall is what the agent hands fred for one tool call.
var toolCall = telemetry.ToolCall{Name: "edit", Args: args200, Result: "Applied 1 edit.", Permission: "auto_allowed", Duration: 3 * time.Millisecond}

// telemetryTurnResult ends a turn.
var telemetryTurnResult = telemetry.TurnResult{PromptTokens: 1200, CompletionTokens: 300, FinishReason: "tool_calls", UserInput: "fix the handler", AssistantText: "Done."}

// fredDir makes a config dir that is logged in and has shown the notice.
func fredDir(tb testing.TB) string {
	dir := filepath.Join(tb.TempDir(), "fred")
	if err := telemetry.SaveCredentials(dir, telemetry.Credentials{APIKey: apiKey}); err != nil {
		tb.Fatal(err)
	}
	if err := telemetry.SavePrefs(dir, telemetry.Prefs{NoticeShownAt: "2026-01-01T00:00:00Z"}); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// fredOptions are the options of a session that sends to api through the
// real central sender.
func fredOptions(dir, api string) telemetry.Options {
	env := map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": api}
	return telemetry.Options{
		FredVersion: "1.4.2",
		Getenv:      func(k string) string { return env[k] },
		NewCentral:  central.New,
		Stderr:      discard{},
		QueueBytes:  64 << 20,
	}
}

var fredInfo = telemetry.SessionInfo{Model: "fred-flash-2", Tools: []string{"edit"}}

// startFred starts a session and checks that it is on the central route.
func startFred(tb testing.TB, opts telemetry.Options) *telemetry.Session {
	s := telemetry.Start(opts, fredInfo)
	if k := s.Route().Kind; k != telemetry.Central {
		tb.Fatalf("fred session route %v, want central (%s)", k, s.Route().Status())
	}
	return s
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// quiet is the logger of posthog-go and analytics-go: they log failed sends.
type quiet struct{}

func (quiet) Logf(string, ...any)   {}
func (quiet) Errorf(string, ...any) {}

// freshTransport gives each SDK client its own connection pool, as a new CLI
// process has (fred's sender makes its own per session too).
func freshTransport() *http.Transport { return http.DefaultTransport.(*http.Transport).Clone() }

// The ten properties the SDKs send per tool call: about 200 bytes of JSON,
// what fred's record carries (ids, names, fingerprint, sizes).
const (
	propSession = "0190f3a2-7b4c-7d1e-9a3b-5c6d7e8f9a0b"
	propArgsSHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

func posthogProps() posthog.Properties {
	return posthog.NewProperties().
		Set("session_id", propSession).
		Set("tool", "edit").
		Set("args_sha256", propArgsSHA).
		Set("permission", "auto_allowed").
		Set("outcome", "ok").
		Set("model", "fred-flash-2").
		Set("mode", "act").
		Set("seq", 7).
		Set("duration_ms", 3).
		Set("result_bytes", 15)
}

func otelAttrs() []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("session_id", propSession),
		attribute.String("tool", "edit"),
		attribute.String("args_sha256", propArgsSHA),
		attribute.String("permission", "auto_allowed"),
		attribute.String("outcome", "ok"),
		attribute.String("model", "fred-flash-2"),
		attribute.String("mode", "act"),
		attribute.Int("seq", 7),
		attribute.Int("duration_ms", 3),
		attribute.Int("result_bytes", 15),
	}
}

// openSDK makes an SDK client that sends to url through tr, and the
// enqueueing of one tool call event on it.
type openSDK func(tb testing.TB, url string, tr http.RoundTripper) (io.Closer, func() error)

// sdks are the SDK clients fred is compared with.
var sdks = []struct {
	name string
	open openSDK
}{
	{"posthog", func(tb testing.TB, url string, tr http.RoundTripper) (io.Closer, func() error) {
		c, err := posthog.NewWithConfig("phc_bench0123456789", posthog.Config{Endpoint: url, Transport: tr, Logger: quiet{}})
		if err != nil {
			tb.Fatal(err)
		}
		return c, func() error {
			return c.Enqueue(posthog.Capture{DistinctId: "user-1234", Event: "tool_call", Properties: posthogProps()})
		}
	}},
	{"segment", func(tb testing.TB, url string, tr http.RoundTripper) (io.Closer, func() error) {
		c, err := analytics.NewWithConfig("segment-bench-key", analytics.Config{Endpoint: url, Transport: tr, Logger: quiet{}})
		if err != nil {
			tb.Fatal(err)
		}
		return c, func() error {
			return c.Enqueue(analytics.Track{UserId: "user-1234", Event: "tool_call", Properties: analytics.Properties(posthogProps())})
		}
	}},
}
