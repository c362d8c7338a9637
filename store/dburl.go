package store

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/fredcode/fredtel/internal/redact"
	"github.com/fredcode/fredtel/schema"
)

// AcceptedForms names the database URLs that [ParseURL] accepts; every
// rejection quotes it.
const AcceptedForms = "postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?PARAMS], postgresql://…, sqlite:PATH or sqlite::memory:"

// Location is a parsed database URL.
type Location struct {
	Dialect schema.Dialect
	// Postgres: the URL as given, for pgx. SQLite: the file path, or
	// ":memory:".
	Target string
	// Masked is the URL with any password replaced by ***, the only form
	// that may appear in an error, a log line or a status text.
	Masked string
}

// Memory reports whether the location is an in-memory SQLite database.
func (l Location) Memory() bool { return l.Dialect == schema.SQLite && l.Target == ":memory:" }

func (l Location) String() string { return l.Masked }

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
		return Location{Dialect: schema.Postgres, Target: raw, Masked: masked}, nil
	case strings.HasPrefix(raw, "sqlite:"):
		p := strings.TrimPrefix(raw, "sqlite:")
		if p == ":memory:" {
			return Location{Dialect: schema.SQLite, Target: ":memory:", Masked: raw}, nil
		}
		// sqlite:///abs/path and sqlite://rel are common spellings of sqlite:PATH.
		if strings.HasPrefix(p, "//") {
			p = p[2:]
		}
		if p == "" || strings.ContainsAny(p, "?#") {
			return Location{}, fmt.Errorf("%w: %q names no file path (no query parameters either); want %s", ErrBadURL, raw, AcceptedForms)
		}
		return Location{Dialect: schema.SQLite, Target: filepath.Clean(p), Masked: raw}, nil
	}
	scheme := masked
	if i := strings.Index(masked, ":"); i > 0 {
		scheme = masked[:i+1]
	}
	return Location{}, fmt.Errorf("%w: scheme %q; want %s", ErrBadURL, scheme, AcceptedForms)
}

// MaskURL replaces the password of a URL with ***; see [redact.URL].
func MaskURL(raw string) string { return redact.URL(raw) }
