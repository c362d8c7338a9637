package relay

import (
	"regexp"
	"sort"
	"strings"
	"time"

	logspb "go.opentelemetry.io/proto/slim/otlp/logs/v1"
	tracepb "go.opentelemetry.io/proto/slim/otlp/trace/v1"
)

// agent describes one CLI: how to recognise it, its catalogs (the closed
// vocabularies its names are recorded from centrally), and how its log
// records and spans become facts.
type agent struct {
	name string // schema.SessionFields().Agent.Enum()
	// Tools, commands and models this CLI ships: its own names, recorded
	// as they are; any other name becomes a fixed word (mcp, other, custom).
	tools, commands, models []string
	// version reads the CLI's version from its resource attributes ("" when
	// it does not say it).
	version func(res kvs) string
	log     func(x *batch, r *logspb.LogRecord)
	spans   func(x *batch, spans []*tracepb.Span) // nil: spans are not used
}

// agentOf recognises a CLI by its service.name; nil for any other service.
func agentOf(service string) *agent {
	switch {
	case service == "claude-code":
		return claude
	case service == "gemini-cli":
		return gemini
	case service == "codex" || strings.HasPrefix(service, "codex_") || strings.HasPrefix(service, "codex-"):
		return codex
	}
	return nil
}

var semver = regexp.MustCompile(`^[0-9]{1,5}\.[0-9]{1,5}\.[0-9]{1,5}(-[0-9A-Za-z.-]{1,32})?$`)

// serviceVersion is service.version when it is a semantic version.
func serviceVersion(res kvs) string {
	if v := str(res, "service.version"); semver.MatchString(v) {
		return v
	}
	return ""
}

// ---- Claude Code -------------------------------------------------------

var claude = &agent{
	name: "claude-code",
	tools: []string{"Agent", "Task", "Bash", "BashOutput", "KillShell", "KillBash", "Edit", "MultiEdit", "Write", "Read",
		"Glob", "Grep", "LS", "NotebookEdit", "NotebookRead", "WebFetch", "WebSearch", "TodoWrite", "TodoRead",
		"ExitPlanMode", "EnterPlanMode", "SlashCommand", "Skill", "AskUserQuestion", "ListMcpResourcesTool", "ReadMcpResourceTool"},
	commands: []string{"add-dir", "agents", "bashes", "bug", "clear", "compact", "config", "context", "cost", "doctor", "exit",
		"export", "feedback", "help", "hooks", "ide", "init", "install-github-app", "login", "logout", "mcp", "memory",
		"model", "output-style", "permissions", "plugin", "pr-comments", "privacy-settings", "release-notes", "resume",
		"review", "rewind", "sandbox", "security-review", "skills", "stats", "status", "statusline", "terminal-setup",
		"todos", "upgrade", "usage", "vim", "quit"},
	models: []string{"claude-opus-4-8", "claude-opus-4-5", "claude-opus-4-1", "claude-opus-4-0", "claude-opus-4-20250514",
		"claude-opus-4-1-20250805", "claude-sonnet-4-5", "claude-sonnet-4-0", "claude-sonnet-4-20250514",
		"claude-sonnet-4-5-20250929", "claude-haiku-4-5", "claude-haiku-4-5-20251001", "claude-3-7-sonnet-20250219",
		"claude-3-5-haiku-20241022", "opus", "sonnet", "haiku"},
	version: serviceVersion,
	log:     claudeLog,
	spans:   claudeSpans,
}

// claudeMain: the agent loop's own calls; others (session titles,
// compaction, sub-agents) are not turns of the session.
func claudeMain(querySource string) bool {
	switch querySource {
	case "", "sdk", "repl_main_thread", "main":
		return true
	}
	return false
}

// claudeModel drops Claude Code's context-window marker ("[1m]").
func claudeModel(m string) string {
	if i := strings.IndexByte(m, '['); i > 0 {
		return m[:i]
	}
	return m
}

// claudePermission: accept by configuration is automatic, by the user
// (user_temporary, user_permanent) user-allowed; reject is denied.
func claudePermission(decision, source string) string {
	switch strings.ToLower(decision) {
	case "reject", "deny", "denied", "abort":
		return "denied"
	case "accept", "allow", "approved":
		if strings.HasPrefix(strings.ToLower(source), "user") {
			return "user_allowed"
		}
		return "auto_allowed"
	}
	return ""
}

