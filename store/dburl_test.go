package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fredcode/fredtel/schema"
)

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		in      string
		dialect schema.Dialect
		target  string
		masked  string
	}{
		{in: "postgres://alice:s3cret@db:5432/fred", dialect: schema.Postgres, masked: "postgres://alice:***@db:5432/fred"},
		{in: "postgresql://alice@db/fred?sslmode=require", dialect: schema.Postgres, masked: "postgresql://alice@db/fred?sslmode=require"},
		{in: "postgres://alice@/fred?host=/var/run/postgresql&password=hunter2", dialect: schema.Postgres, masked: "postgres://alice@/fred?host=%2Fvar%2Frun%2Fpostgresql&password=***"},
		{in: "sqlite:fred.db", dialect: schema.SQLite, target: "fred.db"},
		{in: "sqlite:/var/lib/fred/t.db", dialect: schema.SQLite, target: "/var/lib/fred/t.db"},
		{in: "sqlite:///var/lib/fred/t.db", dialect: schema.SQLite, target: "/var/lib/fred/t.db"},
		{in: "sqlite::memory:", dialect: schema.SQLite, target: ":memory:"},
	} {
		loc, err := ParseURL(c.in)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", c.in, err)
			continue
		}
		if loc.Dialect != c.dialect || (c.target != "" && loc.Target != c.target) {
			t.Errorf("ParseURL(%q) = %+v", c.in, loc)
		}
		want := c.masked
		if want == "" {
			want = c.in
		}
		if loc.Masked != want {
			t.Errorf("ParseURL(%q).Masked = %q, want %q", c.in, loc.Masked, want)
		}
	}
}

func TestParseURLRejectsOtherFormsAndNamesTheAccepted(t *testing.T) {
	for _, in := range []string{"", "mysql://root:pw@db/x", "host=db password=pw", "sqlite:", "sqlite:x.db?mode=ro",
		"/tmp/fred.db", "postgres://alice:pw@/nohost", "http://pw@x"} {
		_, err := ParseURL(in)
		if !errors.Is(err, ErrBadURL) {
			t.Errorf("ParseURL(%q) = %v, want ErrBadURL", in, err)
			continue
		}
		if !strings.Contains(err.Error(), "postgres://") || !strings.Contains(err.Error(), "sqlite::memory:") {
			t.Errorf("ParseURL(%q) error does not name the accepted forms: %v", in, err)
		}
		if strings.Contains(err.Error(), "pw") && !strings.Contains(in, "password=pw") {
			t.Errorf("ParseURL(%q) error shows the password: %v", in, err)
		}
	}
}

func TestMaskURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:p%40ss@h/db":        "postgres://u:***@h/db",
		"postgres://u@h/db":               "postgres://u@h/db",
		"postgres://u:pw@h/db?password=x": "postgres://u:***@h/db?password=***",
		"postgres://u:p w@h:bad/db":       "postgres://***@h:bad/db",
		"sqlite:/tmp/a.db":                "sqlite:/tmp/a.db",
	} {
		if got := MaskURL(in); got != want {
			t.Errorf("MaskURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestUnreachableDatabaseErrorIsMaskedAndUnavailable: the error of a
// connection that fails carries no password and sorts as ErrUnavailable.
func TestUnreachableDatabaseErrorIsMaskedAndUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Port 1 on loopback: refused at once.
	s, err := Open(ctx, "postgres://alice:topsecretpw@127.0.0.1:1/fred?connect_timeout=2", Options{Set: schema.CentralSet, Migrate: true})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded against a closed port")
	}
	if strings.Contains(err.Error(), "topsecretpw") {
		t.Fatalf("error shows the password: %v", err)
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("error %v is not ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "alice:***@127.0.0.1:1") {
		t.Fatalf("error does not say where: %v", err)
	}
}
