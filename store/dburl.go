package store

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fredcode/fredtel/internal/redact"
	"github.com/fredcode/fredtel/schema"
)

// AcceptedForms names the database URLs that [ParseURL] accepts; every
// rejection quotes it.
const AcceptedForms = "postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?PARAMS], postgresql://…, sqlite:PATH or sqlite::memory:"

// Location is a parsed database URL. It cannot show its secrets: the
// unmasked target is behind a method, and every way of printing or logging a
// Location (String, GoString, Format for every verb, slog's LogValue,
// encoding/json, which sees only the exported fields) gives the masked URL.
type Location struct {
	Dialect schema.Dialect
	// Masked is the URL with any password replaced by ***, the only form
	// that may appear in an error, a log line or a status text.
	Masked string
	// secret is, for Postgres, the URL as given, for pgx; for SQLite the
	// file path, or ":memory:". A pointer: fmt prints a nested pointer as
	// an address, so even a struct holding a Location in an unexported
	// field (where fmt cannot call Format) does not show it.
	secret *string
}

// Target is what the driver opens: for Postgres the URL as given, password
// included (never print it), for SQLite the file path or ":memory:".
func (l Location) Target() string {
	if l.secret == nil {
		return ""
	}
	return *l.secret
}

func locationOf(d schema.Dialect, target, masked string) Location {
	return Location{Dialect: d, Masked: masked, secret: &target}
}

// Memory reports whether the location is an in-memory SQLite database.
func (l Location) Memory() bool { return l.Dialect == schema.SQLite && l.Target() == ":memory:" }

// String is the masked URL.
func (l Location) String() string { return l.Masked }

// GoString is what %#v prints: the masked URL only.
func (l Location) GoString() string {
	return "store.Location{Dialect:" + strconv.Quote(string(l.Dialect)) + ", Masked:" + strconv.Quote(l.Masked) + "}"
}

// Format prints the masked URL whatever the verb and flags: fmt would
// otherwise print the fields, unexported ones included, for %+v under a
// wrapper type or for verbs String does not cover.
func (l Location) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, l.GoString())
	case verb == 'q':
		fmt.Fprint(f, strconv.Quote(l.Masked))
	default:
		fmt.Fprint(f, l.Masked)
	}
}

// LogValue is how slog logs a Location: the masked URL.
func (l Location) LogValue() slog.Value { return slog.StringValue(l.Masked) }

// ErrBadURL is wrapped by every error of [ParseURL].
var ErrBadURL = errors.New("unsupported database URL")

// ParseURL parses a database URL of one of the [AcceptedForms].
func ParseURL(raw string) (Location, error) {
	masked := MaskURL(raw)
	switch {
	case raw == "":
		return Location{}, fmt.Errorf("%w: empty; want %s", ErrBadURL, AcceptedForms)
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		u, err := url.Parse(raw)
		if err != nil {
			// url.Error quotes the URL, password included: never wrap it.
			return Location{}, fmt.Errorf("%w: %s is not a valid URL; want %s", ErrBadURL, masked, AcceptedForms)
		}
		if u.Host == "" && u.Query().Get("host") == "" {
			return Location{}, fmt.Errorf("%w: %s has no host; want %s", ErrBadURL, masked, AcceptedForms)
		}
		return locationOf(schema.Postgres, raw, masked), nil
	case strings.HasPrefix(raw, "sqlite:"):
		p := strings.TrimPrefix(raw, "sqlite:")
		if p == ":memory:" {
			return locationOf(schema.SQLite, ":memory:", raw), nil
		}
		// sqlite:///abs/path and sqlite://rel are common spellings of sqlite:PATH.
		if strings.HasPrefix(p, "//") {
			p = p[2:]
		}
		if p == "" || strings.ContainsAny(p, "?#") {
			return Location{}, fmt.Errorf("%w: %q names no file path (no query parameters either); want %s", ErrBadURL, masked, AcceptedForms)
		}
		return locationOf(schema.SQLite, filepath.Clean(p), masked), nil
	}
	scheme := masked
	if i := strings.Index(masked, ":"); i > 0 {
		scheme = masked[:i+1]
	}
	return Location{}, fmt.Errorf("%w: scheme %q; want %s", ErrBadURL, scheme, AcceptedForms)
}

// MaskURL masks the secrets of a database URL or keyword/value connection
// string (user-info, and every password-, secret- or token-like parameter);
// see [redact.URL].
func MaskURL(raw string) string { return redact.URL(raw) }
