package schema

import "slices"

// This file is THE declaration. Edit it, then run `go generate ./schema`.

// KeyScheme starts every API key (internal/apikey is the rest of a key).
const KeyScheme = "fred_live_"

// Patterns: tight enough that no sentence fits (no spaces, bounded length).
var (
	patModel = classPattern("model", `A-Za-z0-9`, `A-Za-z0-9._:/@+-`, 100, "other",
		"a model id: letters, digits and ._:/@+- , no spaces, at most 100 characters")
	patToolName = classPattern("tool_name", `A-Za-z`, `A-Za-z0-9_.:-`, 64, "other",
		"a tool name: a letter, then letters, digits and _.:- , at most 64 characters")
	patCommand = classPattern("command", `a-z`, `a-z0-9_-`, 32, "other",
		"a slash command without its slash: lowercase letters, digits, _ and -, at most 32 characters")
	patSemver = newPattern("semver", `^[0-9]{1,5}\.[0-9]{1,5}\.[0-9]{1,5}(-[0-9A-Za-z.-]{1,32})?(\+[0-9A-Za-z.-]{1,32})?$`, "0.0.0",
		"a semantic version such as 1.4.2 or 1.5.0-rc.1")
	patRuntime = newPattern("runtime_version", `^go[0-9]{1,2}\.[0-9]{1,3}(\.[0-9]{1,3})?((rc|beta)[0-9]{1,2})?$`, "go0.0",
		"a Go runtime version such as go1.26.8")
	patUserID = classPattern("user_id", `A-Za-z0-9`, `A-Za-z0-9._@-`, 128, "",
		"the id of the key's owner, set by the server")
	patKeyPrefix = newPattern("key_prefix", `^`+KeyScheme+`[A-Za-z0-9]{8}$`, "",
		"the first 8 characters of a key after fred_live_: enough to name it, useless to use it")
	patLabel = newPattern("label", `^[A-Za-z0-9 ._@:/+-]{0,64}$`, "",
		"an operator's note on a key")
)

// The patterns, read-only.
func PatModel() *Pattern     { return patModel }
func PatToolName() *Pattern  { return patToolName }
func PatCommand() *Pattern   { return patCommand }
func PatSemver() *Pattern    { return patSemver }
func PatRuntime() *Pattern   { return patRuntime }
func PatUserID() *Pattern    { return patUserID }
func PatKeyPrefix() *Pattern { return patKeyPrefix }
func PatLabel() *Pattern     { return patLabel }

// Enums (outside this package: the Enum of a field, a copy).
var (
	enumOS = []string{"linux", "darwin", "windows", "freebsd", "openbsd", "netbsd",
		"dragonfly", "solaris", "illumos", "aix", "android", "ios", "plan9", "other"}
	enumShell = []string{"bash", "zsh", "fish", "sh", "dash", "ksh", "tcsh", "csh",
		"nu", "elvish", "xonsh", "pwsh", "powershell", "cmd", "other"}
	enumMode         = []string{"act", "plan"}
	enumFinishReason = []string{"stop", "tool_calls", "length", "content_filter", "error",
		"cancelled", "other"}
	enumAPIError = []string{"rate_limit", "overloaded", "timeout", "connection",
		"server_error", "auth", "bad_request", "context_length", "content_filter", "other"}
	enumPermission = []string{"auto_allowed", "user_allowed", "denied"}
	enumOutcome    = []string{"ok", "error"}
	enumEventName  = []string{"slash_command", "api_retry", "mode_change", "model_swap"}
	enumAgent      = []string{"fred", "claude-code", "codex", "gemini-cli", "other"}
)

// Fixed words a name takes on the central route when it is not in its
// session's catalogs (tool_catalog, command_catalog, model_catalog: the
// build's own names): custom for a model the user typed, mcp for a tool the
// user configured, other for anything else. Catalog or fixed word, nothing
// else: a pattern alone lets an e-mail address or a path through.
var (
	fixedModelNames   = []string{"custom", "other"}
	fixedToolNames    = []string{"mcp", "other"}
	fixedCommandNames = []string{"other"}
)

