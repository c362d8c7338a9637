package insights

import (
	"bufio"
	"fmt"
	"github.com/fredcode/fredtel/schema"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"
)

// textTop is how many items of a long list (stuck sessions, loops, storm
// sessions) the terminal form shows; the JSON form has all of them.
const textTop = 10

// WriteText writes the report for a terminal: aligned tables with units and
// percentiles, and under each analysis one line of what it found and what
// to do.
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := &printer{w: bw}
	r.header(p)
	r.textProblems(p)
	r.textStuck(p)
	r.textDead(p)
	r.textRetries(p)
	r.textLoops(p)
	r.textPlan(p)
	r.textPermissions(p)
	return bw.Flush()
}

type printer struct{ w io.Writer }

func (p *printer) f(format string, a ...any) { fmt.Fprintf(p.w, format, a...) }

// table writes rows of tab-separated cells, indented by two: the first
// column (names) aligned left, the others (numbers) right.
func (p *printer) table(head string, rows []string) {
	all := append([]string{head}, rows...)
	w := 0
	for _, r := range all {
		first, _, _ := strings.Cut(r, "\t")
		w = max(w, utf8.RuneCountInString(first))
	}
	tw := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, r := range all {
		first, rest, _ := strings.Cut(r, "\t")
		first += strings.Repeat(" ", w-utf8.RuneCountInString(first))
		fmt.Fprintln(tw, "\t"+first+"\t"+rest+"\t")
	}
	tw.Flush()
}

func (p *printer) section(title string) { p.f("\n%s\n", title) }

func (p *printer) finding(s string) { p.f("  → %s\n", s) }

func (r *Report) header(p *printer) {
	p.f("Fred telemetry insights · %s tables · sessions started %s … %s\n", r.Tables, r.Window.From, r.Window.To)
	if r.Filters.Model != "" || r.Filters.Agent != "" {
		p.f("filters: model %q, agent %q\n", r.Filters.Model, r.Filters.Agent)
	}
	if r.Counted == "sessions" {
		p.f("%s sessions (the self-hosted tables have no user_id: \"users\" below count sessions), %s turns, %s tool calls\n",
			num(r.Totals.Sessions), num(r.Totals.Turns), num(r.Totals.ToolCalls))
	} else {
		p.f("%s sessions, %s users, %s turns, %s tool calls\n", num(r.Totals.Sessions), num(r.Totals.Users), num(r.Totals.Turns), num(r.Totals.ToolCalls))
	}
	if r.Prices != nil && len(r.Prices.Unpriced) > 0 {
		p.f("no price for %s: their tokens are left out of every cost\n", strings.Join(r.Prices.Unpriced, ", "))
	}
}

func (r *Report) cost(i Impact) string {
	if r.Prices == nil {
		return ""
	}
	if i.Tokens == 0 && i.Ms == 0 {
		return "\t-"
	}
	if i.Cost == nil {
		return "\tunpriced"
	}
	s := fmt.Sprintf("\t%.2f %s", *i.Cost, r.Prices.Currency)
	if i.UnpricedTokens > 0 {
		s += "+"
	}
	return s
}

func (r *Report) costHead() string {
	if r.Prices == nil {
		return ""
	}
	return "\tcost"
}

func (r *Report) textProblems(p *printer) {
	p.section("DETECTED PROBLEMS, by impact")
	if len(r.Problems) == 0 {
		p.f("  none\n")
		return
	}
	var rows []string
	for i, pr := range r.Problems {
		rows = append(rows, fmt.Sprintf("%d\t%s\t%s\t%s\t%s\t%s%s", i+1, pr.Kind, num(pr.Count), num(pr.Sessions), num(pr.Impact.Tokens), dur(pr.Impact.Ms), r.cost(pr.Impact)))
	}
	p.table("#\tproblem\tcount\tsessions\ttokens\ttime"+r.costHead(), rows)
	for i, pr := range r.Problems {
		p.f("  %d. %s\n", i+1, pr.Fix)
	}
}

