package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/julienschmidt/httprouter"

	"scalelab/server"
)

// batchRoute is the path of POST /api/v1/users/{id}/data:batch, as metrics
// name it.
const batchRoute = "/api/v1/users/:id/data:batch"

// withBatchRoute serves /api/v1/users/{id}/data:batch before the router
// sees it: httprouter reads a ':' anywhere in a pattern as the start of a
// parameter, so "data:batch" cannot be a literal segment beside the
// static "data" of /api/v1/users/:id/data. Every other path goes to next.
func withBatchRoute(next http.Handler, h httprouter.Handle) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := batchPathID(r.URL.Path)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			handleMethodNotAllowed(w, r)
			return
		}
		h(w, r, httprouter.Params{{Key: "id", Value: id}})
	})
}

// batchPathID returns the {id} of a /api/v1/users/{id}/data:batch path.
func batchPathID(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/api/v1/users/")
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, "/data:batch")
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}

// batchRequest is the body of POST /api/v1/users/{id}/data:batch.
type batchRequest struct {
	Records []recordRequest `json:"records"`
}

// validate checks the batch's size and each record, naming a bad record
// by its index: records[3].data.
func (b batchRequest) validate() error {
	if len(b.Records) == 0 || len(b.Records) > server.MaxBatch {
		return invalid([]server.FieldError{{Field: "records", Message: fmt.Sprintf("must hold 1 to %d records, not %d", server.MaxBatch, len(b.Records))}})
	}
	var fields []server.FieldError
	for i, rec := range b.Records {
		if len(rec.Data) == 0 {
			fields = append(fields, server.FieldError{Field: fmt.Sprintf("records[%d].data", i), Message: "is required"})
		}
	}
	if fields != nil {
		return invalid(fields)
	}
	return nil
}

// handleCreateRecords creates up to server.MaxBatch records of the owner
// in one transaction: 201 with every record, in the order sent, or nothing
// stored at all.
func (a *api) handleCreateRecords() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		uid, ok := a.ownerParams(w, r, ps)
		if !ok {
			return
		}
		var body batchRequest
		if herr := readJSON(w, r, &body); herr != nil {
			herr.write(w)
			return
		}
		if err := body.validate(); err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		recs := make([]*server.Record, len(body.Records))
		for i, rec := range body.Records {
			recs[i] = &server.Record{UserID: uid, Data: compact(rec.Data)}
		}
		err := a.ownerWrite(r.Context(), uid, func(ctx context.Context) error {
			return a.store.CreateRecords(ctx, uid, recs)
		})
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		items := make([]recordView, len(recs))
		for i, rec := range recs {
			items[i] = newRecordView(rec)
		}
		writeJSON(w, r, a.log, http.StatusCreated, struct {
			Items []recordView `json:"items"`
		}{items})
	}
}

// cacheBatchPublic is the Cache-Control of GET /api/v1/users?ids=…: a
// purge names a user's own URL, never the batch URLs that include the
// user, so the CDN keeps a batch for a minute rather than an hour.
const cacheBatchPublic = "public, s-maxage=60, max-age=0"

// handleGetUsers answers GET /api/v1/users?ids=ID,ID,… (1 to
// server.MaxBatch ids) with the public views of the users that exist, in
// the order asked, each through the cache tiers as GET /api/v1/users/{id}
// reads it; unknown ids are left out. Everyone gets public views, so the
// response does not depend on who asks.
func (a *api) handleGetUsers() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		ids, err := parseIDs(r.URL.Query())
		if err != nil {
			writeProblem(w, http.StatusBadRequest, err.Error(), nil)
			return
		}
		var body bytes.Buffer
		body.WriteString(`{"items":[`)
		n := 0
		for _, id := range ids {
			e, err := a.userEntry(r.Context(), id)
			if server.ErrorCode(err) == server.ENOTFOUND {
				continue
			}
			if err != nil {
				a.writeV1Error(w, r, err)
				return
			}
			if n > 0 {
				body.WriteByte(',')
			}
			body.Write(e.Public)
			n++
		}
		body.WriteString("]}")
		h := w.Header()
		tag := etag(body.Bytes())
		h.Set("Cache-Control", cacheBatchPublic)
		h.Set("ETag", tag)
		if etagMatch(r.Header.Get("If-None-Match"), tag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		writeBody(w, http.StatusOK, body.Bytes())
	}
}

// parseIDs reads the ids parameter: 1 to server.MaxBatch user ids, comma
// separated, upper-case hex folded.
func parseIDs(q map[string][]string) ([]string, error) {
	vals := q["ids"]
	if len(vals) != 1 || vals[0] == "" {
		return nil, fmt.Errorf("give ids once, as ids=ID,ID,… (1 to %d user ids)", server.MaxBatch)
	}
	parts := strings.Split(vals[0], ",")
	if len(parts) > server.MaxBatch {
		return nil, fmt.Errorf("ids names %d users; at most %d", len(parts), server.MaxBatch)
	}
	ids := make([]string, len(parts))
	for i, p := range parts {
		id := strings.ToLower(p)
		if !server.ValidID(id) {
			return nil, fmt.Errorf("ids[%d] %q is not a user id", i, p)
		}
		ids[i] = id
	}
	return ids, nil
}
