package runner

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HTTPHandler serves an operator's endpoints for a runner: /metrics
// (Prometheus, from gatherer), /healthz (200 while the process serves) and
// /readyz (200 once the runner is connected and every pipeline consumes,
// 503 otherwise).
func HTTPHandler(r *Runner, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !r.Ready() {
			http.Error(w, "not ready: connecting to the broker or starting consumers", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready: connected to " + r.Broker() + "\n"))
	})
	return mux
}
