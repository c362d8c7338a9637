package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// DebugSink is the central route's sink under FRED_TELEMETRY_DEBUG=1: it
// prints each batch, exactly as it would be sent, to w instead of sending it.
func DebugSink(w io.Writer) CentralSink { return &debugSink{w: w} }

type debugSink struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

func (d *debugSink) Send(_ context.Context, b *RemoteBatch) error {
	js, err := json.Marshal(b)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n++
	_, err = fmt.Fprintf(d.w, "fred: telemetry debug: batch %d (%d records, not sent): %s\n", d.n, b.Len(), js)
	return err
}

func (d *debugSink) Close(context.Context) error { return nil }

// Resolve reports the route a session started now with opts would take,
// without starting one: what `fred telemetry status` prints. It writes
// nothing.
func Resolve(opts Options) Route {
	opts.defaults()
	in := routeInput{noTelemetryFlag: opts.NoTelemetry, getenv: opts.Getenv}
	dir := ConfigDir(opts.Getenv)
	in.prefs, in.prefsErr = LoadPrefs(dir)
	in.creds, in.credsErr = LoadCredentials(dir)
	r := resolve(in)
	if r.Kind == Central && opts.Central == nil && opts.NewCentral == nil && !envFlag(opts.Getenv("FRED_TELEMETRY_DEBUG")) {
		r = Route{Kind: Off, Rule: RuleNoSender}
	}
	return r
}
