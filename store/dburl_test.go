package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
		{in: "postgres://alice@/fred?host=/var/run/postgresql&password=hunter2", dialect: schema.Postgres, masked: "postgres://alice@/fred?host=/var/run/postgresql&password=***"},
		{in: "postgres://alice@db/fred?sslpassword=k3y&sslmode=verify-full", dialect: schema.Postgres, masked: "postgres://alice@db/fred?sslpassword=***&sslmode=verify-full"},
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
		if loc.Dialect != c.dialect || (c.target != "" && loc.Target() != c.target) {
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
		"postgres://u:p w@h:bad/db":       "postgres://u:***@h:bad/db",
		"sqlite:/tmp/a.db":                "sqlite:/tmp/a.db",
		// keyword/value connection strings, printed whole by `fredtel
		// migrate` on main (issue 12 §5)
		"host=db user=alice password=s3cret":         "host=db user=alice password=***",
		"host=db sslpassword='a b' passfile=/x/.pgp": "host=db sslpassword=*** passfile=***",
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

// TestLocationCannotLeak: however a Location is printed or logged, its
// password is not there: fmt with every verb and flag, nested in a struct
// or a pointer, slog with both handlers, encoding/json.
func TestLocationCannotLeak(t *testing.T) {
	const secret = "Sup3rS3cretPw"
	for _, raw := range []string{
		"postgres://alice:" + secret + "@db:5432/fred",
		"postgres://alice@db/fred?sslpassword=" + secret,
		"postgresql://alice@db/fred?password=" + secret + "&sslmode=disable",
	} {
		loc, err := ParseURL(raw)
		if err != nil {
			t.Fatalf("ParseURL(%q): %v", raw, err)
		}
		if loc.Target() != raw {
			t.Fatalf("ParseURL(%q) target %q: the driver would not get the URL", raw, loc.Target())
		}
		type holder struct {
			Loc Location
			Ptr *Location
			loc Location // fmt cannot call its methods: it reads the fields
		}
		h := holder{loc, &loc, loc}
		var outs []string
		for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%10.3v"} {
			outs = append(outs, fmt.Sprintf(f, loc), fmt.Sprintf(f, h), fmt.Sprintf(f, &h), fmt.Sprintf(f, []Location{loc}))
		}
		outs = append(outs, fmt.Sprint(loc), fmt.Sprintln(loc), fmt.Errorf("x: %v", loc).Error())
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "db", loc, "h", h)
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "db", loc, "h", h)
		outs = append(outs, buf.String())
		j, _ := json.Marshal(h)
		outs = append(outs, string(j))
		for _, o := range outs {
			if strings.Contains(o, secret) {
				t.Errorf("%q shows the password: %s", raw, o)
			}
		}
		if got := fmt.Sprintf("%v|%s|%+v", loc, loc, loc); got != loc.Masked+"|"+loc.Masked+"|"+loc.Masked {
			t.Errorf("%%v|%%s|%%+v = %q, want the masked URL", got)
		}
	}
}

// TestOpenErrorsAreMasked: a URL the driver cannot use fails with an error
// that shows no secret, whichever parameter held it.
func TestOpenErrorsAreMasked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, raw := range []string{
		"postgres://u:SECRETa1@h/db?sslpassword=SECRETb2&connect_timeout=abc",
		"postgres://u@h/db?password=SECRETc3&pool_max_conns=x",
		"postgres://u:SECRETa1@127.0.0.1:1/db?sslpassword=SECRETb2&sslmode=verify-full&sslkey=/nonexistent",
		"host=db user=alice password=SECRETd4",
		"sqlite:/tmp/x.db?password=SECRETe5",
	} {
		s, err := Open(ctx, raw, Options{Set: schema.SelfHostedSet})
		if err == nil {
			s.Close()
			t.Errorf("Open(%s) succeeded", MaskURL(raw))
			continue
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("Open error shows a secret: %v", err)
		}
	}
}