func claudeLog(x *batch, r *logspb.LogRecord) {
	a := r.GetAttributes()
	name := str(a, "event.name")
	if name == "" {
		name = strings.TrimPrefix(r.GetBody().GetStringValue(), "claude_code.")
	}
	sid := str(a, "session.id")
	t := recordTime(r)
	switch name {
	case "user_prompt":
		if cmd := str(a, "command_name"); cmd != "" {
			x.add(sid, fact{kind: kSlash, at: t, command: cmd})
			return
		}
		n, _ := integer(a, "prompt_length")
		x.add(sid, fact{kind: kPrompt, at: t, text: visible(str(a, "prompt")), chars: int(n)})
	case "api_request":
		model := claudeModel(str(a, "model"))
		dur, ok := integer(a, "duration_ms")
		in, ok2 := integer(a, "input_tokens")
		if model == "" || !ok || !ok2 {
			x.incomplete(sid)
			return
		}
		out, _ := integer(a, "output_tokens")
		cached, _ := integer(a, "cache_read_tokens")
		x.add(sid, fact{kind: kCall, at: t.Add(-ms(dur)), end: t, model: model, in: in, out: out, cached: cached,
			aux: !claudeMain(str(a, "query_source"))})
	case "assistant_response":
		n, _ := integer(a, "response_length")
		x.add(sid, fact{kind: kText, at: t, text: visible(str(a, "response")), chars: int(n), aux: !claudeMain(str(a, "query_source"))})
	case "tool_decision":
		id, tool := str(a, "tool_use_id"), str(a, "tool_name")
		perm := claudePermission(str(a, "decision"), str(a, "source"))
		if tool == "" || id == "" || perm == "" {
			x.incomplete(sid)
			return
		}
		args := str(a, "tool_input")
		if args == "" {
			args = str(a, "tool_parameters")
		}
		x.add(sid, fact{kind: kDecision, at: t, tool: tool, callID: id, perm: perm, args: args})
	case "tool_result":
		tool := str(a, "tool_name")
		dur, ok := integer(a, "duration_ms")
		if tool == "" || !ok {
			x.incomplete(sid)
			return
		}
		success, _ := boolean(a, "success")
		size, _ := integer(a, "tool_result_size_bytes")
		args := str(a, "tool_input")
		if args == "" {
			args = str(a, "tool_parameters")
		}
		x.add(sid, fact{kind: kTool, at: t.Add(-ms(dur)), end: t, tool: tool, callID: str(a, "tool_use_id"), args: args,
			resultBytes: size, failed: !success, perm: claudePermission(str(a, "decision_type"), str(a, "decision_source"))})
	case "api_error":
		if !claudeMain(str(a, "query_source")) {
			x.skipAux()
			return
		}
		attempt, _ := integer(a, "attempt")
		status, _ := integer(a, "status_code")
		dur, _ := integer(a, "duration_ms")
		x.add(sid, fact{kind: kFail, at: t, attempt: max(attempt, 1), status: status, latency: ms(dur), errType: errorClass(status, ""),
			model: claudeModel(str(a, "model"))})
	default:
		x.unknown(sid)
	}
}

