package runner

import (
	"embed"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

//go:embed live
var live embed.FS

// HTTPHandler serves an operator's endpoints for a runner: /metrics
// (Prometheus, from gatherer), /healthz (200 while the process serves),
// /readyz (200 once the runner is connected, every pipeline consumes and
// every input queue answers, with a warning line for waiting messages
// that do not come back; 503 otherwise, saying why), and the live page: / (every pipeline, its queues by
// name and depth, its last outputs and parked messages, updated every
// second from /api/status). The page is read-only, its assets are in the
// binary, and nothing it serves holds the connection string. /schemas/
// lists the output schemas, and /schemas/<name> (such as
// /schemas/buildbot/build.json) serves one, for consumers to validate
// against.
func HTTPHandler(r *Runner, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	asset := func(name, contentType string) http.HandlerFunc {
		data, err := live.ReadFile("live/" + name)
		if err != nil {
			panic(err)
		}
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			_, _ = w.Write(data)
		}
	}
	mux.HandleFunc("GET /{$}", asset("index.html", "text/html; charset=utf-8"))
	mux.HandleFunc("GET /live.js", asset("live.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /live.css", asset("live.css", "text/css; charset=utf-8"))
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(r.Status())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /schemas/", func(w http.ResponseWriter, req *http.Request) {
		name := strings.TrimPrefix(req.URL.Path, "/schemas/")
		if name == "" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(r.shipped.Schemas.Names())
			return
		}
		doc := r.shipped.Schemas.Document(name)
		if doc == nil {
			http.Error(w, "no schema "+name+"; /schemas/ lists them", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/schema+json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(doc)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := r.Unready(); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		text := "ready: connected to " + r.Broker() + "\n"
		for _, warning := range r.Warnings() {
			text += "warning: " + warning + "\n"
		}
		_, _ = w.Write([]byte(text))
	})
	return mux
}
