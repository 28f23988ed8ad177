package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
)

type httpMetrics struct {
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scalelab_http_request_duration_seconds",
			Help:    "HTTP request durations by route, method and status.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method", "status"}),
	}
	reg.MustRegister(m.duration)
	return m
}

// instrument records h's durations under the route pattern, not the raw
// path, so ids do not explode the label space. The observer of each status
// is looked up once and kept: hashing three label values on every request
// cost more than the cached GET it measures.
func (m *httpMetrics) instrument(method, route string, h httprouter.Handle) httprouter.Handle {
	var observers [600]atomic.Pointer[prometheus.Observer]
	observer := func(status int) prometheus.Observer {
		if status < 100 || status >= len(observers) {
			return m.duration.WithLabelValues(route, method, strconv.Itoa(status))
		}
		if o := observers[status].Load(); o != nil {
			return *o
		}
		o := m.duration.WithLabelValues(route, method, strconv.Itoa(status))
		observers[status].Store(&o)
		return o
	}
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		start := time.Now()
		sw := statusWriter{ResponseWriter: w, status: http.StatusOK}
		h(&sw, r, ps)
		observer(sw.status).Observe(time.Since(start).Seconds())
	}
}

type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recoverPanics turns a panic in a handler into a logged 500 problem.
func recoverPanics(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.ErrorContext(r.Context(), "panic serving request", "method", r.Method, "path", r.URL.Path,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				writeProblem(w, http.StatusInternalServerError, "internal error", nil)
			}
		}()
		h.ServeHTTP(w, r)
	})
}
