package dashboard

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/fredcode/fredtel/insights"
)

// Config configures the dashboard.
type Config struct {
	// DBURL is the database the insights are read from (postgres://…,
	// postgresql://…, sqlite:PATH).
	DBURL string
	// Tables is "central" (default) or "self-hosted".
	Tables string
	// Token is the admin token; empty serves the dashboard only on a
	// loopback listener. At least MinTokenLen characters.
	Token string
	// Loopback says the listener is on a loopback address.
	Loopback bool
	// Prices turns tokens into money on the pages; nil shows none.
	Prices *insights.Prices
	// IngestURL, when set, is the ingest API the empty state tells
	// `fredtel simulate --url` to send to.
	IngestURL string
	// Logger gets one line per login and per failed computation; never a
	// token, a cookie or a query string. Nil: slog.Default().
	Logger *slog.Logger
	// Now is the clock windows such as "7d" count back from (default
	// time.Now).
	Now func() time.Time
	// CacheTTL is how long a computed answer is reused (default 10 s).
	CacheTTL time.Duration
}

// MinTokenLen is the shortest admin token accepted: the token is the only
// thing between the network and the data.
const MinTokenLen = 16

// CookieName is the name of the session cookie the login form sets.
const CookieName = "fredtel_dashboard"

// ErrConfig is wrapped by the errors of New.
var ErrConfig = errors.New("dashboard")

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// handler is the dashboard.
type handler struct {
	cfg     Config
	log     *slog.Logger
	pages   map[string]*template.Template
	session []byte // the cookie value that opens the dashboard
	cache   *cache
	logins  *limiter
}

// New returns the dashboard's handler, to be mounted at /dashboard/. It
// refuses a token shorter than MinTokenLen and an unknown table set.
func New(cfg Config) (http.Handler, error) {
	cfg.Tables = cmp.Or(cfg.Tables, insights.TablesCentral)
	if cfg.Tables != insights.TablesCentral && cfg.Tables != insights.TablesSelfHosted {
		return nil, fmt.Errorf("%w: tables %q: want central or self-hosted", ErrConfig, cfg.Tables)
	}
	if cfg.Token != "" && len(cfg.Token) < MinTokenLen {
		return nil, fmt.Errorf("%w: the dashboard token is %d characters: use at least %d (e.g. openssl rand -hex 16)", ErrConfig, len(cfg.Token), MinTokenLen)
	}
	if strings.ContainsAny(cfg.Token, "\r\n") {
		return nil, fmt.Errorf("%w: the dashboard token holds a line break", ErrConfig)
	}
	cfg.Logger, cfg.CacheTTL = cmp.Or(cfg.Logger, slog.Default()), cmp.Or(cfg.CacheTTL, 10*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &handler{cfg: cfg, log: cfg.Logger, cache: newCache(cfg.CacheTTL, 64, 2), logins: &limiter{per: time.Minute / 5, burst: 10}}
	if cfg.Token != "" {
		// The cookie holds a MAC of the token, not the token: a copied
		// cookie does not reveal it, and a new token ends every session.
		m := hmac.New(sha256.New, []byte(cfg.Token))
		m.Write([]byte("fredtel dashboard session v1"))
		h.session = []byte(hex.EncodeToString(m.Sum(nil)))
	}
	var err error
	if h.pages, err = parseTemplates(); err != nil {
		return nil, fmt.Errorf("%w: templates: %v", ErrConfig, err)
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /dashboard/static/", http.StripPrefix("/dashboard/static/", staticFiles(static)))
	mux.HandleFunc("GET /dashboard/login", h.loginForm)
	mux.HandleFunc("POST /dashboard/login", h.login)
	mux.HandleFunc("POST /dashboard/logout", h.logout)
	mux.HandleFunc("GET /dashboard", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/dashboard/", http.StatusMovedPermanently)
	})
	guarded := http.NewServeMux()
	guarded.HandleFunc("GET /dashboard/{$}", h.overview)
	for _, p := range insightPages {
		guarded.HandleFunc("GET /dashboard/"+p.Slug, h.insightPage(p))
	}
	guarded.HandleFunc("GET /dashboard/session/{id}", h.sessionPage)
	guarded.HandleFunc("GET /dashboard/api/report", apiOf(h, h.report))
	guarded.HandleFunc("GET /dashboard/api/trends", apiOf(h, h.trends))
	guarded.HandleFunc("GET /dashboard/api/session/{id}", h.apiSession)
	guarded.HandleFunc("/dashboard/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, http.StatusNotFound, "No such page.", "")
	})
	mux.Handle("/dashboard/", h.guard(guarded))
	return headers(http.NewCrossOriginProtection().Handler(mux)), nil
}