// FixedModelNames, FixedToolNames and FixedCommandNames return copies.
func FixedModelNames() []string   { return slices.Clone(fixedModelNames) }
func FixedToolNames() []string    { return slices.Clone(fixedToolNames) }
func FixedCommandNames() []string { return slices.Clone(fixedCommandNames) }

// Bounds: generous for real use, absurd values rejected.
const (
	maxSeq        = 1_000_000
	maxDurationMs = 7 * 24 * 3600 * 1000 // a week
	maxTokens     = 100_000_000
	maxChars      = 1_000_000_000
	maxBytes      = 1 << 40
	maxToolCalls  = 100_000
	maxCatalog    = 512
	maxTextChars  = 10_000_000 // self-hosted text columns
	maxClockSkew  = 10 * 365 * 24 * 3600 * 1000
	maxRun        = 1_000_000_000 // repeats in one session
)

// Fields shared by several records.
func serverFields() []*Field {
	return []*Field{
		{name: "user_id", kind: KindString, scope: Server, pattern: patUserID, max: 128, since: 1,
			doc: "owner of the API key that sent the record (never from the payload)"},
		{name: "received_at", kind: KindTime, scope: Server, since: 1,
			doc: "server clock when the batch was committed"},
		{name: "clock_offset_ms", kind: KindInt, scope: Server, min: -maxClockSkew, max: maxClockSkew, since: 1,
			doc: "server clock minus the batch's sent_at, to correct a client clock that is off"},
	}
}

func sessionRef() *Field {
	return &Field{name: "session_id", kind: KindUUID, scope: Central, since: 1, doc: "the session this record belongs to"}
}

func seq() *Field {
	return &Field{name: "seq", kind: KindInt, scope: Central, min: 0, max: maxSeq, since: 1,
		doc: "order within the session (turns) or the turn (tool calls), from 0"}
}

func durationMs() *Field {
	return &Field{name: "duration_ms", kind: KindInt, scope: Central, min: 0, max: maxDurationMs, since: 1,
		doc: "wall time in milliseconds"}
}

func count(name string, max int64, doc string) *Field {
	return &Field{name: name, kind: KindInt, scope: Central, min: 0, max: max, since: 1, doc: doc}
}

// sessions declares the session record: one CLI session: sent at start and again at end with ended_at.
var sessions = &Record{
	name: "session", batch: "sessions", table: "sessions", timeField: "started_at", since: 1,
	doc: "one per CLI session; sent at start and again at end with ended_at (the store upserts)",
	fields: append([]*Field{
		{name: "session_id", kind: KindUUID, scope: Central, key: true, since: 1, doc: "client-generated UUIDv7"},
		{name: "started_at", kind: KindTime, scope: Central, since: 1, doc: "session start"},
		{name: "ended_at", kind: KindTime, scope: Central, nullable: true, since: 1, doc: "session end; null while running"},
		{name: "model", kind: KindString, scope: Central, pattern: patModel, max: 100, since: 1, doc: "model at session start"},
		{name: "fred_version", kind: KindString, scope: Central, pattern: patSemver, max: 80, since: 1, doc: "Fred CLI version"},
		{name: "runtime_version", kind: KindString, scope: Central, pattern: patRuntime, max: 20, since: 1, doc: "Go runtime version"},
		{name: "os", kind: KindString, scope: Central, enum: enumOS, max: 16, since: 1, doc: "GOOS"},
		{name: "shell", kind: KindString, scope: Central, enum: enumShell, max: 16, since: 1, doc: "basename of the login shell from a fixed list, else other"},
		{name: "git_dirty", kind: KindBool, scope: Central, nullable: true, since: 1, doc: "uncommitted changes at start; null outside a repository (never the SHA)"},
		{name: "agents_md_hash", kind: KindHash, scope: Central, nullable: true, max: 64, since: 1, doc: "HMAC-SHA-256 of AGENTS.md under a per-install key; null without one"},
		{name: "system_prompt_sha256", kind: KindHash, scope: Central, nullable: true, max: 64, since: 1, doc: "SHA-256 of the system prompt (comparable across users)"},
		{name: "tool_catalog", kind: KindList, scope: Central, pattern: patToolName, maxItems: maxCatalog, max: 64, since: 1, doc: "names of the tools this build offers"},
		{name: "command_catalog", kind: KindList, scope: Central, pattern: patCommand, maxItems: maxCatalog, max: 32, since: 1, doc: "slash commands this build offers (dead commands are measured against it)"},
		{name: "model_catalog", kind: KindList, scope: Central, nullable: true, pattern: patModel, maxItems: maxCatalog, max: 100, since: 2, doc: "models this build offers (a model name outside it is recorded as custom)"},
		{name: "agent", kind: KindString, scope: Central, nullable: true, enum: enumAgent, max: 16, since: 2, doc: "the agent CLI the session ran in (null before version 2: fred)"},
		{name: "agent_version", kind: KindString, scope: Central, nullable: true, pattern: patSemver, max: 80, since: 2, doc: "that agent's version, where it says it (fred: fred_version)"},
	}, serverFields()...),
}

