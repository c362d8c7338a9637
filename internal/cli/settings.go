package cli

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
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
// the value unless the setting is secret. -h prints help and the settings
// on stderr and is flag.ErrHelp.
func Parse(env Getenv, args []string, stderr io.Writer, help string, settings ...Setting) error {
	rest, err := ParseArgs(env, args, stderr, help, settings...)
	if err == nil && len(rest) > 0 {
		return Usagef("unexpected argument %q", rest[0])
	}
	return err
}

// ParseArgs is Parse for a command that takes arguments after its flags:
// it returns them.
func ParseArgs(env Getenv, args []string, stderr io.Writer, help string, settings ...Setting) ([]string, error) {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defaults := make([]string, len(settings))
	var bad error
	for i, s := range settings {
		if !s.Secret {
			defaults[i] = s.Value.String()
		}
		fs.Var(&flagValue{s: s, bad: &bad}, s.Flag, s.Usage)
	}
	fs.Usage = func() { printHelp(stderr, fs, help, settings, defaults) }
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

// printHelp prints help, then the settings in the order of their table:
// the flag and its value's name, the usage, the environment variable and
// the default.
func printHelp(w io.Writer, fs *flag.FlagSet, help string, settings []Setting, defaults []string) {
	fmt.Fprintf(w, "%s\n", help)
	if len(settings) > 0 {
		fmt.Fprintf(w, "\nFlags:\n")
	}
	for i, s := range settings {
		// The value's name is the usage's word in back quotes, else its
		// kind's; a switch has none.
		arg, usage := flag.UnquoteUsage(fs.Lookup(s.Flag))
		if v, ok := s.Value.(interface{ name() string }); ok && arg == "value" {
			arg = v.name()
		}
		fmt.Fprintf(w, "  %s\n        %s\n", strings.TrimSpace("--"+s.Flag+" "+arg), usage)
		var notes []string
		if s.Env != "" {
			notes = append(notes, "env "+s.Env)
		}
		if defaults[i] != "" {
			notes = append(notes, "default "+defaults[i])
		}
		if len(notes) > 0 {
			fmt.Fprintf(w, "        (%s)\n", strings.Join(notes, "; "))
		}
	}
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
	return value[T]{p, parse, "VALUE"}
}

type value[T any] struct {
	p     *T
	parse func(string) (T, error)
	arg   string // the value's name in the help
}

func (v value[T]) name() string { return v.arg }

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
	return value[string]{p, func(s string) (string, error) { return s, nil }, "TEXT"}
}

// Match is text that ok accepts; want says what it must be.
func Match(p *string, ok func(string) bool, want string) flag.Value {
	return value[string]{p, func(s string) (string, error) {
		if !ok(s) {
			return "", errors.New("want " + want)
		}
		return s, nil
	}, "TEXT"}
}

// Bool is a switch: --flag alone turns it on.
func Bool(p *bool) flag.Value { return value[bool]{p, strconv.ParseBool, ""} }

// OneOf is one of choices.
func OneOf(p *string, choices ...string) flag.Value {
	want := "want " + strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
	return value[string]{p, func(s string) (string, error) {
		if !slices.Contains(choices, s) {
			return "", errors.New(want)
		}
		return s, nil
	}, strings.Join(choices, "|")}
}

// Int is an integer from lo to hi (math.MaxInt: no bound).
func Int(p *int, lo, hi int) flag.Value {
	return ranged(p, lo, hi, hi == math.MaxInt, "N", "an integer", strconv.Atoi)
}

// Float is a number from lo to hi (+Inf: no bound).
func Float(p *float64, lo, hi float64) flag.Value {
	return ranged(p, lo, hi, math.IsInf(hi, 1), "N", "a number", func(s string) (float64, error) { return strconv.ParseFloat(s, 64) })
}

// Duration is a duration from lo to hi (math.MaxInt64: no bound).
func Duration(p *time.Duration, lo, hi time.Duration) flag.Value {
	return ranged(p, lo, hi, hi == math.MaxInt64, "DURATION", "a duration (90s, 10m, 1h30m)", time.ParseDuration)
}

func ranged[T cmp.Ordered](p *T, lo, hi T, unbounded bool, arg, what string, parse func(string) (T, error)) flag.Value {
	want := fmt.Sprintf("want %s from %v to %v", what, lo, hi)
	if unbounded {
		want = fmt.Sprintf("want %s, %v or more", what, lo)
	}
	return value[T]{p, func(s string) (T, error) {
		x, err := parse(s)
		if err != nil || !(x >= lo && x <= hi) { // NaN too
			return x, errors.New(want)
		}
		return x, nil
	}, arg}
}
