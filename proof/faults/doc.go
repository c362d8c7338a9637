// Package faults is the fault and load part of the proof suite (issue 6):
// real sessions through the real client library, a real `fredtel serve`
// process and a real PostgreSQL, all on 127.0.0.1, while things break.
//
//   - TestServerKilledAndPostgresRestartedUnderLoad: the server is SIGKILLed
//     and restarted several times, PostgreSQL is stopped for a while and
//     started again, and some answers are lost on the way back, all while
//     clients record; afterwards the database holds every recorded id exactly
//     once, and the server answered no 5xx but 503, and 503 only while the
//     database was down.
//   - TestSpoolFull, TestSpoolReadOnly: the config dir, spool included, is a
//     full or a read-only filesystem; the agent's calls stay fast, Close
//     keeps its budget, what cannot be spooled is counted as dropped, and
//     the next session on a healthy disk delivers what was spooled.
//   - TestLoad: 200 concurrent clients, each a stream of sessions with a
//     key of its own; nothing lost or doubled; records/s, request latency
//     and the server's peak RSS.
//
// The ledger is taken where a session hands its records to its sender (a
// pass-through wrapper around central.Sender) and cross-checked against what
// the test recorded, record kind by record kind, so a record the library
// loses before its sender shows as well as one lost after it.
//
// CI runs every check shortened (go test ./...); FREDTEL_PROOF_FULL=1
// (scripts/proof) runs them at full size: 200 clients for 60 s. The
// mutants (mutants_test.go, FREDTEL_PROOF_MUTANTS=1) show each check fails
// when the protection it checks is removed.
package faults
