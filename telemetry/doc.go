// Package telemetry is the client library that Fred's agent loop embeds: it
// records sessions, turns, tool calls and named events, reduces them to
// remote-safe records, and routes them to the central ingest API, to the
// user's own database, or nowhere.
//
// # Recording
//
// [Start] begins a session and resolves its routing once. The agent then
// calls [Session.BeginTurn], [Turn.ToolCall] (with the raw arguments and the
// raw result), [Turn.End], the event helpers ([Session.SlashCommand],
// [Session.APIRetry], [Session.ModeChange], [Session.ModelSwap]) and finally
// [Session.Close]. Every method is safe for concurrent use, never blocks on
// I/O, never panics into the caller and returns nothing to handle: failures
// are counted in [Session.Stats] and shown by [Session.Status]. Recording a
// tool call costs a fingerprint and a queue append (no allocation); the
// queue is bounded in bytes and drops, counting, rather than block.
//
// # Privacy
//
// Nothing here sends text. Tool arguments become an HMAC-SHA-256 of their
// canonical JSON under a key made per session (repeats within a session stay
// visible, guesses cannot be checked); AGENTS.md becomes an HMAC under a
// per-install key kept in the config dir; the system prompt a plain SHA-256;
// prompt, response and tool result only their sizes. Names (model, tool,
// slash command) are kept only when they match the tight patterns of the
// schema declaration, else they become "other"; a slash command must also
// be one this build offers. The central route queues only the generated
// Remote* record types, which have no field that could hold text.
//
// # Routing (SPEC §2)
//
// In order, the first that applies: --no-telemetry (Options.NoTelemetry) →
// off for this session; DSC_TELEMETRY_DB_URL → the user's own database
// (Options.SelfHosted, see package telemetry/selfhost), never the central
// service; DO_NOT_TRACK → off; preference off (or an unreadable preferences
// file, with a one-line warning) → off; not logged in → off; else central.
// The central route starts only once the one-time notice has been shown on
// a terminal. Off means off: no goroutine, no file, nothing sent, and
// [Session.Env] gives subprocesses DO_NOT_TRACK=1.
//
// # Dependencies
//
// This package imports the schema declaration and no database driver and no
// HTTP client: the central sender lives in telemetry/central (plugged in
// with Options.NewCentral) and the self-hosted writer in telemetry/selfhost
// (Options.SelfHosted), so a program links only what it offers.
package telemetry
