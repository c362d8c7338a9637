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
	NoSpool
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
// without starting one: what `fred telemetry status` prints. It makes the
// same decision as Start (the rules of SPEC §2, then settle), so its
// Status is the line /telemetry shows in a session started the same way.
// It writes nothing.
func Resolve(opts Options) Route {
	opts.defaults()
	in := routeInput{noTelemetryFlag: opts.NoTelemetry, getenv: opts.Getenv}
	// As in Start: --no-telemetry reads nothing, DSC_TELEMETRY_DB_URL
	// needs neither preferences nor credentials.
	if !opts.NoTelemetry && opts.Getenv("DSC_TELEMETRY_DB_URL") == "" {
		dir := ConfigDir(opts.Getenv)
		in.prefs, in.prefsErr = LoadPrefs(dir)
		in.creds, in.credsErr = LoadCredentials(dir)
	}
	return settle(resolve(in), &opts)
}

// settle finishes a central decision with what this program offers, for
// Start and Resolve alike: without a sender (Options.Central, NewCentral,
// or FRED_TELEMETRY_DEBUG's printer) it is off; before the one-time notice
// has been shown, a session whose stderr is not a terminal, where nobody
// can read it (CI, a pipe), is off and sends nothing.
func settle(r Route, o *Options) Route {
	if r.Kind != Central {
		return r
	}
	if o.Central == nil && o.NewCentral == nil && !envFlag(o.Getenv("FRED_TELEMETRY_DEBUG")) {
		return Route{Kind: Off, Rule: RuleNoSender}
	}
	if r.Rule == RuleNoticeUnseen && !o.StderrIsTerminal() {
		r.Kind = Off // the target stays known, for the status line
	}
	return r
}
