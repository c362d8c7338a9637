// Package insights answers the six questions the telemetry exists for (SPEC
// §7): where the fast model gets stuck, dead slash commands, retry storms,
// tool dispatch loops, plan-mode adoption and permission patterns, as named
// SQL queries over either table set on PostgreSQL and SQLite.
//
// It arrives with a later issue; until then the package holds only this
// contract.
package insights
