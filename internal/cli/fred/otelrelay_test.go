package fred

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/telemetry"
)

// fred otel-relay listens on loopback only unless told otherwise.
func TestOtelRelayRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:4318", ":4318", "192.168.1.5:4318", "[::]:4318", "example.com:4318"} {
		code, out, errs := fredRun(t, map[string]string{"FRED_CONFIG_DIR": t.TempDir()}, "", "otel-relay", "--addr", addr)
		if code != 2 || out != "" || !strings.Contains(errs, "is not a loopback address") || !strings.Contains(errs, "--allow-non-loopback") {
			t.Errorf("--addr %s: exit %d\n%s\n%s", addr, code, out, errs)
		}
	}
	for _, addr := range []string{"127.0.0.1:4318", "[::1]:4318", "localhost:4318", "127.0.0.2:1"} {
		if err := loopbackOnly(addr, false); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	if err := loopbackOnly("0.0.0.0:4318", true); err != nil {
		t.Errorf("--allow-non-loopback: %v", err)
	}
	if err := loopbackOnly("4318", false); err == nil || !strings.Contains(err.Error(), "not host:port") {
		t.Errorf("no host: %v", err)
	}
}

// runRelay runs fred ARGS otel-relay --addr 127.0.0.1:0, posts body to its
// /v1/logs, stops it and returns what it printed.
func runRelay(t *testing.T, env map[string]string, body []byte, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errs testkit.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, append(args, "otel-relay", "--addr", "127.0.0.1:0"), func(k string) string { return env[k] }, os.Stdin, &out, &errs)
	}()
	var url string
	testkit.WaitFor(t, 10*time.Second, "the relay's address", func() bool {
		_, rest, ok := strings.Cut(out.String(), "listening on ")
		url, _, _ = strings.Cut(rest, "\n")
		return ok && strings.Contains(rest, "\n")
	})
	resp, err := http.Post(url+"/v1/logs", "application/json", bytes.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out.String(), errs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the relay did not stop")
	}
	return out.String(), errs.String()
}

// fred otel-relay records a Claude Code export on the command's route
// (FRED_TELEMETRY_DEBUG: printed, not sent) and stops on its context,
// saying what it did; with --no-telemetry it answers and records nothing.
func TestOtelRelayCommand(t *testing.T) {
	fixtures := os.Getenv("FRED_OTLP_FIXTURES")
	if fixtures == "" {
		fixtures = "/work/shared/otlp-fixtures"
	}
	body, err := os.ReadFile(fixtures + "/claude-full/0007_v1_logs.json")
	if err != nil {
		t.Fatalf("the OTLP fixtures (FRED_OTLP_FIXTURES): %v", err)
	}
	dir := t.TempDir()
	telemetry.SaveCredentials(dir, telemetry.Credentials{APIKey: "fred_live_ab12cd34ef56gh78ij90kl"})
	telemetry.SavePrefs(dir, telemetry.Prefs{NoticeShownAt: "2026-01-02T03:04:05Z"})
	env := map[string]string{"FRED_CONFIG_DIR": dir, "FRED_TELEMETRY_DEBUG": "1", "FRED_API_URL": "http://127.0.0.1:1"}

	out, errs := runRelay(t, env, body)
	if !strings.Contains(out, "telemetry: central → http://127.0.0.1:1 as fred_live_ab12") ||
		!strings.Contains(out, "stopped: 1 requests, 1 CLI sessions recorded") {
		t.Fatalf("stdout:\n%s", out)
	}
	if !strings.Contains(errs, `"agent":"claude-code"`) || strings.Contains(errs+out, "SECRET-PROMPT-CANARY-42") {
		t.Fatalf("stderr:\n%s", errs)
	}

	out, errs = runRelay(t, env, body, "--no-telemetry")
	if !strings.Contains(out, "telemetry: off for this session (--no-telemetry)") ||
		!strings.Contains(out, "stopped: 1 requests, 0 CLI sessions recorded") || errs != "" {
		t.Fatalf("--no-telemetry:\n%s\n%s", out, errs)
	}
}