// csp allows the page's own files and nothing else: no inline script or
// style, no other origin, no framing, no plugin.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// headers sets the security headers of every answer.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, "/dashboard/static/") {
			hd.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// staticFiles serves the embedded files; they change only with the binary.
func staticFiles(fsys fs.FS) http.Handler {
	fsrv := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fsrv.ServeHTTP(w, r)
	})
}

// guard lets a request through when it may see the data.
func (h *handler) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch h.access(r) {
		case accessOK:
			next.ServeHTTP(w, r)
		case accessLogin:
			if strings.HasPrefix(r.URL.Path, "/dashboard/api/") {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprintln(w, `{"error":"log in at /dashboard/login"}`)
				return
			}
			// Back to this page after the login; the path and query are
			// the dashboard's own (a filter), never a credential.
			http.Redirect(w, r, "/dashboard/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		case accessOff:
			h.fail(w, r, http.StatusForbidden, "The dashboard is off on this address.",
				"It is served without a token only on a loopback address (127.0.0.1, ::1). Set --dashboard-token or FREDTEL_DASHBOARD_TOKEN to open it here.")
		case accessHost:
			h.fail(w, r, http.StatusForbidden, "Open the dashboard through a loopback address.",
				"Without a token the dashboard answers only requests for localhost, 127.0.0.1 or [::1].")
		}
	})
}

type access int

const (
	accessOK access = iota
	accessLogin
	accessOff
	accessHost
)

func (h *handler) access(r *http.Request) access {
	if h.session == nil {
		if !h.cfg.Loopback {
			return accessOff
		}
		if !loopbackHost(r.Host) {
			return accessHost
		}
		return accessOK
	}
	if h.authed(r) {
		return accessOK
	}
	return accessLogin
}

// authed reports whether r carries the session cookie. Only the cookie
// counts: an Authorization header (an ingest API key) is ignored.
func (h *handler) authed(r *http.Request) bool {
	if h.session == nil {
		return false
	}
	c, err := r.Cookie(CookieName)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), h.session) == 1
}

// loopbackHost reports whether the Host header names the loopback
// interface.
func loopbackHost(host string) bool {
	if hp, _, err := net.SplitHostPort(host); err == nil {
		host = hp
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (h *handler) loginForm(w http.ResponseWriter, r *http.Request) {
	if h.session == nil {
		http.Redirect(w, r, "/dashboard/", http.StatusSeeOther)
		return
	}
	h.render(w, r, http.StatusOK, "login", &pageData{Title: "Log in", Next: safeNext(r.URL.Query().Get("next"))})
}

// login checks the token of the form. Failures are rate limited for the
// whole process: guessing gets a few tries a minute.
func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	if h.session == nil {
		http.Redirect(w, r, "/dashboard/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		h.fail(w, r, http.StatusBadRequest, "The form could not be read.", "")
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	if !h.logins.allow() {
		w.Header().Set("Retry-After", "60")
		h.render(w, r, http.StatusTooManyRequests, "login", &pageData{Title: "Log in", Next: next,
			Error: "Too many wrong tokens: wait a minute, then try again."})
		return
	}
	given := sha256.Sum256([]byte(r.PostForm.Get("token")))
	want := sha256.Sum256([]byte(h.cfg.Token))
	if subtle.ConstantTimeCompare(given[:], want[:]) != 1 {
		h.logins.fail()
		h.log.Warn("dashboard login refused")
		h.render(w, r, http.StatusUnauthorized, "login", &pageData{Title: "Log in", Next: next, Error: "That is not the dashboard token."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: string(h.session), Path: "/dashboard/", MaxAge: 30 * 24 * 3600,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	h.log.Info("dashboard login")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/dashboard/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/dashboard/login", http.StatusSeeOther)
}

// safeNext keeps a post-login destination inside the dashboard.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/dashboard/") || strings.HasPrefix(next, "/dashboard/login") ||
		strings.ContainsAny(next, "\\\r\n") || strings.Contains(next, "//") || len(next) > 512 {
		return "/dashboard/"
	}
	return next
}

// limiter is a token bucket of failed logins.
type limiter struct {
	per   time.Duration // one try back per
	burst int
	mu    sync.Mutex
	used  float64
	last  time.Time
}

func (l *limiter) refill() {
	now := time.Now()
	if !l.last.IsZero() {
		l.used = max(0, l.used-float64(now.Sub(l.last))/float64(l.per))
	}
	l.last = now
}

func (l *limiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill()
	return l.used+1 <= float64(l.burst)
}

func (l *limiter) fail() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill()
	l.used++
}
