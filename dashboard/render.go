package dashboard

import (
	"bytes"
	"cmp"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"slices"
	"strconv"

	"github.com/fredcode/fredtel/insights"
	"github.com/fredcode/fredtel/schema"
)

// pageNames are the templates that are whole pages; each is parsed with
// layout.html.
var pageNames = []string{"overview", "stuck", "commands", "retries", "loops", "plan", "permissions", "session", "login", "error"}

func parseTemplates() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, n := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+n+".html")
		if err != nil {
			return nil, err
		}
		out[n] = t
	}
	return out, nil
}

// render writes the page name with p; the whole page is built before the
// first byte is sent, so a template error is a clean 500.
func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p *pageData) {
	var b bytes.Buffer
	if err := h.pages[name].Execute(&b, p); err != nil {
		h.log.Error("dashboard: template", "page", name, "err", err.Error())
		http.Error(w, "the page could not be built", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// fail answers with the error page: a fixed title and detail of the
// dashboard's own, never text from the request.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, status int, title, detail string) {
	p := &pageData{Title: title, Error: detail, Pages: insightPages, Since: sinceChoices, Tables: h.cfg.Tables,
		Token: h.session != nil && h.authed(r)}
	if f, err := h.filter(r); err == nil {
		p.Q = f
	} else {
		p.Q = filter{Since: "7d"}
	}
	h.render(w, r, status, "error", p)
}

var funcs = template.FuncMap{
	"num":   num,
	"ms":    fmtMs,
	"pct":   func(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" },
	"fix1":  func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"cost":  cost,
	"when":  func(t schema.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"since": offset,
	// short is the end of a session id: UUIDv7 ids of one minute share
	// their first digits (the clock), not their last (random).
	"short": func(s string) string {
		if len(s) > 12 {
			return "…" + s[len(s)-12:]
		}
		return s
	},
	"add": func(a, b int) int { return a + b },
	"sortedReasons": func(m map[string]int64) []kv {
		var out []kv
		for k, v := range m {
			out = append(out, kv{k, v})
		}
		slices.SortFunc(out, func(a, b kv) int { return cmp.Or(cmp.Compare(b.N, a.N), cmp.Compare(a.K, b.K)) })
		return out
	},
	"deref":  func(s *string) string { return *s },
	"prop":   func(m map[string]any, k string) string { return fmt.Sprint(m[k]) },
	"derefi": func(i *int) int { return *i },
	"loopOf": func(tl *insights.SessionTimeline, i *int) insights.TimelineLoop { return tl.Loops[*i] },
	"chart":  func(kind, src, caption string) chartRef { return chartRef{kind, src, caption} },
}

// chartRef is a chart of a page: its kind (app.js draws it), its data.
type chartRef struct{ Kind, Src, Caption string }

type kv struct {
	K string
	N int64
}

func num(v any) string {
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case int:
		n = int64(x)
	case float64:
		n = int64(math.Round(x))
	default:
		return fmt.Sprint(v)
	}
	return insights.Thousands(n)
}

func fmtMs(v any) string {
	var ms float64
	switch x := v.(type) {
	case int64:
		ms = float64(x)
	case int:
		ms = float64(x)
	case float64:
		ms = x
	}
	switch {
	case ms >= 3_600_000:
		return strconv.FormatFloat(ms/3_600_000, 'f', 1, 64) + " h"
	case ms >= 60_000:
		return strconv.FormatFloat(ms/60_000, 'f', 1, 64) + " min"
	case ms >= 1000:
		return strconv.FormatFloat(ms/1000, 'f', 1, 64) + " s"
	default:
		return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
	}
}

func cost(r *insights.Report, i insights.Impact) string {
	if r.Prices == nil || i.Cost == nil {
		return ""
	}
	s := strconv.FormatFloat(*i.Cost, 'f', 2, 64) + " " + r.Prices.Currency
	if i.UnpricedTokens > 0 {
		s += " + " + num(i.UnpricedTokens) + " unpriced tokens"
	}
	return s
}

// offset prints milliseconds since the session's start as +m:ss.s.
func offset(ms int64) string {
	neg := ms < 0
	if neg {
		ms = -ms
	}
	s := fmt.Sprintf("%d:%04.1f", ms/60000, float64(ms%60000)/1000)
	if neg {
		return "−" + s
	}
	return "+" + s
}