// turns declares the turn record: one agent-loop iteration.
var turns = &Record{
	name: "turn", batch: "turns", table: "turns", timeField: "started_at", since: 1,
	doc: "one per agent-loop iteration",
	fields: append([]*Field{
		{name: "turn_id", kind: KindUUID, scope: Central, key: true, since: 1, doc: "client-generated UUIDv7"},
		sessionRef(),
		seq(),
		{name: "started_at", kind: KindTime, scope: Central, since: 1, doc: "turn start"},
		{name: "model", kind: KindString, scope: Central, pattern: patModel, max: 100, since: 1, doc: "model that answered"},
		{name: "mode", kind: KindString, scope: Central, enum: enumMode, max: 8, since: 1, doc: "act or plan"},
		count("prompt_tokens", maxTokens, "input tokens"),
		count("completion_tokens", maxTokens, "output tokens"),
		count("cached_tokens", maxTokens, "input tokens served from cache"),
		{name: "finish_reason", kind: KindString, scope: Central, enum: enumFinishReason, max: 16, since: 1, doc: "why the model stopped"},
		durationMs(),
		count("num_tool_calls", maxToolCalls, "tool calls the turn asked for"),
		{name: "api_error_type", kind: KindString, scope: Central, nullable: true, enum: enumAPIError, max: 16, since: 1, doc: "null, or the class of API error that ended the turn"},
		count("prompt_chars", maxChars, "length of the user's input in characters"),
		count("response_chars", maxChars, "length of the assistant's text in characters"),
		{name: "user_input", kind: KindText, scope: SelfHosted, nullable: true, max: maxTextChars, since: 1, doc: "the user's input text (self-hosted only, unless DSC_TELEMETRY_NO_TEXT=1)"},
		{name: "assistant_text", kind: KindText, scope: SelfHosted, nullable: true, max: maxTextChars, since: 1, doc: "the assistant's text (self-hosted only, unless DSC_TELEMETRY_NO_TEXT=1)"},
	}, serverFields()...),
	indexes: []Index{
		// Plan-mode turns (a few percent): plan mode's analysis reads them here.
		{Name: "plan_idx", Columns: []string{"session_id", "started_at"}, Include: []string{"seq"}, Where: "mode = 'plan'", Since: 3},
		// The turns of one model in a duration range, with their sessions:
		// the exact value of a duration percentile, inside the bucket the
		// hour rollup (TurnHours) says holds its rank.
		{Name: "model_duration_idx", Columns: []string{"model", "duration_ms"}, Include: []string{"session_id"}, Since: 4},
	},
}

