package schema

// This file is THE declaration. Edit it, then run `go generate ./schema`.

// KeyScheme starts every API key (internal/apikey is the rest of a key).
const KeyScheme = "fred_live_"

// Patterns: tight enough that no sentence fits (no spaces, bounded length).
var (
	PatModel = classPattern("model", `A-Za-z0-9`, `A-Za-z0-9._:/@+-`, 100, "other",
		"a model id: letters, digits and ._:/@+- , no spaces, at most 100 characters")
	PatToolName = classPattern("tool_name", `A-Za-z`, `A-Za-z0-9_.:-`, 64, "other",
		"a tool name: a letter, then letters, digits and _.:- , at most 64 characters")
	PatCommand = classPattern("command", `a-z`, `a-z0-9_-`, 32, "other",
		"a slash command without its slash: lowercase letters, digits, _ and -, at most 32 characters")
	PatSemver = newPattern("semver", `^[0-9]{1,5}\.[0-9]{1,5}\.[0-9]{1,5}(-[0-9A-Za-z.-]{1,32})?(\+[0-9A-Za-z.-]{1,32})?$`, "0.0.0",
		"a semantic version such as 1.4.2 or 1.5.0-rc.1")
	PatRuntime = newPattern("runtime_version", `^go[0-9]{1,2}\.[0-9]{1,3}(\.[0-9]{1,3})?((rc|beta)[0-9]{1,2})?$`, "go0.0",
		"a Go runtime version such as go1.26.8")
	PatUserID = classPattern("user_id", `A-Za-z0-9`, `A-Za-z0-9._@-`, 128, "",
		"the id of the key's owner, set by the server")
	PatKeyPrefix = newPattern("key_prefix", `^`+KeyScheme+`[A-Za-z0-9]{8}$`, "",
		"the first 8 characters of a key after fred_live_: enough to name it, useless to use it")
	PatLabel = newPattern("label", `^[A-Za-z0-9 ._@:/+-]{0,64}$`, "",
		"an operator's note on a key")
)

// Enums.
var (
	EnumOS = []string{"linux", "darwin", "windows", "freebsd", "openbsd", "netbsd",
		"dragonfly", "solaris", "illumos", "aix", "android", "ios", "plan9", "other"}
	EnumShell = []string{"bash", "zsh", "fish", "sh", "dash", "ksh", "tcsh", "csh",
		"nu", "elvish", "xonsh", "pwsh", "powershell", "cmd", "other"}
	EnumMode         = []string{"act", "plan"}
	EnumFinishReason = []string{"stop", "tool_calls", "length", "content_filter", "error",
		"cancelled", "other"}
	EnumAPIError = []string{"rate_limit", "overloaded", "timeout", "connection",
		"server_error", "auth", "bad_request", "context_length", "content_filter", "other"}
	EnumPermission = []string{"auto_allowed", "user_allowed", "denied"}
	EnumOutcome    = []string{"ok", "error"}
	EnumEventName  = []string{"slash_command", "api_retry", "mode_change", "model_swap"}
	EnumAgent      = []string{"fred", "claude-code", "codex", "gemini-cli", "other"}
)

// Fixed words a name takes on the central route when it is not in its
// session's catalogs (tool_catalog, command_catalog, model_catalog: the
// build's own names): custom for a model the user typed, mcp for a tool the
// user configured, other for anything else. Catalog or fixed word, nothing
// else: a pattern alone lets an e-mail address or a path through.
var (
	FixedModelNames   = []string{"custom", "other"}
	FixedToolNames    = []string{"mcp", "other"}
	FixedCommandNames = []string{"other"}
)

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
		{Name: "user_id", Kind: KindString, Scope: Server, Pattern: PatUserID, Max: 128, Since: 1,
			Doc: "owner of the API key that sent the record (never from the payload)"},
		{Name: "received_at", Kind: KindTime, Scope: Server, Since: 1,
			Doc: "server clock when the batch was committed"},
		{Name: "clock_offset_ms", Kind: KindInt, Scope: Server, Min: -maxClockSkew, Max: maxClockSkew, Since: 1,
			Doc: "server clock minus the batch's sent_at, to correct a client clock that is off"},
	}
}

func sessionRef() *Field {
	return &Field{Name: "session_id", Kind: KindUUID, Scope: Central, Since: 1, Doc: "the session this record belongs to"}
}

func seq() *Field {
	return &Field{Name: "seq", Kind: KindInt, Scope: Central, Min: 0, Max: maxSeq, Since: 1,
		Doc: "order within the session (turns) or the turn (tool calls), from 0"}
}

func durationMs() *Field {
	return &Field{Name: "duration_ms", Kind: KindInt, Scope: Central, Min: 0, Max: maxDurationMs, Since: 1,
		Doc: "wall time in milliseconds"}
}

