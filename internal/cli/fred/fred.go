// Package fred is the fred command: the telemetry controls of the Fred
// CLI (login, logout, telemetry on|off|status|show|replay, --no-telemetry),
// a stand-in agent loop and the OTLP relay. It links the client library
// only: never the server, never Prometheus (TestDependencies).
package fred

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/fredcode/fredtel/internal/apikey"
	"github.com/fredcode/fredtel/internal/cli"
	"github.com/fredcode/fredtel/internal/redact"
	"github.com/fredcode/fredtel/internal/replay"
	"github.com/fredcode/fredtel/telemetry"
	"github.com/fredcode/fredtel/telemetry/central"
	"github.com/fredcode/fredtel/telemetry/selfhost"
	"golang.org/x/term"
)

// Run runs fred with args (without the program name), reading standard
// input from stdin, and returns its exit code. --no-telemetry may appear
// anywhere: it turns telemetry off for this run only.
func Run(ctx context.Context, args []string, env cli.Getenv, stdin io.Reader, stdout, stderr io.Writer) int {
	f := &fredCmd{env: env, stdin: stdin}
	rest := args[:0:0]
	for _, a := range args {
		if a == "--no-telemetry" || a == "-no-telemetry" {
			f.noTelemetry = true
			continue
		}
		rest = append(rest, a)
	}
	if len(rest) >= 2 && rest[0] == "telemetry" && rest[1] == "replay" {
		// Its own dispatch, so that its messages read "fred telemetry replay: …".
		return cli.Dispatch(ctx, "fred telemetry", "fred telemetry replay: feed a recorded session through the telemetry client",
			map[string]cli.Command{"replay": {Summary: "replay [--keep-times] FILE|-  |  replay --example", Run: f.replay}}, rest[1:], env, stdout, stderr)
	}
	cmds := map[string]cli.Command{
		"telemetry":  {Summary: "telemetry [status|on|off|show|replay FILE]: where your telemetry goes, the switch, and replaying a transcript", Run: f.telemetry},
		"login":      {Summary: "login [--key KEY]: store your Fred API key (or paste it on stdin)", Run: f.login},
		"logout":     {Summary: "forget the stored API key", Run: f.logout},
		"repl":       {Summary: "a stand-in agent loop: each line is a turn; /telemetry works as in Fred", Run: f.repl},
		"otel-relay": {Summary: "otel-relay [--addr 127.0.0.1:4318]: record Claude Code, Codex and Gemini CLI sessions from their OpenTelemetry export", Run: f.otelRelay},
	}
	intro := "fred: the telemetry controls of the Fred CLI.\n\nGlobal flag: --no-telemetry  telemetry off for this run (the saved preference is untouched)"
	return cli.Dispatch(ctx, "fred", intro, cmds, rest, env, stdout, stderr)
}

type fredCmd struct {
	env         cli.Getenv
	stdin       io.Reader
	noTelemetry bool
}

func (f *fredCmd) options(stderr io.Writer) telemetry.Options {
	return telemetry.Options{
		FredVersion: Version,
		NoTelemetry: f.noTelemetry,
		Getenv:      f.env,
		Stderr:      stderr,
		SelfHosted:  selfhost.Open,
		NewCentral:  central.New,
	}
}

// Version is the CLI's version, stamped at build time with
// -ldflags "-X github.com/fredcode/fredtel/internal/cli/fred.Version=…".
var Version = "0.1.0"