func (r *Report) textStuck(p *printer) {
	st := &r.Stuck
	p.section("1. WHERE THE FAST MODEL GETS STUCK (turns by model)")
	reasons := map[string]bool{}
	for _, m := range st.Models {
		for k := range m.FinishReasons {
			reasons[k] = true
		}
	}
	rs := sortedKeys(reasons)
	var rows []string
	for _, m := range st.Models {
		fast := ""
		if m.Fast {
			fast = "fast"
		}
		row := fmt.Sprintf("%s\t%s\t%s\t%s", m.Model, fast, num(m.Turns), num(m.Sessions))
		for _, k := range rs {
			row += "\t" + pctOf(m.FinishReasons[k], m.Turns)
		}
		row += fmt.Sprintf("\t%s / %s / %s\t%s / %s / %s", fnum(m.ToolCallsPerTurn.P50), fnum(m.ToolCallsPerTurn.P95), fnum(m.ToolCallsPerTurn.P99),
			dur(int64(m.DurationMs.P50)), dur(int64(m.DurationMs.P95)), dur(int64(m.DurationMs.P99)))
		rows = append(rows, row)
	}
	p.table("model\t\tturns\tsessions\t"+strings.Join(rs, "\t")+"\tcalls/turn p50/p95/p99\tduration p50/p95/p99", rows)
	p.f("  stuck sessions: %d (rule: %s)\n", len(st.StuckSessions), st.Rule)
	if len(st.StuckSessions) > 0 {
		rows = nil
		for _, s := range top(st.StuckSessions) {
			rows = append(rows, fmt.Sprintf("%s\t%s\t%d\t%s\t%s\t%s%s", s.SessionID, s.Model, s.StruggleTurns, yes(s.Swapped), num(s.Impact.Tokens), dur(s.Impact.Ms), r.cost(s.Impact)))
		}
		p.table("session\tmodel\tstruggles\tswapped\ttokens\ttime"+r.costHead(), rows)
		more(p, len(st.StuckSessions))
	}
	p.finding(st.Recommendation)
}

func (r *Report) textDead(p *printer) {
	dc := &r.DeadCommands
	p.section("2. DEAD SLASH COMMANDS")
	var rows []string
	for _, c := range dc.Commands {
		name := "/" + c.Command
		if slices.Contains(schema.FixedCommandNames(), c.Command) {
			name = "(" + c.Command + ": not in the build's catalog)" // a fixed word, not a command
		}
		rows = append(rows, fmt.Sprintf("%s\t%s\t%s", name, num(c.Uses), num(c.Users)))
	}
	users := "users"
	if r.Counted == "sessions" {
		users = "sessions"
	}
	if len(rows) > 0 {
		p.table("command\tuses\t"+users, rows)
	}
	if len(dc.Unused) > 0 {
		p.f("  never used: /%s\n", strings.Join(dc.Unused, ", /"))
	}
	p.finding(dc.Finding)
}

func (r *Report) textRetries(p *printer) {
	rs := &r.RetryStorms
	p.section("3. RETRY STORMS")
	p.f("  %s retries in %s sessions; per session p50/p95/p99 %s / %s / %s; delay p50/p95/p99 %s / %s / %s\n",
		num(rs.Retries), num(rs.Sessions), fnum(rs.RetriesPerSession.P50), fnum(rs.RetriesPerSession.P95), fnum(rs.RetriesPerSession.P99),
		dur(int64(rs.DelayMs.P50)), dur(int64(rs.DelayMs.P95)), dur(int64(rs.DelayMs.P99)))
	if len(rs.ErrorTypes) > 0 {
		var rows []string
		for _, e := range rs.ErrorTypes {
			rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s", e.ErrorType, num(e.Retries), num(e.Sessions), dur(int64(e.DelayP80Ms))))
		}
		p.table("error type\tretries\tsessions\tdelay p80", rows)
	}
	if len(rs.TurnErrors) > 0 {
		var rows []string
		for _, e := range rs.TurnErrors {
			rows = append(rows, fmt.Sprintf("%s\t%s\t%s", e.ErrorType, num(e.Turns), num(e.Sessions)))
		}
		p.table("turn ended by\tturns\tsessions", rows)
	}
	if len(rs.ByModel) > 0 {
		var rows []string
		for _, m := range rs.ByModel {
			rows = append(rows, fmt.Sprintf("%s\t%s\t%s", m.Model, num(m.Retries), num(m.Sessions)))
		}
		p.table("session model\tretries\tsessions", rows)
	}
	if len(rs.StormSessions) > 0 {
		p.f("  storm sessions (≥ %d retries): %d\n", rs.StormThreshold, len(rs.StormSessions))
		var rows []string
		for _, s := range top(rs.StormSessions) {
			rows = append(rows, fmt.Sprintf("%s\t%s\t%d\t%s", s.SessionID, s.Model, s.Retries, dur(s.Impact.Ms)))
		}
		p.table("session\tmodel\tretries\twaited", rows)
		more(p, len(rs.StormSessions))
		if len(rs.BeforeStormRetries) > 0 {
			var parts []string
			for _, t := range rs.BeforeStormRetries {
				parts = append(parts, fmt.Sprintf("%s %s", t.ToolName, num(t.Retries)))
			}
			p.f("  tool called just before a storm's retries: %s\n", strings.Join(parts, ", "))
		}
		d := rs.SessionDurationMs
		p.f("  session duration p50/p95: storm sessions %s / %s, all sessions %s / %s\n",
			dur(int64(d.Storm.P50)), dur(int64(d.Storm.P95)), dur(int64(d.All.P50)), dur(int64(d.All.P95)))
	}
	p.finding(rs.Recommendation)
}