// toolCalls declares the tool_call record: one tool invocation.
var toolCalls = &Record{
	name: "tool_call", batch: "tool_calls", table: "tool_calls", timeField: "started_at", since: 1,
	doc: "one per tool invocation",
	fields: append([]*Field{
		{name: "call_id", kind: KindUUID, scope: Central, key: true, since: 1, doc: "client-generated UUIDv7"},
		sessionRef(),
		{name: "turn_id", kind: KindUUID, scope: Central, since: 1, doc: "the turn that asked for the call"},
		seq(),
		{name: "started_at", kind: KindTime, scope: Central, since: 1, doc: "call start"},
		{name: "tool_name", kind: KindString, scope: Central, pattern: patToolName, max: 64, since: 1, doc: "tool invoked"},
		{name: "args_fingerprint", kind: KindHash, scope: Central, max: 64, since: 1, doc: "HMAC-SHA-256 of the canonical JSON of the arguments under a per-session key"},
		{name: "permission", kind: KindString, scope: Central, enum: enumPermission, max: 16, since: 1, doc: "how the call was permitted"},
		durationMs(),
		{name: "outcome", kind: KindString, scope: Central, enum: enumOutcome, max: 8, since: 1, doc: "ok or error"},
		count("result_bytes", maxBytes, "size of the tool result in bytes"),
		{name: "result_is_error", kind: KindBool, scope: Central, since: 1, doc: "the result text starts with Error:"},
		{name: "result_fingerprint", kind: KindHash, scope: Central, nullable: true, max: 64, since: 2, doc: "HMAC-SHA-256 of the result text under the session's key (beyond 32 KiB: of its length, first and last 16 KiB): a repeated call with the same result is stuck, with a changing one polling"},
		{name: "run_start", kind: KindUUID, scope: Central, nullable: true, since: 3, doc: "call_id of the first call of the run this call is in (calls in session order with the same tool_name and args_fingerprint, marked by the client as it records them); null where the client did not mark runs"},
		{name: "run_len", kind: KindInt, scope: Central, nullable: true, min: 1, max: maxRun, since: 3, doc: "the call's place in that run: 1 for a call unlike the one before it, 2 and more for a repeat (a loop is a run that reaches 3); null where the client did not mark runs"},
	}, serverFields()...),
	indexes: []Index{
		// The repeats the client marked (a small share of the calls): the
		// insights find every loop of a window here, without sorting the
		// calls (docs/insights.md).
		{Name: "runs_idx", Columns: []string{"session_id", "run_start"},
			Include: []string{"run_len", "result_fingerprint", "duration_ms", "turn_id"}, Where: "run_len >= 2", Since: 3},
	},
}