func (f *fredCmd) telemetry(ctx context.Context, args []string, env cli.Getenv, stdout, stderr io.Writer) error {
	sub := "status"
	if len(args) > 0 {
		sub = args[0]
	}
	if len(args) > 1 {
		return cli.Usagef("unexpected argument %q; usage: fred telemetry [status|on|off|show]", args[1])
	}
	dir := telemetry.ConfigDir(env)
	switch sub {
	case "status":
	case "on":
		if err := telemetry.SetTelemetry(dir, true); err != nil {
			return fmt.Errorf("cannot save the preference in %s: %w", dir, err)
		}
		fmt.Fprintln(stdout, "telemetry: on (saved)")
	case "off":
		if err := telemetry.SetTelemetry(dir, false); err != nil {
			return fmt.Errorf("cannot save the preference in %s: %w", dir, err)
		}
		if err := central.PurgeSpool(dir); err != nil {
			return fmt.Errorf("telemetry is off, but the spool in %s could not be deleted: %w", dir, err)
		}
		fmt.Fprintln(stdout, "telemetry: off (saved; unsent batches deleted)")
	case "show":
		n, err := central.Show(dir, stdout)
		if err != nil {
			return err
		}
		batches, bytes := central.SpoolSize(dir)
		if n == 0 {
			fmt.Fprintln(stdout, "telemetry: nothing has been sent or spooled yet")
		}
		fmt.Fprintf(stdout, "telemetry: %d batches shown (the last sent or spooled); %d batches (%d bytes) wait in the spool\n", n, batches, bytes)
		return nil
	default:
		return cli.Usagef("unknown subcommand %q; usage: fred telemetry [status|on|off|show]", sub)
	}
	r := telemetry.Resolve(f.options(stderr))
	fmt.Fprintf(stdout, "telemetry: %s\n", r.Status())
	if r.Warning != "" {
		fmt.Fprintf(stderr, "fred: %s\n", r.Warning)
	}
	return nil
}

func (f *fredCmd) login(ctx context.Context, args []string, env cli.Getenv, stdout, stderr io.Writer) error {
	var k string
	const help = "Usage: fred login [flags]"
	if err := cli.Parse(env, args, stderr, help, cli.Setting{Flag: "key", Secret: true, Value: cli.String(&k),
		Usage: "the API `KEY` (fred_live_…); without it, the key is read from standard input"}); err != nil {
		return err
	}
	k = strings.TrimSpace(k)
	if k == "" {
		if file, ok := f.stdin.(*os.File); ok && term.IsTerminal(int(file.Fd())) {
			fmt.Fprint(stderr, "Paste your Fred API key: ")
		}
		line, err := bufio.NewReader(f.stdin).ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("no key: give --key or write it on standard input")
		}
		k = strings.TrimSpace(line)
	}
	if !apikey.Valid(k) {
		return fmt.Errorf("that is not a Fred API key: want %s", apikey.Doc)
	}
	api := telemetry.EnvAPIURL(env)
	creds := telemetry.Credentials{APIKey: k}
	user, verr := whoami(ctx, api, k)
	switch {
	case errors.Is(verr, errKeyRejected):
		return fmt.Errorf("%s rejected the key %s: it is unknown or revoked; nothing was stored", maskedAPI(api), apikey.Shown(k))
	case verr != nil:
		fmt.Fprintf(stderr, "fred: could not verify the key now (%v); stored anyway, it is checked when telemetry is sent\n", verr)
	default:
		creds.User = user
	}
	dir := telemetry.ConfigDir(env)
	// One user's spooled records are never sent under another's key: the
	// spool goes unless the stored login is this key, or the same user.
	old, oerr := telemetry.LoadCredentials(dir)
	if sameLogin := oerr == nil && (old.APIKey == k || (old.User != "" && old.User == creds.User)); !sameLogin {
		if n, _ := central.SpoolSize(dir); n > 0 {
			if err := central.PurgeSpool(dir); err != nil {
				return fmt.Errorf("cannot delete the unsent telemetry of the previous login in %s (%v); the new key was not stored", dir, err)
			}
			fmt.Fprintf(stdout, "deleted %d unsent telemetry %s of the previous login\n", n, cli.Plural(n, "batch", "batches"))
		}
	}
	if err := telemetry.SaveCredentials(dir, creds); err != nil {
		return fmt.Errorf("cannot store the key in %s: %w", dir, err)
	}
	if creds.User != "" {
		fmt.Fprintf(stdout, "logged in as %s with %s\n", creds.User, apikey.Shown(k))
	} else {
		fmt.Fprintf(stdout, "logged in with %s\n", apikey.Shown(k))
	}
	fmt.Fprintf(stdout, "telemetry: %s\n", telemetry.Resolve(f.options(stderr)).Status())
	return nil
}

var errKeyRejected = errors.New("key rejected")