func count(name string, max int64, doc string) *Field {
	return &Field{Name: name, Kind: KindInt, Scope: Central, Min: 0, Max: max, Since: 1, Doc: doc}
}

// Sessions declares the session record: one CLI session: sent at start and again at end with ended_at.
var Sessions = &Record{
	Name: "session", Batch: "sessions", Table: "sessions", TimeField: "started_at", Since: 1,
	Doc: "one per CLI session; sent at start and again at end with ended_at (the store upserts)",
	Fields: append([]*Field{
		{Name: "session_id", Kind: KindUUID, Scope: Central, Key: true, Since: 1, Doc: "client-generated UUIDv7"},
		{Name: "started_at", Kind: KindTime, Scope: Central, Since: 1, Doc: "session start"},
		{Name: "ended_at", Kind: KindTime, Scope: Central, Nullable: true, Since: 1, Doc: "session end; null while running"},
		{Name: "model", Kind: KindString, Scope: Central, Pattern: PatModel, Max: 100, Since: 1, Doc: "model at session start"},
		{Name: "fred_version", Kind: KindString, Scope: Central, Pattern: PatSemver, Max: 80, Since: 1, Doc: "Fred CLI version"},
		{Name: "runtime_version", Kind: KindString, Scope: Central, Pattern: PatRuntime, Max: 20, Since: 1, Doc: "Go runtime version"},
		{Name: "os", Kind: KindString, Scope: Central, Enum: EnumOS, Max: 16, Since: 1, Doc: "GOOS"},
		{Name: "shell", Kind: KindString, Scope: Central, Enum: EnumShell, Max: 16, Since: 1, Doc: "basename of the login shell from a fixed list, else other"},
		{Name: "git_dirty", Kind: KindBool, Scope: Central, Nullable: true, Since: 1, Doc: "uncommitted changes at start; null outside a repository (never the SHA)"},
		{Name: "agents_md_hash", Kind: KindHash, Scope: Central, Nullable: true, Max: 64, Since: 1, Doc: "HMAC-SHA-256 of AGENTS.md under a per-install key; null without one"},
		{Name: "system_prompt_sha256", Kind: KindHash, Scope: Central, Nullable: true, Max: 64, Since: 1, Doc: "SHA-256 of the system prompt (comparable across users)"},
		{Name: "tool_catalog", Kind: KindList, Scope: Central, Pattern: PatToolName, MaxItems: maxCatalog, Max: 64, Since: 1, Doc: "names of the tools this build offers"},
		{Name: "command_catalog", Kind: KindList, Scope: Central, Pattern: PatCommand, MaxItems: maxCatalog, Max: 32, Since: 1, Doc: "slash commands this build offers (dead commands are measured against it)"},
		{Name: "model_catalog", Kind: KindList, Scope: Central, Nullable: true, Pattern: PatModel, MaxItems: maxCatalog, Max: 100, Since: 2, Doc: "models this build offers (a model name outside it is recorded as custom)"},
		{Name: "agent", Kind: KindString, Scope: Central, Nullable: true, Enum: EnumAgent, Max: 16, Since: 2, Doc: "the agent CLI the session ran in (null before version 2: fred)"},
		{Name: "agent_version", Kind: KindString, Scope: Central, Nullable: true, Pattern: PatSemver, Max: 80, Since: 2, Doc: "that agent's version, where it says it (fred: fred_version)"},
	}, serverFields()...),
}

