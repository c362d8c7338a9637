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
// [Session.Close]. Events carry their order within the session (seq). Every method is safe for concurrent use, never blocks on
// I/O, never panics into the caller and returns nothing to handle: failures
// are counted in [Session.Stats] and shown by [Session.Status]. Recording a
// tool call costs a fingerprint and a queue append (no allocation); the
// queue is bounded in bytes and drops, counting, rather than block.
//
// # Privacy
//
// Nothing here sends text. Tool arguments become an HMAC-SHA-256 of their
// canonical JSON under a key made per session (repeats within a session stay
// visible, guesses cannot be checked), tool results an HMAC under the same
// key (a loop, same arguments and same result, can be told from polling);
// AGENTS.md becomes an HMAC under a per-install key kept in the config dir;
// the system prompt a plain SHA-256; prompt, response and tool result
// otherwise only their sizes.
//
// Names come from closed vocabularies on the central route: a model, tool
// or slash command is recorded only when it is in the build's own catalogs
// ([SessionInfo] Models, Tools, Commands, sent in the session record), else
// as a fixed word: "custom" for a model the user typed, "mcp" for a tool of
// an MCP server the user configured (mcp__server__tool, server__tool),
// "other" for anything else (schema.FixedModelNames(), FixedToolNames,
// FixedCommandNames). A pattern alone would let an e-mail address, a URL
// with credentials or a hyphenated sentence through. The self-hosted route
// keeps the real names that fit the schema's patterns.
//
// The client's enforcement point (SPEC §4) is the generated conversion of
// each record to its remote form (schema.Session.Remote and the others),
// applied before a record is queued: the central route's queue, spool and
// audit log hold only the generated Remote* record types, which have no
// field that could hold text.
//
// # Routing (SPEC §2)
//
// In order, the first that applies: --no-telemetry (Options.NoTelemetry) →
// off for this session; DSC_TELEMETRY_DB_URL → the user's own database
// (Options.SelfHosted, see package telemetry/selfhost), never the central
// service; DO_NOT_TRACK → off; no config folder, or one that is not the
// user's own ([ErrConfigDir], with a one-line warning) → off; preference off
// (or an unreadable preferences file, with a one-line warning) → off; not
// logged in → off; else central.
//
// # The config folder
//
// [ConfigDir] has no shared fallback: without FRED_CONFIG_DIR,
// XDG_CONFIG_HOME or HOME there is none. The folder must be a folder (not a
// symbolic link), owned by the user and not writable by group or others
// (package internal/safedir); files in it are read with O_NOFOLLOW and
// written atomically, 0600. Values that hold a secret (a [Route], the
// [Credentials], a [CentralConfig]) print masked with every fmt verb and
// through slog.
// The central route starts only once the one-time notice has been shown on
// a terminal. Off means off: no goroutine, no file, nothing sent, and
// [Session.Env] gives subprocesses DO_NOT_TRACK=1. [Resolve] makes the same
// decision without starting a session: `fred telemetry status` and the
// REPL's /telemetry ([Session.HandleSlash]) print the same line.
//
// # Lifecycle
//
// A session has one background goroutine. On the central route it first
// delivers the spool of earlier sessions, a few batches at a time between
// its own, so a run of short sessions (fred -p, scripts, CI) empties the
// spool too. [Session.Close] gives the end a budget (Options.CloseBudget,
// 100 ms): two thirds for the session's own records, the rest to spool
// what was not delivered, or, when everything was, to the earlier sessions'
// spool. Every wait in Close and /telemetry off is bounded by the budget,
// even with a sink that ignores cancellation; [Session.Wait] then waits
// for the goroutine itself, for an embedder that must know the session has
// let go of its files.
//
// # Dependencies
//
// This package imports the schema declaration and no database driver and no
// HTTP client: the central sender lives in telemetry/central (plugged in
// with Options.NewCentral) and the self-hosted writer in telemetry/selfhost
// (Options.SelfHosted), so a program links only what it offers.
package telemetry
