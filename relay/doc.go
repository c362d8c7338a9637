// Package relay is the local OTLP relay, `fred otel-relay` (docs/relay.md):
// Claude Code, Codex and Gemini CLI export their OpenTelemetry to it over
// OTLP/HTTP, and it records their sessions through the telemetry library,
// so that the same routing, remote-safe conversion, sender and spool apply
// to them as to Fred.
//
// # Flow
//
// [Relay.ServeHTTP] decodes a request with the OpenTelemetry proto packages
// (otlp.go), recognises the CLI by its service.name, and each CLI's mapper
// (agents.go) turns the records it knows into facts (fact.go): a prompt, a
// model call, a tool call, a decision, a failure, a retry, a slash command,
// a mode switch. Facts wait in their CLI session's buffer for the CLI's
// other exports (its logs and traces come apart) for Options.Settle; then
// the relay's worker orders them by time, merges what a CLI reports twice
// (Claude Code's logs and traces) and hands them to the library in order
// (session.go): telemetry.Start at a session's first fact, a turn per model
// call of the agent loop, its tool calls, events, and Close when the
// session ends or goes idle. Each session's Options.Now is a clock the relay
// sets to the fact's time, so records carry the CLI's times.
//
// # Privacy
//
// The relay prints, logs and stores nothing a request carried: warnings are
// its own words, one line per kind; answers never quote the request. Text
// (prompts, answers, tool arguments and output) goes only to the library,
// which keeps it only self-hosted or as keyed fingerprints. Names are
// recorded from each CLI's own catalogs (agents.go), as fixed words
// otherwise.
//
// # Bounds
//
// Request bodies (as sent and decompressed), requests decoded at once,
// bytes held per session and sessions held are all bounded (Options); what
// is over a bound is refused or dropped, and counted in [Stats]. The relay
// has one goroutine of its own, started by [New] and stopped by
// [Relay.Close].
package relay
