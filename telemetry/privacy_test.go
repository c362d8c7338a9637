package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/fredcode/fredtel/internal/testing/testkit"
)

// encodings lists the forms text could take inside a JSON payload: raw, as
// encoding/json writes it (with and without HTML escaping), with every
// non-ASCII rune as \u escapes, and with every rune escaped.
func encodings(text string) []string {
	out := []string{text}
	q, _ := json.Marshal(text)
	out = append(out, string(q[1:len(q)-1]))
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(text)
	s := strings.TrimSpace(b.String())
	out = append(out, s[1:len(s)-1])
	var ascii, all strings.Builder
	for _, r := range text {
		u := utf16.Encode([]rune{r})
		for _, c := range u {
			fmt.Fprintf(&all, `\u%04x`, c)
		}
		if r < 0x80 && r >= 0x20 && r != '"' && r != '\\' {
			ascii.WriteRune(r)
			continue
		}
		for _, c := range u {
			fmt.Fprintf(&ascii, `\u%04x`, c)
		}
	}
	return append(out, ascii.String(), all.String(), strings.ToUpper(all.String()))
}

const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \"\\<>&'/.:_-\n\té中😀\u2028"

// randomText makes a text of 12 to 40 runes that no name pattern accepts
// (it has a character outside all of them) and that is unique enough never
// to occur in a payload by chance.
func randomText(r *rand.Rand, tag string) string {
	runes := []rune(alphabet)
	var b strings.Builder
	b.WriteString(tag)
	n := 12 + r.IntN(28)
	for i := 0; i < n; i++ {
		b.WriteRune(runes[r.IntN(len(runes))])
	}
	b.WriteString("~")
	return b.String()
}

func checkNoText(t *testing.T, payload string, inputs map[string]string) {
	t.Helper()
	for where, text := range inputs {
		for _, e := range encodings(text) {
			if e != "" && strings.Contains(payload, e) {
				t.Fatalf("the %s text %q reached the remote payload as %q:\n%s", where, text, e, payload)
			}
		}
	}
}

// runSession drives a whole session with x in every text-bearing input and
// returns the JSON of everything the central sink received.
func runSession(t *testing.T, x texts) string {
	t.Helper()
	opts, sink := centralOptions(configDir(t, true, true), &testkit.Buffer{})
	info := sessionInfo(x)
	info.Model = x.model
	info.Tools = append(info.Tools, x.tool)
	info.Commands = append(info.Commands, x.cmdArg)
	s := Start(opts, info)
	agentLoop(s, x)
	// Text in keys of the arguments, not only in values.
	tr := s.BeginTurn(x.prompt, x.model)
	args, _ := json.Marshal(map[string]any{x.path: x.result, "nested": []any{x.prompt, map[string]string{x.response: x.system}}})
	tr.ToolCall(ToolCall{Name: x.tool, Args: args, Result: x.result, Permission: x.response})
	tr.ToolCall(ToolCall{Name: "bash", Args: []byte(x.path), Result: x.agentsMD}) // not JSON at all
	tr.End(TurnResult{FinishReason: x.response, APIErrorType: x.prompt, Model: x.model, UserInput: x.prompt, AssistantText: x.response})
	s.APIRetry(Retry{Attempt: 2, ErrorType: x.result, Status: 503})
	s.ModeChange(x.prompt, x.response)
	s.Close(context.Background())
	payload, n := sink.all()
	if n == 0 {
		t.Fatal("nothing was sent: the check would be vacuous")
	}
	return payload
}

func (x texts) inputs() map[string]string {
	return map[string]string{"prompt": x.prompt, "response": x.response, "args": x.path, "result": x.result,
		"system prompt": x.system, "AGENTS.md": x.agentsMD, "slash command argument": x.cmdArg, "tool name": x.tool, "model": x.model}
}

// TestRemotePayloadCarriesNoText: random texts in every text-bearing input of
// many sessions; none of them, in any JSON encoding, reaches the payload.
func TestRemotePayloadCarriesNoText(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100; i++ {
		x := texts{
			prompt: randomText(r, "P"), response: randomText(r, "R"), path: randomText(r, "A"),
			result: randomText(r, "S"), system: randomText(r, "Y"), agentsMD: randomText(r, "G"),
			cmdArg: randomText(r, "C"), tool: randomText(r, "T"), model: randomText(r, "M"),
		}
		checkNoText(t, runSession(t, x), x.inputs())
	}
}

// FuzzRemotePayloadCarriesNoText: the fuzzer picks the text; the same text
// goes into every input. Texts that a name pattern accepts are allowed to
// appear as names, so only texts with a character outside every pattern
// (a space, a quote, non-ASCII…) are checked.
func FuzzRemotePayloadCarriesNoText(f *testing.F) {
	for _, s := range []string{"please delete the prod database", "a\"b\\c</script>", "日本語のテキスト", "rm -rf / ; echo hi", "x\u2028y z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len([]rune(text)) < 8 || !strings.ContainsAny(text, " \"\\\t\n<>&'`$!?,;()[]{}|*#%=~^") {
			return
		}
		x := texts{text + "1", text + "2", text + "3", text + "4", text + "5", text + "6", text + "7", text + "8", text + "9"}
		payload := runSession(t, x)
		checkNoText(t, payload, map[string]string{"every": text})
	})
}
