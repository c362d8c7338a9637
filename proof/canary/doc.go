// Package canary is the privacy canary check of the proof suite (issue 6):
// unique canary strings go into every text-bearing input the client sees —
// the library API, a replayed transcript, the process environment, the
// working directory — and the tests then look for them in everything that
// was written: the whole central database (pg_dump), the client's config
// dir (spool, audit log, preferences), the batches FRED_TELEMETRY_DEBUG
// prints, the user's own database column by column, and the raw bytes of
// its SQLite file.
//
// hardening_test.go adds issue 12's classes: the config folder attacks (a
// symlinked spool/ or audit/ pointing at a private folder, a folder that is
// 0777 or another user's holding their key, no home, a planted spool file
// with a field off the allowlist) send nothing and read, show or delete
// nothing of the private folder; a password in every form is printed by no
// command.
//
// The package holds tests only; mutants_test.go and
// hardening_mutants_test.go name the protections whose removal these tests
// (and a few of the packages' own) catch.
package canary