// claudeSpans reads Claude Code's (beta) traces for what its logs lack: a
// tool call denied before it ran (a tool span whose blocked_on_user child
// says reject), the attempts of a retried model call (attempt events on
// llm_request) and the stop reason of each call.
func claudeSpans(x *batch, spans []*tracepb.Span) {
	blocked := map[string]string{}
	for _, sp := range spans {
		if sp.GetName() == "claude_code.tool.blocked_on_user" {
			blocked[string(fixID(sp.GetParentSpanId(), 8))] = str(sp.GetAttributes(), "decision")
		}
	}
	for _, sp := range spans {
		a := sp.GetAttributes()
		sid := str(a, "session.id")
		start, end := unixNano(sp.GetStartTimeUnixNano()), unixNano(sp.GetEndTimeUnixNano())
		switch sp.GetName() {
		case "claude_code.tool":
			tool, id := str(a, "tool_name"), str(a, "tool_use_id")
			if tool == "" || id == "" {
				x.incomplete(sid)
				continue
			}
			perm, failed := "auto_allowed", false
			switch blocked[string(fixID(sp.GetSpanId(), 8))] {
			case "reject":
				perm, failed = "denied", true
			case "accept":
				perm = "user_allowed"
			}
			x.add(sid, fact{kind: kTool, src: srcSpan, at: start, end: end, tool: tool, callID: id, perm: perm, failed: failed})
		case "claude_code.llm_request":
			type try struct {
				n  int64
				at time.Time
			}
			var tries []try
			for _, ev := range sp.GetEvents() {
				if ev.GetName() == "gen_ai.request.attempt" {
					n, _ := integer(ev.GetAttributes(), "attempt")
					tries = append(tries, try{n, unixNano(ev.GetTimeUnixNano())})
				}
			}
			sort.Slice(tries, func(i, j int) bool { return tries[i].n < tries[j].n })
			for i := 0; i+1 < len(tries); i++ {
				// The span says neither the status nor how the gap
				// between attempts splits into latency and delay.
				x.add(sid, fact{kind: kRetry, src: srcSpan, at: tries[i].at, end: tries[i+1].at, attempt: max(tries[i].n, 1),
					delay: tries[i+1].at.Sub(tries[i].at), errType: "other"})
			}
			if f := stopReason(str(a, "stop_reason")); f != "" {
				x.add(sid, fact{kind: kFinish, src: srcSpan, at: end, finish: f})
			}
		}
	}
}

// ---- Gemini CLI --------------------------------------------------------

var gemini = &agent{
	name: "gemini-cli",
	tools: []string{"list_directory", "read_file", "write_file", "glob", "search_file_content", "grep_search", "replace",
		"run_shell_command", "web_fetch", "google_web_search", "save_memory", "read_many_files", "write_todos",
		"codebase_investigator", "delegate_to_agent", "activate_skill", "enter_plan_mode", "exit_plan_mode", "ask_user"},
	commands: []string{"about", "agents", "auth", "bug", "chat", "clear", "compress", "copy", "corgi", "directory", "dir",
		"docs", "editor", "extensions", "help", "hooks", "ide", "init", "mcp", "memory", "model", "permissions", "plan",
		"policies", "privacy", "quit", "exit", "restore", "resume", "settings", "setup-github", "skills", "stats", "terminal-setup",
		"theme", "tools", "vim"},
	models: []string{"gemini-3.8-flash", "gemini-3.5-flash-lite", "gemini-3-pro-preview", "gemini-3-flash-preview",
		"gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash", "auto"},
	// Gemini CLI's service.version is the Node.js version: it never says its own.
	version: func(kvs) string { return "" },
	log:     geminiLog,
}

// geminiPermission: Gemini CLI says accept when the call went ahead (asked
// or not), auto_accept when it needed no confirmation, modify when the user
// edited it first, reject when refused. In a non-interactive run nobody
// could be asked.
func geminiPermission(decision string, interactive bool) string {
	switch strings.ToLower(decision) {
	case "reject", "cancel", "cancelled":
		return "denied"
	case "modify":
		return "user_allowed"
	case "accept":
		if interactive {
			return "user_allowed"
		}
		return "auto_allowed"
	case "auto_accept", "":
		return "auto_allowed"
	}
	return ""
}