// Turns declares the turn record: one agent-loop iteration.
var Turns = &Record{
	Name: "turn", Batch: "turns", Table: "turns", TimeField: "started_at", Since: 1,
	Doc: "one per agent-loop iteration",
	Fields: append([]*Field{
		{Name: "turn_id", Kind: KindUUID, Scope: Central, Key: true, Since: 1, Doc: "client-generated UUIDv7"},
		sessionRef(),
		seq(),
		{Name: "started_at", Kind: KindTime, Scope: Central, Since: 1, Doc: "turn start"},
		{Name: "model", Kind: KindString, Scope: Central, Pattern: PatModel, Max: 100, Since: 1, Doc: "model that answered"},
		{Name: "mode", Kind: KindString, Scope: Central, Enum: EnumMode, Max: 8, Since: 1, Doc: "act or plan"},
		count("prompt_tokens", maxTokens, "input tokens"),
		count("completion_tokens", maxTokens, "output tokens"),
		count("cached_tokens", maxTokens, "input tokens served from cache"),
		{Name: "finish_reason", Kind: KindString, Scope: Central, Enum: EnumFinishReason, Max: 16, Since: 1, Doc: "why the model stopped"},
		durationMs(),
		count("num_tool_calls", maxToolCalls, "tool calls the turn asked for"),
		{Name: "api_error_type", Kind: KindString, Scope: Central, Nullable: true, Enum: EnumAPIError, Max: 16, Since: 1, Doc: "null, or the class of API error that ended the turn"},
		count("prompt_chars", maxChars, "length of the user's input in characters"),
		count("response_chars", maxChars, "length of the assistant's text in characters"),
		{Name: "user_input", Kind: KindText, Scope: SelfHosted, Nullable: true, Max: maxTextChars, Since: 1, Doc: "the user's input text (self-hosted only, unless DSC_TELEMETRY_NO_TEXT=1)"},
		{Name: "assistant_text", Kind: KindText, Scope: SelfHosted, Nullable: true, Max: maxTextChars, Since: 1, Doc: "the assistant's text (self-hosted only, unless DSC_TELEMETRY_NO_TEXT=1)"},
	}, serverFields()...),
	Indexes: []Index{
		// Plan-mode turns (a few percent): plan mode's analysis reads them here.
		{Name: "plan_idx", Columns: []string{"session_id", "started_at"}, Include: []string{"seq"}, Where: "mode = 'plan'", Since: 3},
	},
}

// ToolCalls declares the tool_call record: one tool invocation.
var ToolCalls = &Record{
	Name: "tool_call", Batch: "tool_calls", Table: "tool_calls", TimeField: "started_at", Since: 1,
	Doc: "one per tool invocation",
	Fields: append([]*Field{
		{Name: "call_id", Kind: KindUUID, Scope: Central, Key: true, Since: 1, Doc: "client-generated UUIDv7"},
		sessionRef(),
		{Name: "turn_id", Kind: KindUUID, Scope: Central, Since: 1, Doc: "the turn that asked for the call"},
		seq(),
		{Name: "started_at", Kind: KindTime, Scope: Central, Since: 1, Doc: "call start"},
		{Name: "tool_name", Kind: KindString, Scope: Central, Pattern: PatToolName, Max: 64, Since: 1, Doc: "tool invoked"},
		{Name: "args_fingerprint", Kind: KindHash, Scope: Central, Max: 64, Since: 1, Doc: "HMAC-SHA-256 of the canonical JSON of the arguments under a per-session key"},
		{Name: "permission", Kind: KindString, Scope: Central, Enum: EnumPermission, Max: 16, Since: 1, Doc: "how the call was permitted"},
		durationMs(),
		{Name: "outcome", Kind: KindString, Scope: Central, Enum: EnumOutcome, Max: 8, Since: 1, Doc: "ok or error"},
		count("result_bytes", maxBytes, "size of the tool result in bytes"),
		{Name: "result_is_error", Kind: KindBool, Scope: Central, Since: 1, Doc: "the result text starts with Error:"},
		{Name: "result_fingerprint", Kind: KindHash, Scope: Central, Nullable: true, Max: 64, Since: 2, Doc: "HMAC-SHA-256 of the result text under the session's key (beyond 32 KiB: of its length, first and last 16 KiB): a repeated call with the same result is stuck, with a changing one polling"},
		{Name: "run_start", Kind: KindUUID, Scope: Central, Nullable: true, Since: 3, Doc: "call_id of the first call of the run this call is in (calls in session order with the same tool_name and args_fingerprint, marked by the client as it records them); null where the client did not mark runs"},
		{Name: "run_len", Kind: KindInt, Scope: Central, Nullable: true, Min: 1, Max: maxRun, Since: 3, Doc: "the call's place in that run: 1 for a call unlike the one before it, 2 and more for a repeat (a loop is a run that reaches 3); null where the client did not mark runs"},
	}, serverFields()...),
	Indexes: []Index{
		// The repeats the client marked (a small share of the calls): the
		// insights find every loop of a window here, without sorting the
		// calls (docs/insights.md).
		{Name: "runs_idx", Columns: []string{"session_id", "run_start"},
			Include: []string{"run_len", "result_fingerprint", "duration_ms", "turn_id"}, Where: "run_len >= 2", Since: 3},
	},
}

