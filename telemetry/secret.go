package telemetry

import (
	"fmt"
	"log/slog"

	"github.com/fredcode/fredtel/internal/apikey"
)

// The types below hold a secret in a field (the self-hosted database URL,
// the API key). fmt would print it for %v, %+v or %#v, unexported fields
// included, and slog would log it; each prints, with every verb, a form
// with the secret masked.

// String is the status line, passwords masked.
func (r Route) String() string { return r.Status() }

// Format prints the status line whatever the verb.
func (r Route) Format(f fmt.State, verb rune) { fmt.Fprint(f, r.Status()) }

// LogValue is how slog logs a Route: its status line.
func (r Route) LogValue() slog.Value { return slog.StringValue(r.Status()) }

// String names the endpoint and the key's prefix only.
func (c CentralConfig) String() string {
	return fmt.Sprintf("CentralConfig{%s as %s}", maskURL(c.APIURL), apikey.Shown(c.APIKey))
}

// Format prints String whatever the verb.
func (c CentralConfig) Format(f fmt.State, verb rune) { fmt.Fprint(f, c.String()) }

// LogValue is how slog logs a CentralConfig: String.
func (c CentralConfig) LogValue() slog.Value { return slog.StringValue(c.String()) }
