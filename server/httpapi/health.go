package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"

	"scalelab/server"
)

func handleHealthz(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte(`{"status":"ok"}`))
}

func handleReadyz(log *slog.Logger, store server.Store, draining *atomic.Bool) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		ok, why := ready(ctx, log, store, draining)
		if !ok && !draining.Load() && r.URL.Query().Get("write") == "" && servesReads(store) {
			writeReadOnlyReady(w) // see readiness.go
			return
		}
		if !ok {
			writeProblem(w, http.StatusServiceUnavailable, "not ready: "+why, nil)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte(`{"status":"ready","primary":"up"}`))
	}
}

func handleNotFound(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, http.StatusNotFound, "no route for "+r.URL.Path, nil)
}

func handleMethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, http.StatusMethodNotAllowed,
		"method "+r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+w.Header().Get("Allow"), nil)
}