func geminiLog(x *batch, r *logspb.LogRecord) {
	a := r.GetAttributes()
	sid := str(a, "session.id")
	t := recordTime(r)
	switch str(a, "event.name") {
	case "gemini_cli.user_prompt":
		n, _ := integer(a, "prompt_length")
		x.add(sid, fact{kind: kPrompt, at: t, text: visible(str(a, "prompt")), chars: int(n)})
	case "gemini_cli.api_response":
		model := str(a, "model")
		dur, ok := integer(a, "duration_ms")
		in, ok2 := integer(a, "input_token_count")
		if model == "" || !ok || !ok2 {
			x.incomplete(sid)
			return
		}
		out, _ := integer(a, "output_token_count")
		cached, _ := integer(a, "cached_content_token_count")
		role := str(a, "role")
		f := fact{kind: kCall, at: t.Add(-ms(dur)), end: t, model: model, in: in, out: out, cached: cached,
			aux: role != "" && role != "main"}
		if rs := strs(a, "finish_reasons"); len(rs) > 0 {
			f.finish = stopReason(rs[0])
		}
		x.add(sid, f)
		if text := visible(str(a, "response_text")); text != "" && !f.aux {
			x.add(sid, fact{kind: kText, at: t, text: text})
		}
	case "gemini_cli.api_error":
		// The retry event that follows says it is retried; it takes
		// this one's status and latency.
		status, _ := integer(a, "status_code")
		dur, _ := integer(a, "duration_ms")
		role := str(a, "role")
		x.add(sid, fact{kind: kFail, at: t, status: status, latency: ms(dur), errType: errorClass(status, str(a, "error.type")),
			model: str(a, "model"), waits: true, aux: role != "" && role != "main"})
	case "gemini_cli.network_retry_attempt", "gemini_cli.retry_attempt":
		attempt, ok := integer(a, "attempt")
		if !ok {
			x.incomplete(sid)
			return
		}
		delay, _ := integer(a, "delay_ms")
		x.add(sid, fact{kind: kRetry, at: t, attempt: max(attempt, 1), delay: ms(delay), errType: errorClass(0, str(a, "error_type"))})
	case "gemini_cli.tool_call":
		tool := str(a, "function_name")
		dur, ok := integer(a, "duration_ms")
		if tool == "" || !ok {
			x.incomplete(sid)
			return
		}
		interactive, _ := boolean(a, "interactive")
		perm := geminiPermission(str(a, "decision"), interactive)
		if perm == "" {
			x.incomplete(sid)
			return
		}
		if str(a, "tool_type") == "mcp" || str(a, "mcp_server_name") != "" {
			tool = "mcp__" + tool // an MCP server's tool: recorded as mcp centrally
		}
		success, _ := boolean(a, "success")
		size, _ := integer(a, "content_length")
		x.add(sid, fact{kind: kTool, at: t.Add(-ms(dur)), end: t, tool: tool, args: str(a, "function_args"),
			resultBytes: size, failed: !success || perm == "denied", perm: perm})
	case "gemini_cli.slash_command":
		cmd := str(a, "command")
		if cmd == "" {
			x.incomplete(sid)
			return
		}
		x.add(sid, fact{kind: kSlash, at: t, command: cmd})
		if cmd == "quit" || cmd == "exit" {
			x.add(sid, fact{kind: kEnd, at: t})
		}
	case "gemini_cli.plan.approval_mode_switch":
		x.add(sid, fact{kind: kMode, at: t, from: mode(str(a, "from_mode")), to: mode(str(a, "to_mode"))})
	case "gemini_cli.config":
		if mode(str(a, "approval_mode")) == "plan" {
			x.add(sid, fact{kind: kMode, at: t, from: "act", to: "plan"})
		}
	case "gemini_cli.api_request", "gen_ai.client.inference.operation.details", "gemini_cli.model_routing",
		"gemini_cli.ripgrep_fallback", "gemini_cli.startup_stats", "gemini_cli.plan.approval_mode_duration",
		"gemini_cli.flash_fallback", "gemini_cli.next_speaker_check", "gemini_cli.chat_compression",
		"gemini_cli.conversation_finished", "gemini_cli.file_operation", "gemini_cli.loop_detected",
		"gemini_cli.kitty_sequence_overflow", "gemini_cli.ide_connection", "gemini_cli.extension_install",
		"gemini_cli.tool_output_truncated", "gemini_cli.invalid_chunk", "gemini_cli.content_retry",
		"gemini_cli.content_retry_failure", "gemini_cli.malformed_json_response":
		// Known, and nothing the records hold (routing shows as the
		// turn's model, and a change of it as a model_swap).
		x.ignored()
	default:
		x.unknown(sid)
	}
}

// ---- Codex -------------------------------------------------------------