func (r *Report) textLoops(p *printer) {
	tl := &r.ToolLoops
	p.section(fmt.Sprintf("4. TOOL DISPATCH LOOPS (%d+ identical calls in a row)", tl.MinRepeats))
	p.f("  %d loops: %d stuck (same result), %d polling (result changed), %d unknown (no result_fingerprint)\n", len(tl.Loops), tl.Stuck, tl.Polling, tl.Unknown)
	if len(tl.ByTool) > 0 {
		var rows []string
		for _, t := range tl.ByTool {
			rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%.2f", t.ToolName, num(t.Loops), num(t.Stuck), num(t.Sessions), num(t.Calls), t.Per1000Calls))
		}
		p.table("tool\tloops\tstuck\tsessions\tcalls\tper 1,000 calls", rows)
	}
	if len(tl.ByModel) > 0 {
		var rows []string
		for _, m := range tl.ByModel {
			rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s", m.Model, num(m.Loops), num(m.Stuck), num(m.Sessions)))
		}
		p.table("model\tloops\tstuck\tsessions", rows)
	}
	if len(tl.Loops) > 0 {
		var rows []string
		for _, l := range top(tl.Loops) {
			rows = append(rows, fmt.Sprintf("%s\t%s\t%d\t%s\t%d\t%s\t%s%s", l.SessionID, l.ToolName, l.Repeats, l.Kind, l.Turns, num(l.Impact.Tokens), dur(l.Impact.Ms), r.cost(l.Impact)))
		}
		p.table("session\ttool\trepeats\tkind\tturns\ttokens\ttime"+r.costHead(), rows)
		more(p, len(tl.Loops))
	}
	p.finding(tl.Finding)
}

func (r *Report) textPlan(p *printer) {
	pm := &r.PlanMode
	p.section("5. PLAN-MODE ADOPTION")
	p.table("sessions\tplan sessions\tshare\tplan→act\tleft without acting\tback to plan ≤ 2 turns", []string{
		fmt.Sprintf("%s\t%s\t%.1f%%\t%s\t%s\t%s", num(pm.Sessions), num(pm.PlanSessions), 100*pm.PlanShare, num(pm.PlanToAct), num(pm.LeftPlanWithoutActing), num(pm.BackToPlanWithin2Turns)),
	})
	p.finding(pm.Finding)
}

func (r *Report) textPermissions(p *printer) {
	pe := &r.Permissions
	p.section("6. PERMISSION PATTERNS (by denied share)")
	if len(pe.Tools) > 0 {
		var rows []string
		for _, t := range pe.Tools {
			rows = append(rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%.1f%%", t.ToolName, num(t.Calls), pctOf(t.AutoAllowed, t.Calls), pctOf(t.UserAllowed, t.Calls), pctOf(t.Denied, t.Calls), 100*t.DeniedShare))
		}
		p.table("tool\tcalls\tauto\tuser\tdenied\tdenied share", rows)
	}
	p.finding(pe.Finding)
}

func top[T any](xs []T) []T {
	if len(xs) > textTop {
		return xs[:textTop]
	}
	return xs
}

func more(p *printer, n int) {
	if n > textTop {
		p.f("  … and %d more (--format json lists all)\n", n-textTop)
	}
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Thousands formats n with a comma between groups of three digits.
func Thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func num(n int64) string { return Thousands(n) }

func fnum(f float64) string {
	s := strconv.FormatFloat(f, 'f', 2, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

func pctOf(a, b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(a)/float64(b))
}

// dur formats milliseconds with a unit.
func dur(ms int64) string {
	switch {
	case ms >= 3_600_000:
		return fmt.Sprintf("%.1f h", float64(ms)/3_600_000)
	case ms >= 60_000:
		return fmt.Sprintf("%.1f min", float64(ms)/60_000)
	case ms >= 1000:
		return fmt.Sprintf("%.1f s", float64(ms)/1000)
	}
	return fmt.Sprintf("%d ms", ms)
}
