package cli

import (
	"errors"
	"flag"
	"io"
	"testing"
	"time"
)

type config struct {
	rate  int
	ttl   time.Duration
	token string
}

func settings(c *config) []Setting {
	c.rate, c.ttl = 20, 30*time.Second
	return []Setting{
		{Flag: "rate", Env: "RATE", Value: Int(&c.rate, 1, 100)},
		{Flag: "ttl", Env: "TTL", Value: Duration(&c.ttl, time.Second, time.Hour)},
		{Flag: "token", Env: "TOKEN", Secret: true, Value: Func(&c.token, func(s string) (string, error) {
			if len(s) < 16 {
				return "", errors.New("too short")
			}
			return s, nil
		})},
	}
}

func parse(env map[string]string, args ...string) (config, error) {
	var c config
	err := Parse(func(k string) string { return env[k] }, args, io.Discard, "", settings(&c)...)
	return c, err
}

// A flag beats its variable, which beats the default.
func TestSettingsPrecedence(t *testing.T) {
	c, err := parse(nil)
	if err != nil || c.rate != 20 || c.ttl != 30*time.Second {
		t.Errorf("defaults: %+v, %v", c, err)
	}
	c, err = parse(map[string]string{"RATE": "5", "TTL": "1m"})
	if err != nil || c.rate != 5 || c.ttl != time.Minute {
		t.Errorf("environment: %+v, %v", c, err)
	}
	c, err = parse(map[string]string{"RATE": "5", "TTL": "not read"}, "--rate", "7", "--ttl", "2s")
	if err != nil || c.rate != 7 || c.ttl != 2*time.Second {
		t.Errorf("flags over the environment: %+v, %v", c, err)
	}
}

// A bad value is a usage error naming the setting, never quietly the
// default; a secret's value is never repeated.
func TestBadSettings(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"RATE": "abc"}, nil, `RATE "abc": want an integer from 1 to 100`},
		{map[string]string{"RATE": "0"}, nil, `RATE "0": want an integer from 1 to 100`},
		{nil, []string{"--rate", "-1"}, `--rate "-1": want an integer from 1 to 100`},
		{nil, []string{"--ttl", "5"}, `--ttl "5": want a duration (90s, 10m, 1h30m) from 1s to 1h0m0s`},
		{map[string]string{"TOKEN": "hunter2"}, nil, "TOKEN: too short"},
		{nil, []string{"--token", "hunter2"}, "--token: too short"},
	} {
		_, err := parse(c.env, c.args...)
		var ue *UsageError
		if !errors.As(err, &ue) || ue.Msg != c.want {
			t.Errorf("%v %v: %v, want the usage error %q", c.env, c.args, err, c.want)
		}
	}
	if _, err := parse(nil, "extra"); err == nil || err.Error() != `unexpected argument "extra"` {
		t.Errorf("an argument: %v", err)
	}
	if _, err := parse(nil, "-h"); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}