var codex = &agent{
	name: "codex",
	tools: []string{"exec_command", "write_stdin", "shell", "shell_command", "local_shell", "apply_patch", "update_plan",
		"view_image", "web_search", "read_file", "list_dir", "grep_files", "request_user_input", "unified_exec"},
	commands: []string{"model", "approvals", "permissions", "review", "new", "resume", "init", "compact", "diff", "mention",
		"status", "mcp", "logout", "quit", "exit", "feedback", "undo", "fork", "skills", "prompts", "experimental", "rollout"},
	models: []string{"gpt-5.1-codex", "gpt-5.1-codex-mini", "gpt-5.1-codex-max", "gpt-5.1", "gpt-5-codex", "gpt-5-codex-mini",
		"gpt-5", "gpt-5-mini", "gpt-5.2", "gpt-5.2-codex", "o3", "o4-mini", "gpt-4.1", "codex-mini-latest"},
	version: func(res kvs) string {
		if v := serviceVersion(res); v != "" {
			return v
		}
		return ""
	},
	log: codexLog,
}

// codexPermission: approved by the configuration's policy is automatic,
// by the user user-allowed; denied or aborted is denied.
func codexPermission(decision, source string) string {
	switch strings.ToLower(decision) {
	case "denied", "abort", "rejected":
		return "denied"
	case "approved", "approved_for_session", "approved_execpolicy_amendment":
		if strings.EqualFold(source, "user") {
			return "user_allowed"
		}
		return "auto_allowed"
	}
	return ""
}

func codexLog(x *batch, r *logspb.LogRecord) {
	a := r.GetAttributes()
	sid := str(a, "conversation.id")
	t := recordTime(r)
	switch str(a, "event.name") {
	case "codex.user_prompt":
		n, _ := integer(a, "prompt_length")
		x.add(sid, fact{kind: kPrompt, at: t, text: visible(str(a, "prompt")), chars: int(n)})
	case "codex.api_request":
		dur, ok := integer(a, "duration_ms")
		if !ok {
			x.incomplete(sid)
			return
		}
		status, _ := integer(a, "http.response.status_code")
		attempt, _ := integer(a, "attempt")
		if status < 200 || status >= 300 {
			x.add(sid, fact{kind: kFail, at: t, attempt: attempt + 1, status: status, latency: ms(dur), errType: errorClass(status, ""),
				model: str(a, "model")})
			return
		}
		x.add(sid, fact{kind: kCallStart, at: t.Add(-ms(dur)), model: str(a, "model")})
	case "codex.sse_event":
		if str(a, "event.kind") != "response.completed" {
			x.ignored()
			return
		}
		in, ok := integer(a, "input_token_count")
		if !ok {
			x.ignored() // the first of the two response.completed: no usage
			return
		}
		out, _ := integer(a, "output_token_count")
		cached, _ := integer(a, "cached_token_count")
		x.add(sid, fact{kind: kCallEnd, at: t, end: t, in: in, out: out, cached: cached, model: str(a, "model")})
	case "codex.tool_decision":
		id := str(a, "call_id")
		perm := codexPermission(str(a, "decision"), str(a, "source"))
		if id == "" || perm == "" {
			x.incomplete(sid)
			return
		}
		x.add(sid, fact{kind: kDecision, at: t, tool: codexTool(a), callID: id, perm: perm})
	case "codex.tool_result":
		dur, ok := integer(a, "duration_ms")
		if str(a, "tool_name") == "" || !ok {
			x.incomplete(sid)
			return
		}
		success, _ := boolean(a, "success")
		out := str(a, "output")
		x.add(sid, fact{kind: kTool, at: t.Add(-ms(dur)), end: t, tool: codexTool(a), callID: str(a, "call_id"),
			args: str(a, "arguments"), result: out, failed: !success})
	case "codex.conversation_starts", "codex.startup_phase", "codex.turn_ttft", "codex.websocket_request",
		"codex.websocket_event", "codex.websocket_connect":
		x.ignored()
	case "":
		x.ignored() // the SDK's own records ("flushing OTEL metrics")
	default:
		x.unknown(sid)
	}
}

// codexTool: an MCP server's tool is named for the relay as mcp__server__tool.
func codexTool(a kvs) string {
	if srv := str(a, "mcp_server"); srv != "" {
		return "mcp__" + srv + "__" + str(a, "tool_name")
	}
	return str(a, "tool_name")
}