// events declares the event record: a named event with typed props.
var events = &Record{
	name: "event", batch: "events", table: "events", timeField: "ts", since: 1,
	doc: "a named event with a fixed, typed set of props per name",
	fields: append([]*Field{
		{name: "event_id", kind: KindUUID, scope: Central, key: true, since: 1, doc: "client-generated UUIDv7"},
		sessionRef(),
		{name: "ts", kind: KindTime, scope: Central, since: 1, doc: "when it happened"},
		{name: "name", kind: KindString, scope: Central, enum: enumEventName, max: 16, since: 1, doc: "event name"},
		{name: "props", kind: KindProps, scope: Central, since: 1, doc: "props of the named event (see below)"},
		{name: "seq", kind: KindInt, scope: Central, nullable: true, min: 0, max: maxSeq, since: 2, doc: "order of the event within the session, from 0 (events of one millisecond stay ordered)"},
	}, serverFields()...),
	props: map[string][]*Field{
		"slash_command": {
			{name: "command", kind: KindString, scope: Central, pattern: patCommand, max: 32, since: 1, doc: "command name without its slash or arguments"},
		},
		"api_retry": {
			{name: "attempt", kind: KindInt, scope: Central, min: 1, max: 1000, since: 1, doc: "retry number, from 1"},
			{name: "delay_ms", kind: KindInt, scope: Central, min: 0, max: 3_600_000, since: 1, doc: "delay before the retry"},
			{name: "error_type", kind: KindString, scope: Central, enum: enumAPIError, max: 16, since: 1, doc: "class of the error retried"},
			{name: "status", kind: KindInt, scope: Central, min: 0, max: 599, since: 1, doc: "HTTP status, 0 when none"},
			{name: "latency_ms", kind: KindInt, scope: Central, min: 0, max: maxDurationMs, since: 2, doc: "how long the failed attempt took"},
		},
		"mode_change": {
			{name: "from", kind: KindString, scope: Central, enum: enumMode, max: 8, since: 1, doc: "previous mode"},
			{name: "to", kind: KindString, scope: Central, enum: enumMode, max: 8, since: 1, doc: "new mode"},
		},
		"model_swap": {
			{name: "from", kind: KindString, scope: Central, pattern: patModel, max: 100, since: 1, doc: "previous model"},
			{name: "to", kind: KindString, scope: Central, pattern: patModel, max: 100, since: 1, doc: "new model"},
		},
	},
	// The rare events an analysis reads by session (retries, swaps, mode
	// changes: a few percent of the events), instead of scanning every
	// slash command.
	indexes: []Index{
		{Name: "api_retry_idx", Columns: []string{"session_id", "ts"}, Include: []string{"props"}, Where: "name = 'api_retry'", Since: 3},
		{Name: "model_swap_idx", Columns: []string{"session_id", "ts"}, Include: []string{"props"}, Where: "name = 'model_swap'", Since: 3},
		{Name: "mode_change_idx", Columns: []string{"session_id", "ts"}, Include: []string{"props"}, Where: "name = 'mode_change'", Since: 3},
	},
}

var records = [...]*Record{sessions, turns, toolCalls, events}

// Sessions, Turns, ToolCalls and Events return the batch records; nothing
// outside this package can change one.
func Sessions() *Record  { return sessions }
func Turns() *Record     { return turns }
func ToolCalls() *Record { return toolCalls }
func Events() *Record    { return events }

// Records lists every record type, in the order batches carry them and
// stores write them (sessions first, so ownership is settled before
// children): a copy, so the declaration cannot be changed through it.
func Records() [len(records)]*Record { return records }

// apiKeys declares the ingest server's API keys: only a key's SHA-256 is
// stored, never the key. A server table: central set only, never in a batch.
var apiKeys = &Record{
	name: "api_key", table: "api_keys", timeField: "created_at", since: 1, unprefixed: true,
	doc: "the ingest server's API keys, stored as SHA-256 hashes",
	fields: []*Field{
		{name: "key_hash", kind: KindHash, scope: Server, key: true, max: 64, since: 1, doc: "SHA-256 of the whole key"},
		{name: "key_prefix", kind: KindString, scope: Server, pattern: patKeyPrefix, max: 18, since: 1, doc: "fred_live_ and the next 8 characters, to name the key"},
		{name: "user_id", kind: KindString, scope: Server, pattern: patUserID, max: 128, since: 1, doc: "the user every record sent with the key belongs to"},
		{name: "label", kind: KindString, scope: Server, pattern: patLabel, max: 64, since: 1, doc: "operator's note"},
		{name: "created_at", kind: KindTime, scope: Server, since: 1, doc: "when the key was made"},
		{name: "last_used_at", kind: KindTime, scope: Server, nullable: true, since: 1, doc: "last accepted request (updated at most once a minute)"},
		{name: "revoked_at", kind: KindTime, scope: Server, nullable: true, since: 1, doc: "when the key was revoked; refused from then on"},
	},
}

var serverTables = [...]*Record{apiKeys}

// ServerTables lists the tables of the central set that hold no records.
func ServerTables() [len(serverTables)]*Record { return serverTables }
