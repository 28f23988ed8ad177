package httpapi

import (
	"context"
	"net/http"

	"github.com/julienschmidt/httprouter"

	"scalelab/server/jobs"
)

// deletionView is a deferred account deletion as
// GET /api/v1/deletions/{ticket} shows it, and as the 202 of the DELETE
// that started it does.
type deletionView struct {
	ID     string `json:"id"`
	Status string `json:"status"` // queued, running, done or failed
}

func deletionURL(ticket string) string { return "/api/v1/deletions/" + ticket }

// deleteUserLater deletes user id at once and leaves its records to the
// job queue, when there is a queue configured for it and the user has
// enough records; otherwise ok is false and nothing changed. The caches
// are invalidated as for any delete.
func (a *api) deleteUserLater(ctx context.Context, id string) (ticket string, ok bool, err error) {
	if a.queue == nil {
		return "", false, nil
	}
	d, ok, err := a.queue.DeleteUserLater(ctx, id)
	if !ok || err != nil {
		return "", false, err
	}
	a.invalidate(ctx, id, 0)
	return d.Ticket, true, nil
}

// acceptDeletion answers a deferred deletion: 202, and the status's URL.
func (a *api) acceptDeletion(w http.ResponseWriter, r *http.Request, ticket string) {
	w.Header().Set("Location", deletionURL(ticket))
	writeJSON(w, r, a.log, http.StatusAccepted, deletionView{ID: ticket, Status: jobs.StatusQueued})
}

// handleGetDeletion: GET /api/v1/deletions/{ticket} → the status of a
// deferred deletion. The account and its tokens are gone, so the ticket's
// random key is what guards it; a request that carries a token still
// needs a valid one, as everywhere (the deleted user's is not).
func (a *api) handleGetDeletion() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		w.Header().Set("Cache-Control", cacheNoStore)
		if a.refuseBadToken(w, r) {
			return
		}
		if a.queue == nil {
			writeProblem(w, http.StatusNotFound, "this server defers no deletion to a job queue", nil)
			return
		}
		ticket := ps.ByName("ticket")
		status, err := a.queue.DeletionStatus(r.Context(), ticket)
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		writeJSON(w, r, a.log, http.StatusOK, deletionView{ID: ticket, Status: status})
	}
}
