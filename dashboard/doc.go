// Package dashboard serves the insights (package insights) as web pages
// under /dashboard/: an overview that opens with the detected problems
// ranked by what they cost, one page per analysis with its charts, and a
// timeline of any one session. `fredtel serve` mounts it beside the ingest
// API; `fredtel dashboard` serves it alone over a self-hoster's tables.
//
// # Routes
//
//	GET  /dashboard/                overview: problems, activity over time, error and retry rates
//	GET  /dashboard/{insight}       stuck, commands, retries, loops, plan, permissions
//	GET  /dashboard/session/{id}    one session's timeline, loops marked
//	GET  /dashboard/api/report      the insights JSON (docs/insights.md) of the page's window
//	GET  /dashboard/api/trends      the window in time buckets (insights.Trends)
//	GET  /dashboard/api/session/{id} the timeline JSON (insights.SessionTimeline)
//	GET  /dashboard/static/…        embedded CSS, JS and the vendored uPlot
//	GET, POST /dashboard/login      the token form; POST /dashboard/logout
//
// Every page and endpoint takes the same query: since (1h, 24h, 7d, 30d,
// 90d, all; default 7d) or from and to (RFC 3339 or a date), model, and
// agent (the CLI a session ran in; see the OTLP relay).
// The charts are drawn in the browser by uPlot from the JSON endpoints, so
// what a chart shows is the insights package's answer, computed by the
// same queries as `fredtel insights`; each chart publishes the numbers it
// drew in window.fredtel.charts (the browser test compares them).
//
// # Access
//
// With a token (Config.Token), every page and endpoint but the login form
// and the static files needs the cookie the form sets: HttpOnly,
// SameSite=Strict, holding an HMAC of the token (never the token), compared
// in constant time. The token travels only in the form's POST body: never
// in a URL, never in a log line. API keys of the ingest API open nothing
// here. Without a token the dashboard answers only when the listener is on
// a loopback address (Config.Loopback) and the request names a loopback
// host (a DNS-rebinding page cannot read it).
//
// # Security
//
// Pages are html/template (contextual escaping); scripts are embedded
// files, never inline, under a Content-Security-Policy of 'self' only;
// frames are refused (X-Frame-Options DENY, frame-ancestors 'none');
// cross-origin POSTs are refused; responses other than static files are
// not cached. Work per request is bounded: at most two computations run at
// once, each under a deadline, and a result is reused for a few seconds.
package dashboard