// whoami asks the ingest API who owns key: the user id, errKeyRejected on
// 401/403, or another error when the server cannot answer.
func whoami(ctx context.Context, api, key string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"/v1/whoami", nil)
	if err != nil {
		// Not err: a *url.Error quotes the URL whole.
		return "", fmt.Errorf("FRED_API_URL %s is not a URL Fred can use", maskedAPI(api))
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s unreachable", maskedAPI(api))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		var body struct {
			UserID string `json:"user_id"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil || body.UserID == "" {
			return "", fmt.Errorf("%s answered /v1/whoami without a user_id", maskedAPI(api))
		}
		// The server's text, stored and printed on the user's terminal.
		return redact.Terminal(body.UserID, maxUserID), nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return "", errKeyRejected
	}
	// The code, not resp.Status: its reason phrase is the server's text.
	return "", fmt.Errorf("%s answered /v1/whoami with %d %s", maskedAPI(api), resp.StatusCode, http.StatusText(resp.StatusCode))
}

// maxUserID bounds a user id from the server as it is stored and shown.
const maxUserID = 64

func maskedAPI(api string) string { return redact.URL(api) }

func (f *fredCmd) logout(ctx context.Context, args []string, env cli.Getenv, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return cli.Usagef("unexpected argument %q", args[0])
	}
	dir := telemetry.ConfigDir(env)
	if err := telemetry.DeleteCredentials(dir); err != nil {
		return err
	}
	// What was spooled under the key is never sent under the next one.
	if err := central.PurgeSpool(dir); err != nil {
		return fmt.Errorf("logged out, but the unsent telemetry in %s could not be deleted: %w", dir, err)
	}
	fmt.Fprintln(stdout, "logged out (unsent telemetry deleted)")
	fmt.Fprintf(stdout, "telemetry: %s\n", telemetry.Resolve(f.options(stderr)).Status())
	return nil
}

// replModels are the models the stand-in agent offers: the model catalog
// of its sessions. Any other name (FRED_MODEL, /model NAME) is the user's
// own, recorded centrally as "custom".
var replModels = []string{"fred-flash-2", "fred-pro-2"}

// replContext is the stand-in model's context: a turn that reads a bigger
// file ends in "length", a struggle of the stuck rule.
const replContext = 64 << 10

// repl is a stand-in agent loop, so that the telemetry controls can be tried
// (and tested) through a real binary: each line is a turn in which the
// stand-in model reads a file named by the first word; /telemetry,
// /model NAME, /mode act|plan and /quit work as in Fred, and the live
// hints are printed as "hint: …" lines. Its sessions
// describe the working directory as Fred's do: git_dirty from git, and
// AGENTS.md when there is one.
func (f *fredCmd) repl(ctx context.Context, args []string, env cli.Getenv, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return cli.Usagef("unexpected argument %q", args[0])
	}
	model, mode := replModels[0], "act"
	if m := env("FRED_MODEL"); m != "" {
		model = m
	}
	info := telemetry.SessionInfo{
		Model:        model,
		SystemPrompt: "You are Fred, a coding agent (stand-in).",
		Tools:        []string{"read_file"},
		Commands:     []string{"help", "model", "mode", "telemetry", "quit"},
		Models:       replModels,
	}
	if cwd, err := os.Getwd(); err == nil {
		info.GitDirty, info.AgentsMD = workdir(ctx, cwd)
	}
	opts := f.options(stderr)
	// The live rules tell the user on every route, off included.
	opts.OnHint = func(h telemetry.Hint) { fmt.Fprintf(stdout, "hint: %s\n", h) }
	sess := telemetry.Start(opts, info)
	defer sess.Close(context.Background()) // within the library's close budget
	in := bufio.NewScanner(f.stdin)
	in.Buffer(make([]byte, 64<<10), 1<<20)
	for in.Scan() {
		line := strings.TrimSpace(in.Text())
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "/") {
			cmd, arg, _ := strings.Cut(strings.TrimPrefix(line, "/"), " ")
			arg = strings.TrimSpace(arg)
			// Every command is recorded, /telemetry too (before it runs:
			// /telemetry off then drops its own record with the rest).
			sess.SlashCommand(line)
			switch cmd {
			case "quit", "exit":
				return nil
			case "telemetry":
				fmt.Fprintln(stdout, sess.HandleSlash(arg))
			case "model":
				if arg != "" {
					sess.ModelSwap(model, arg)
					model = arg
				}
				fmt.Fprintf(stdout, "model: %s\n", model)
			case "mode":
				if arg == "act" || arg == "plan" {
					sess.ModeChange(mode, arg)
					mode = arg
				}
				fmt.Fprintf(stdout, "mode: %s\n", mode)
			case "help":
				fmt.Fprintln(stdout, "/telemetry [on|off|status], /model NAME, /mode act|plan, /quit; anything else is a prompt")
			default:
				fmt.Fprintf(stdout, "unknown command /%s\n", cmd)
			}
			continue
		}
		turn := sess.BeginTurn(mode, model)
		path, _, _ := strings.Cut(line, " ")
		args, _ := json.Marshal(map[string]string{"path": path})
		start := time.Now()
		body, err := os.ReadFile(path)
		result := string(body)
		if err != nil {
			result = "Error: " + err.Error()
		}
		turn.ToolCall(telemetry.ToolCall{Name: "read_file", Args: args, Result: result, Permission: "auto_allowed",
			Failed: err != nil, StartedAt: start, Duration: time.Since(start)})
		answer := fmt.Sprintf("(stand-in model) read %s: %d bytes", path, len(body))
		if err != nil {
			answer = fmt.Sprintf("(stand-in model) could not read %s", path)
		}
		finish := "stop"
		if len(body) > replContext {
			finish = "length"
			answer += " (cut short: more than the stand-in model's context)"
		}
		fmt.Fprintln(stdout, answer)
		turn.End(telemetry.TurnResult{PromptTokens: len(line), CompletionTokens: len(answer), FinishReason: finish,
			UserInput: line, AssistantText: answer})
	}
	return in.Err()
}

// replay is `fred telemetry replay [--keep-times] FILE|-`: it checks the
// whole transcript (docs/transcript.md), then records its sessions through
// the telemetry client exactly as a Fred session would, under this
// machine's routing. `--example` prints a complete transcript.
func (f *fredCmd) replay(ctx context.Context, args []string, env cli.Getenv, stdout, stderr io.Writer) error {
	var keep, example bool
	const help = "Usage: fred telemetry replay [--keep-times] FILE|-   (- reads standard input)\n       fred telemetry replay --example\n\nThe format: docs/transcript.md."
	settings := []cli.Setting{
		{Flag: "keep-times", Value: cli.Bool(&keep), Usage: "record the transcript's ts (default: the transcript is laid out to end now, durations kept)"},
		{Flag: "example", Value: cli.Bool(&example), Usage: "print a complete example transcript and exit"},
	}
	var files []string
	for { // flags may follow FILE
		rest, err := cli.ParseArgs(env, args, stderr, help, settings...)
		if err != nil {
			return err
		}
		if len(rest) == 0 {
			break
		}
		files, args = append(files, rest[0]), rest[1:]
	}
	if example {
		if len(files) > 0 {
			return cli.Usagef("--example takes no FILE")
		}
		fmt.Fprint(stdout, replay.Example)
		return nil
	}
	if len(files) != 1 {
		return cli.Usagef("want one FILE (or - for standard input); fred telemetry replay --example prints a transcript")
	}
	name, in := files[0], f.stdin
	if name == "-" {
		name = "stdin"
	} else {
		file, err := os.Open(name)
		if err != nil {
			return err
		}
		defer file.Close()
		in = file
	}
	t, err := replay.Parse(name, in)
	if err == nil {
		var res replay.Result
		res, err = replay.Run(ctx, t, replay.Options{Telemetry: f.options(stderr), KeepTimes: keep})
		if _, invalid := err.(replay.Errors); !invalid {
			fmt.Fprintln(stdout, res.Summary(name))
		}
	}
	if errs, ok := err.(replay.Errors); ok { // found before any session started
		for _, e := range errs {
			fmt.Fprintf(stderr, "fred telemetry replay: %v\n", e)
		}
		return fmt.Errorf("%s: %d %s; nothing was replayed", name, len(errs), cli.Plural(len(errs), "problem", "problems"))
	}
	return err
}
