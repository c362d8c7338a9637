package fred

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fredcode/fredtel/internal/cli"
	"github.com/fredcode/fredtel/relay"
	"github.com/fredcode/fredtel/telemetry"
)

// otelRelay runs the local OTLP relay (docs/relay.md): Claude Code, Codex
// and Gemini CLI export their OpenTelemetry to it, and their sessions are
// recorded through the telemetry library with this command's routing.
func (f *fredCmd) otelRelay(ctx context.Context, args []string, env cli.Getenv, stdout, stderr io.Writer) error {
	addr, anyAddr, idle, settle := "127.0.0.1:4318", false, relay.DefaultIdle, relay.DefaultSettle
	const help = "Usage: fred otel-relay [flags]"
	if err := cli.Parse(env, args, stderr, help,
		cli.Setting{Flag: "addr", Value: cli.String(&addr), Usage: "`HOST:PORT` to listen on: loopback only, unless --allow-non-loopback"},
		cli.Setting{Flag: "allow-non-loopback", Value: cli.Bool(&anyAddr), Usage: "allow an address other machines can reach (the CLIs' exports carry prompts and paths)"},
		cli.Setting{Flag: "idle", Value: cli.Duration(&idle, time.Millisecond, math.MaxInt64), Usage: "close a CLI session that sent nothing for this long"},
		cli.Setting{Flag: "settle", Value: cli.Duration(&settle, time.Millisecond, math.MaxInt64), Usage: "how long an event waits for the CLI's other exports before it is recorded"},
	); err != nil {
		return err
	}
	if err := loopbackOnly(addr, anyAddr); err != nil {
		return cli.Usagef("%v", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	opts := f.options(stderr)
	r := relay.New(relay.Options{Telemetry: opts, Stderr: stderr, Idle: idle, Settle: settle})
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	fmt.Fprintf(stdout, "fred otel-relay: listening on http://%s\n", ln.Addr())
	fmt.Fprintf(stdout, "fred otel-relay: telemetry: %s\n", telemetry.Resolve(opts).Status())

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = cli.Serve(ctx, srv, ln, 5*time.Second)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.Close(sctx)
	st := r.Stats()
	fmt.Fprintf(stdout, "fred otel-relay: stopped: %d requests, %d CLI sessions recorded, %d events mapped, %d skipped (unknown service %d, unknown event %d, incomplete %d), %d requests refused\n",
		st.Requests, st.Sessions, st.Facts, st.UnknownService+st.UnknownEvent+st.Incomplete+st.NoSession+st.Overflow,
		st.UnknownService, st.UnknownEvent, st.Incomplete, st.Refused)
	if err != nil {
		return err
	}
	return nil
}

// loopbackOnly refuses an address other machines could reach, unless
// allowed: an IP that is not loopback, a host name other than localhost,
// or no host at all (every interface).
func loopbackOnly(addr string, allowed bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q is not host:port", addr)
	}
	if allowed {
		return nil
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--addr %s is not a loopback address: other machines could send the relay events that would be recorded as yours; use 127.0.0.1, [::1] or localhost, or say --allow-non-loopback", addr)
}