// Events declares the event record: a named event with typed props.
var Events = &Record{
	Name: "event", Batch: "events", Table: "events", TimeField: "ts", Since: 1,
	Doc: "a named event with a fixed, typed set of props per name",
	Fields: append([]*Field{
		{Name: "event_id", Kind: KindUUID, Scope: Central, Key: true, Since: 1, Doc: "client-generated UUIDv7"},
		sessionRef(),
		{Name: "ts", Kind: KindTime, Scope: Central, Since: 1, Doc: "when it happened"},
		{Name: "name", Kind: KindString, Scope: Central, Enum: EnumEventName, Max: 16, Since: 1, Doc: "event name"},
		{Name: "props", Kind: KindProps, Scope: Central, Since: 1, Doc: "props of the named event (see below)"},
		{Name: "seq", Kind: KindInt, Scope: Central, Nullable: true, Min: 0, Max: maxSeq, Since: 2, Doc: "order of the event within the session, from 0 (events of one millisecond stay ordered)"},
	}, serverFields()...),
	Props: map[string][]*Field{
		"slash_command": {
			{Name: "command", Kind: KindString, Scope: Central, Pattern: PatCommand, Max: 32, Since: 1, Doc: "command name without its slash or arguments"},
		},
		"api_retry": {
			{Name: "attempt", Kind: KindInt, Scope: Central, Min: 1, Max: 1000, Since: 1, Doc: "retry number, from 1"},
			{Name: "delay_ms", Kind: KindInt, Scope: Central, Min: 0, Max: 3_600_000, Since: 1, Doc: "delay before the retry"},
			{Name: "error_type", Kind: KindString, Scope: Central, Enum: EnumAPIError, Max: 16, Since: 1, Doc: "class of the error retried"},
			{Name: "status", Kind: KindInt, Scope: Central, Min: 0, Max: 599, Since: 1, Doc: "HTTP status, 0 when none"},
			{Name: "latency_ms", Kind: KindInt, Scope: Central, Min: 0, Max: maxDurationMs, Since: 2, Doc: "how long the failed attempt took"},
		},
		"mode_change": {
			{Name: "from", Kind: KindString, Scope: Central, Enum: EnumMode, Max: 8, Since: 1, Doc: "previous mode"},
			{Name: "to", Kind: KindString, Scope: Central, Enum: EnumMode, Max: 8, Since: 1, Doc: "new mode"},
		},
		"model_swap": {
			{Name: "from", Kind: KindString, Scope: Central, Pattern: PatModel, Max: 100, Since: 1, Doc: "previous model"},
			{Name: "to", Kind: KindString, Scope: Central, Pattern: PatModel, Max: 100, Since: 1, Doc: "new model"},
		},
	},
	// The rare events an analysis reads by session (retries, swaps, mode
	// changes: a few percent of the events), instead of scanning every
	// slash command.
	Indexes: []Index{
		{Name: "api_retry_idx", Columns: []string{"session_id", "ts"}, Include: []string{"props"}, Where: "name = 'api_retry'", Since: 3},
		{Name: "model_swap_idx", Columns: []string{"session_id", "ts"}, Include: []string{"props"}, Where: "name = 'model_swap'", Since: 3},
		{Name: "mode_change_idx", Columns: []string{"session_id", "ts"}, Include: []string{"props"}, Where: "name = 'mode_change'", Since: 3},
	},
}

var records = [...]*Record{Sessions, Turns, ToolCalls, Events}

// Records lists every record type, in the order batches carry them and
// stores write them (sessions first, so ownership is settled before
// children): a copy, so the declaration cannot be changed through it.
func Records() [len(records)]*Record { return records }

// APIKeys declares the ingest server's API keys: only a key's SHA-256 is
// stored, never the key. A server table: central set only, never in a batch.
var APIKeys = &Record{
	Name: "api_key", Table: "api_keys", TimeField: "created_at", Since: 1, Unprefixed: true,
	Doc: "the ingest server's API keys, stored as SHA-256 hashes",
	Fields: []*Field{
		{Name: "key_hash", Kind: KindHash, Scope: Server, Key: true, Max: 64, Since: 1, Doc: "SHA-256 of the whole key"},
		{Name: "key_prefix", Kind: KindString, Scope: Server, Pattern: PatKeyPrefix, Max: 18, Since: 1, Doc: "fred_live_ and the next 8 characters, to name the key"},
		{Name: "user_id", Kind: KindString, Scope: Server, Pattern: PatUserID, Max: 128, Since: 1, Doc: "the user every record sent with the key belongs to"},
		{Name: "label", Kind: KindString, Scope: Server, Pattern: PatLabel, Max: 64, Since: 1, Doc: "operator's note"},
		{Name: "created_at", Kind: KindTime, Scope: Server, Since: 1, Doc: "when the key was made"},
		{Name: "last_used_at", Kind: KindTime, Scope: Server, Nullable: true, Since: 1, Doc: "last accepted request (updated at most once a minute)"},
		{Name: "revoked_at", Kind: KindTime, Scope: Server, Nullable: true, Since: 1, Doc: "when the key was revoked; refused from then on"},
	},
}

var serverTables = [...]*Record{APIKeys}

// ServerTables lists the tables of the central set that hold no records.
func ServerTables() [len(serverTables)]*Record { return serverTables }
