package cli

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// A Setting is one setting of a command: its flag, the environment
// variable that stands in when the flag is not given, its help, and its
// Value, which holds the default until the flag or the variable sets it,
// and parses and checks what they say. A command's settings are one table,
// a []Setting, that its help is printed from.
type Setting struct {
	Flag  string // without dashes
	Env   string // "": none
	Usage string // a `NAME` in back quotes names the value in the help
	// Secret: the value is printed nowhere, neither as a default in the
	// help nor in an error.
	Secret bool
	Value  flag.Value
}

// Parse sets settings from args, which hold flags only: each setting from
// its flag when given, else from its environment variable when not empty,
// else it keeps its default. A value that does not parse or is out of
// range is a usage error of one line naming the flag or the variable, and
// the value unless the setting is secret. -h is flag.ErrHelp.
func Parse(fs *flag.FlagSet, env Getenv, args []string, settings ...Setting) error {
	rest, err := ParseArgs(fs, env, args, settings...)
	if err == nil && len(rest) > 0 {
		return Usagef("unexpected argument %q", rest[0])
	}
	return err
}

// ParseArgs is Parse for a command that takes arguments after its flags:
// it returns them.
func ParseArgs(fs *flag.FlagSet, env Getenv, args []string, settings ...Setting) ([]string, error) {
	var bad error
	for _, s := range settings {
		usage := s.Usage
		if s.Env != "" {
			usage += " (env " + s.Env + ")"
		}
		fs.Var(&flagValue{s: s, bad: &bad}, s.Flag, usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &UsageError{} // the flag package said what was wrong
	}
	if bad != nil {
		return nil, bad
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, s := range settings {
		if s.Env == "" || given[s.Flag] {
			continue
		}
		if v := env(s.Env); v != "" {
			if err := s.Value.Set(v); err != nil {
				return nil, invalid(s, s.Env, v, err)
			}
		}
	}
	return fs.Args(), nil
}

func invalid(s Setting, name, value string, err error) error {
	if s.Secret {
		return Usagef("%s: %v", name, err)
	}
	return Usagef("%s %q: %v", name, value, err)
}

// flagValue is a setting as the flag package sees it: a value that does
// not parse is kept for Parse to report in its own words (the flag package
// would print it, secret or not, and the whole help after it).
type flagValue struct {
	s   Setting
	bad *error
}

func (f *flagValue) String() string {
	if f.s.Value == nil || f.s.Secret {
		return ""
	}
	return f.s.Value.String()
}

func (f *flagValue) Set(v string) error {
	if err := f.s.Value.Set(v); err != nil && *f.bad == nil {
		*f.bad = invalid(f.s, "--"+f.s.Flag, v, err)
	}
	return nil
}

func (f *flagValue) IsBoolFlag() bool {
	b, ok := f.s.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// Func is the Value that parse sets: the most general one. Its default,
// shown in the help, is *p as fmt prints it (nothing for a zero value).
func Func[T any](p *T, parse func(string) (T, error)) flag.Value {
	return value[T]{p, parse}
}

type value[T any] struct {
	p     *T
	parse func(string) (T, error)
}

func (v value[T]) String() string {
	var zero T
	if v.p == nil || fmt.Sprint(*v.p) == fmt.Sprint(zero) {
		return ""
	}
	return fmt.Sprint(*v.p)
}

func (v value[T]) Set(s string) error {
	x, err := v.parse(s)
	if err == nil {
		*v.p = x
	}
	return err
}

func (v value[T]) IsBoolFlag() bool {
	_, ok := any(v.p).(*bool)
	return ok
}

// String is any text.
func String(p *string) flag.Value {
	return Func(p, func(s string) (string, error) { return s, nil })
}

// Bool is a switch: --flag alone turns it on.
func Bool(p *bool) flag.Value { return Func(p, strconv.ParseBool) }

// OneOf is one of choices.
func OneOf(p *string, choices ...string) flag.Value {
	want := strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
	return Func(p, func(s string) (string, error) {
		for _, c := range choices {
			if s == c {
				return s, nil
			}
		}
		return "", errors.New("want " + want)
	})
}

// Int is an integer from lo to hi (math.MaxInt: no bound).
func Int(p *int, lo, hi int) flag.Value {
	return Func(p, func(s string) (int, error) {
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			return 0, errors.New(wantRange(lo, hi, hi == math.MaxInt, "an integer"))
		}
		return n, nil
	})
}

// Float is a number from lo to hi (+Inf: no bound).
func Float(p *float64, lo, hi float64) flag.Value {
	return Func(p, func(s string) (float64, error) {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || !(f >= lo && f <= hi) {
			return 0, errors.New(wantRange(lo, hi, math.IsInf(hi, 1), "a number"))
		}
		return f, nil
	})
}

// Duration is a duration (90s, 10m, 1h30m) from lo to hi (math.MaxInt64:
// no bound).
func Duration(p *time.Duration, lo, hi time.Duration) flag.Value {
	return Func(p, func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(s)
		if err != nil || d < lo || d > hi {
			return 0, errors.New(wantRange(lo, hi, hi == math.MaxInt64, "a duration (90s, 10m, 1h30m)"))
		}
		return d, nil
	})
}

func wantRange[T any](lo, hi T, unbounded bool, what string) string {
	if unbounded {
		return fmt.Sprintf("want %s, %v or more", what, lo)
	}
	return fmt.Sprintf("want %s from %v to %v", what, lo, hi)
}
