// Package insights answers the six questions the telemetry exists for (SPEC
// §7): where the fast model gets stuck, dead slash commands, retry storms,
// tool dispatch loops, plan-mode adoption and permission patterns, and
// opens with the detected problems ranked by what they cost.
//
// # Use
//
//	r, err := insights.Compute(ctx, "postgres://…", insights.Options{Tables: "central"})
//	r.WriteText(os.Stdout)             // the terminal form
//	json.NewEncoder(os.Stdout).Encode(r) // the documented JSON form
//
// # How
//
// Every analysis is SQL run inside the database, on PostgreSQL and on the
// embedded SQLite store, over the central telemetry_* tables or the
// self-hosted dsc_* tables; Go reads only aggregates and the detected
// problems, never the rows. All queries of one report run in one read-only
// transaction (a repeatable-read snapshot on PostgreSQL), so the six
// answers describe the same data. Each query starts from the same window:
// the sessions that started in [From, To) and pass the filters; all
// records of those sessions count.
//
// Percentiles are PostgreSQL's percentile_cont; SQLite has none, and the
// query there computes the same interpolation ([db.pct]), so both backends
// give the same numbers (a test checks it).
//
// The definitions, the JSON shape and the prices file are documented in
// docs/insights.md.
package insights
